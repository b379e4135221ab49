"""Database vendor plumbing: process-wide settings of the PostgreSQL driver (psycopg 3), set once at start,
server-side prepared statements for the hot paths, and a binary-parameter cursor for bulk statements."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from django.db import connection
from django.db.backends.utils import CursorWrapper
from psycopg.pq import ExecStatus
from psycopg.types.json import set_json_loads


def configure_psycopg() -> None:
    """Decode PostgreSQL `json` values with orjson, for every connection of the process.

    The policy state arrives as PostgreSQL `json` aggregates (checks, sends): orjson decodes them faster.
    Django's own JSONFields are `jsonb`, which Django decodes itself, so they are unaffected."""
    set_json_loads(orjson.loads)


TUPLES_OK = ExecStatus.TUPLES_OK


def prepared_rows(sql: str, params: Mapping[str, Any] | Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run one statement on the default connection as a server-side prepared statement and return its rows (none
    for a statement without a result).

    For the hot paths (a consent write, the profile read, API-key lookup): planning a statement that joins a few
    tables costs more than running it for one person, and Django's client-side binding plans it on every request;
    psycopg prepares it once per connection. The statement goes through the connection's execute wrappers, so
    that Django's query log (CaptureQueriesContext, DEBUG) and any `connection.execute_wrapper` count it like an
    ORM query. Runs in the caller's transaction, if any."""
    raw = _live_connection()

    def execute(sql: str, params: Any, many: bool, context: dict[str, Any]) -> list[tuple[Any, ...]]:
        # A server-binding cursor: the connection's own cursor class (Django's) binds on the client and never
        # prepares.
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(sql, params, prepare=True)
            # The result's status, not `description`: that builds a column object per column on every call.
            result = cursor.pgresult
            return cursor.fetchall() if result is not None and result.status == TUPLES_OK else []

    run: Callable[..., list[tuple[Any, ...]]] = execute
    for wrapper in reversed(connection.execute_wrappers):
        run = functools.partial(wrapper, run)
    context = {"connection": connection, "cursor": None}
    with connection.wrap_database_errors:
        if not connection.queries_logged:
            return run(sql, params, False, context)
        started = time.monotonic()
        try:
            return run(sql, params, False, context)
        finally:
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


@contextmanager
def binary_cursor() -> Iterator[CursorWrapper]:
    """A cursor of the default connection (same transaction) whose `%b` parameters travel apart from the SQL, in
    binary: for statements that carry thousands of values in arrays (batch ingestion). Django's cursors bind on the
    client, so the SQL text holds every value quoted and escaped: a 500-row insert of 9 columns cost 22 us of Python
    and 80 us of wall time per row that way, 3 us and 30 us in binary. Logged like Django's own cursors (tests count
    its statements with CaptureQueriesContext). PostgreSQL only."""
    raw = psycopg.Cursor(_live_connection())
    with raw:
        # django-stubs types the argument as Django's wrapper; Django itself passes the driver's cursor here.
        wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
        yield wrap(raw)  # type: ignore[arg-type]


def _live_connection() -> Any:
    """The default connection's driver connection, health-checked first as Django's own cursors are (once a
    request, CONN_HEALTH_CHECKS): a connection the server dropped between requests (a restart, a terminated
    backend) is replaced here instead of failing the request's first statement, which here is often the API key's
    lookup, with a 503."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    return connection.connection
