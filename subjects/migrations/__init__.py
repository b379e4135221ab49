"""Schema of the subjects app: one initial migration (no release has shipped)."""
