"""Database vendor plumbing: process-wide settings of the PostgreSQL driver (psycopg 3), set once at start."""

from __future__ import annotations

import orjson
from psycopg.types.json import set_json_loads


def configure_psycopg() -> None:
    """Decode PostgreSQL `json` values with orjson, for every connection of the process.

    The policy state arrives as PostgreSQL `json` aggregates (checks, sends): orjson decodes them faster.
    Django's own JSONFields are `jsonb`, which Django decodes itself, so they are unaffected."""
    set_json_loads(orjson.loads)
