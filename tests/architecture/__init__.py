"""The project's own import-linter contract types, and their tests."""
