"""The concurrency soak (issue 11, deliverable 4): eight client processes grant, withdraw, object, check (single
and bulk), ingest records that attach identifiers and merge subjects, and open rights requests, over HTTP against
a real gunicorn (two workers) and a real Celery worker, on a small shared population so that they collide.

Afterwards the clients' own journals are held against the database (tests/soak/audit.py): zero 5xx, every chain
verifies, every state row equals its re-projection, every event a client was told of is in the ledger as asked
and nothing else is there but the system's own events, every record and proposal told exists, every rights request
is final or legitimately open, and every person-bound identifier has one live subject.

ASSENT_SOAK_SECONDS sets how long the clients run: 20 in `make test`, 120 in `make soak`."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import app
from consent.models import ApiClient
from subjects.models import RightsRequest
from tests.catalogue import standard_catalogue
from tests.factories import ApiClientFactory, apply_catalogue
from tests.integration.processes import Gunicorn, Worker, wait_for
from tests.soak.audit import Audit, journals
from tests.soak.client import ClientPlan, run
from tests.soak.population import ONE_PER_PERSON

CLIENTS = 8
SCOPES = [
    ApiClient.Scope.CONSENT_WRITE,
    ApiClient.Scope.CONSENT_CHECK,
    ApiClient.Scope.CONSENT_READ,
    ApiClient.Scope.RECORDS_WRITE,
    ApiClient.Scope.REQUESTS_WRITE,
    ApiClient.Scope.REQUESTS_READ,
    ApiClient.Scope.REQUESTS_APPROVE,
]
WORKING = (RightsRequest.Status.VERIFIED, RightsRequest.Status.PROCESSING)


def soak_seconds() -> float:
    return float(os.environ.get("ASSENT_SOAK_SECONDS", "20"))


@pytest.fixture
def services(transactional_db: None, tmp_path: Path) -> Iterator[Gunicorn]:
    """The catalogue, then gunicorn and a worker on the test database (started after it, so they read it)."""
    apply_catalogue(standard_catalogue(one_per_person=list(ONE_PER_PERSON)))
    app.control.purge()
    (tmp_path / "mail").mkdir()
    worker = Worker(tmp_path / "mail", tmp_path / "worker.log")
    web = Gunicorn(tmp_path / "gunicorn.log", workers=4)  # more requests in the database at once: more collisions
    worker.start()
    web.start()
    try:
        yield web
    finally:
        web.stop()
        worker.stop()
        print(f"\n--- gunicorn log (tail) ---\n{web.log()[-3000:]}\n--- worker log (tail) ---\n{worker.log()[-3000:]}")


@pytest.mark.soak
@pytest.mark.worker
def test_eight_clients_colliding_on_forty_people_lose_nothing_and_never_see_a_5xx(
    services: Gunicorn, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given eight API clients, each its own process, on the same forty people
    made = [ApiClientFactory(name=f"soak-{i}", scopes=[str(s) for s in SCOPES]) for i in range(CLIENTS)]
    started_at = time.time()
    plans = [
        ClientPlan(i, services.base, key, started_at, soak_seconds(), str(tmp_path / f"client-{i}.jsonl"), 1000 + i)
        for i, (_, key) in enumerate(made)
    ]
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=run, args=(plan,), name=f"soak-client-{plan.index}") for plan in plans]

    # when they all call at once until the time is up
    for process in processes:
        process.start()
    for process in processes:
        process.join(soak_seconds() + 180)
    assert [p.exitcode for p in processes] == [0] * CLIENTS, "a client process failed"
    # and the worker has finished what the requests started
    wait_for(
        lambda: not RightsRequest.objects.filter(status__in=WORKING).exists(),
        timeout=300,
        every=1.0,
        what="the worker to finish the rights requests",
    )

    # then what every client was told is what the database holds
    audit = Audit(journals([Path(p.journal) for p in plans]), [client.pk for client, _ in made])
    audit.run()
    with capsys.disabled():
        print("\n" + audit.summary())
    assert audit.findings == []
    assert audit.events_checked > 0
