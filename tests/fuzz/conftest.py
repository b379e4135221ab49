"""The fuzzers' shared fixtures: an API key of every scope, the WSGI application the API is fuzzed through, and the
count of generated cases printed at the end of the run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections

from consent.models import ApiClient
from tests.fuzz.budget import COUNTS, STATUSES

# A caller is one of these: a key holding exactly one scope, a key holding all of them, a key limited to one purpose,
# or no key at all. Every operation is fuzzed with every one of them.
SCOPES = tuple(ApiClient.Scope.values)
CALLERS = (*SCOPES, "all", "newsletter-only", "anonymous")


@pytest.fixture
def api_keys(catalogue: dict[str, Any], make_client: Callable[..., str]) -> dict[str, str | None]:
    keys: dict[str, str | None] = {scope: make_client(scope) for scope in SCOPES}
    keys["all"] = make_client()
    keys["newsletter-only"] = make_client(purposes=("newsletter",))
    keys["anonymous"] = None
    return keys


@pytest.fixture
def wsgi_app(db: None) -> Iterator[WSGIHandler]:
    """Django's own WSGI handler, in this process, on the test's database transaction. Like Django's test client,
    it must not close the connection between requests (that would end the test's transaction)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if COUNTS:
        parts = ", ".join(f"{name} {count:,}" for name, count in sorted(COUNTS.items()))
        terminalreporter.write_line(f"fuzz: {sum(COUNTS.values()):,} generated cases sent ({parts})")
        answered = ", ".join(f"{status}: {count:,}" for status, count in sorted(STATUSES.items()))
        terminalreporter.write_line(f"fuzz: answered {answered}")
