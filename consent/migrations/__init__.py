"""Schema of the consent app: one initial migration (no release has shipped) and the append-only triggers."""
