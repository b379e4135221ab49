"""The access matrix's world is built once per run inside an outer transaction, and every cell runs in a savepoint
inside that one and is rolled back: the way Django's TestCase does setUpTestData. A cell that revokes, approves or
deletes leaves the next cell the same world; nothing outlives the run.

`db` is overridden here: pytest-django's wraps every test in a TestCase of its own (some 40 ms a test, a good part
of a thousand cells' time), where a savepoint is all a cell needs. Asking for `db` still makes pytest-django create
the test database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.db import transaction

from consent.clients import clients_forget_cache
from tests.access.world import World, world_build


def _atomic() -> Any:
    atomic = transaction.atomic()
    # As Django's TestCase marks its own: a durable service transaction may open inside it.
    atomic._from_testcase = True
    atomic.__enter__()
    return atomic


def _rollback(atomic: Any) -> None:
    transaction.set_rollback(True)
    atomic.__exit__(None, None, None)


@pytest.fixture(scope="package")
def world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    with django_db_blocker.unblock():
        outer = _atomic()
        try:
            yield world_build()
        finally:
            _rollback(outer)


@pytest.fixture
def db(world: World, django_db_blocker: Any) -> Iterator[None]:
    """One cell's transaction: a savepoint in the world's, rolled back after the cell."""
    with django_db_blocker.unblock():
        inner = _atomic()
        try:
            yield
        finally:
            _rollback(inner)


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> None:
    """Overrides tests/conftest.py's for the matrix: the shared cache (rate-limit counters, pending sign-ins) still
    starts empty in every cell, but the process's catalogue snapshot is kept. The catalogue is the world's in every
    cell (a cell's change to it is rolled back, and the snapshot never saw it: its reset runs on commit), and
    reloading it in each of some thousand cells would cost more than the cells themselves."""
    clients_forget_cache()
    cache.delete_pattern("*")  # this run's keys only (the prefix is per process): never FLUSHDB


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The matrix's size, for the report: how many routes the URL configuration has and how many cells cover them."""
    if not any(report.nodeid.startswith("tests/access/") for report in terminalreporter.stats.get("passed", [])):
        return
    # Imported here, not at the top: conftest files load before Django is set up, and these read the URL conf.
    from tests.access.routes import all_routes
    from tests.access.test_access_matrix import CELL_COUNT

    terminalreporter.write_line(f"access matrix: {len(all_routes())} routes, {CELL_COUNT} cells")
