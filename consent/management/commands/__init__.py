"""Operator commands: each parses its arguments and delegates to one service."""
