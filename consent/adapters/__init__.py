"""The implementations of subjects' ports (subjects.ports): merging and splitting, and the rights requests."""
