"""/healthz and /readyz as a load balancer probes them: JSON, no key, no personal data, cheap."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from config import ops
from config.ops import heartbeat_write, readiness_forget

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_answers() -> Any:
    readiness_forget()
    yield
    readiness_forget()


def test_healthz_answers_without_touching_the_database() -> None:
    with CaptureQueriesContext(connection) as queries:
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert len(queries) == 0


def test_readyz_is_503_naming_the_worker_while_no_worker_has_beaten(catalogue: dict[str, Any]) -> None:
    response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["worker"]
    assert body["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "redis": "ok",
        "broker": "ok",
        "worker": "fail",
        "catalogue": "ok",
    }


def test_readyz_is_200_once_a_worker_has_beaten(catalogue: dict[str, Any]) -> None:
    heartbeat_write(force=True)

    response = Client().get("/readyz")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ok"


def test_readyz_names_the_catalogue_when_it_has_no_purposes() -> None:
    heartbeat_write(force=True)

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["catalogue"]


def test_readyz_keeps_its_answer_for_a_while(catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe every second from several balancers costs one round of checks per process and second. (The window is
    widened here so that a slow, shared test machine cannot let it pass between two calls.)"""
    monkeypatch.setattr(ops, "READY_CACHE_SECONDS", 60.0)
    heartbeat_write(force=True)
    Client().get("/readyz")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert Client().get("/readyz").status_code == 200
    assert len(queries) == 0


def test_readyz_asks_again_once_its_answer_is_older_than_the_window(
    catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ops, "READY_CACHE_SECONDS", 0.0)
    heartbeat_write(force=True)
    assert Client().get("/readyz").status_code == 200
    cache.delete(ops.HEARTBEAT_KEY)  # the worker has gone

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["failed"] == ["worker"]


def test_the_probes_refuse_other_methods_than_get() -> None:
    assert Client().post("/healthz").status_code == 405
    assert Client().post("/readyz").status_code == 405
