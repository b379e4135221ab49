"""Database vendor plumbing (config/db.py), set once per process by the project's AppConfig."""

from __future__ import annotations

import orjson
import psycopg
import pytest
from psycopg.pq import Format


def test_postgresql_json_is_decoded_by_orjson_in_every_connection() -> None:
    # orjson refuses NaN, which the standard library's json.loads accepts: that tells the two apart.
    json_oid = psycopg.adapters.types["json"].oid
    loader = psycopg.adapters.get_loader(json_oid, Format.TEXT)
    assert loader is not None

    assert loader(json_oid).load(b'{"allowed": true}') == {"allowed": True}
    with pytest.raises(orjson.JSONDecodeError):
        loader(json_oid).load(b"NaN")
