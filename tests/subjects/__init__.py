"""Tests of subjects: identity, crypto and keys, records and merges, retention."""
