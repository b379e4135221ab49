"""Management commands of the subjects app (parse arguments, delegate to one service)."""
