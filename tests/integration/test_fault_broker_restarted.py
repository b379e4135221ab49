"""The broker (Redis) restarted while work is queued: its queue is gone, nothing may be lost.

The test runs a Redis of its own that keeps nothing on disk (as a crash without persistence), and points gunicorn,
the worker and beat at it (CELERY_BROKER_URL). With no worker running it queues, through the HTTP API: one rights
request of each kind, a double opt-in grant (its confirmation mail) and the lifting of a restriction (its Art. 18(3)
mail). It checks the queue holds their messages, restarts Redis, checks the queue is empty, and starts a worker and
beat. The database is the source of truth: beat's safety nets (`rights-resume-stalled`, `resend-unsent-confirmations`,
the product's own entries, run every second here) find the work that waited too long and queue it again.

Their thresholds (parts waiting 2 minutes, confirmations 5) are passed by moving the rows' clocks back instead of
waiting. Webhooks: test_fault_broker_restarted_webhooks.py. Send jobs (issue 12): not covered here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.db.models import F

from consent.models import Confirmation, ConsentEvent
from subjects.models import ErasureLog, RightsExport, RightsRequest, RightsRequestEvent, RightsRequestPart, Subject
from tests.catalogue import rights_catalogue
from tests.factories import apply_catalogue
from tests.integration.fast_beat import FastScheduler
from tests.integration.faults import KINDS, SAFETY_NETS, leftovers, report_faults, unfinished_parts
from tests.integration.processes import PROJECT, Beat, Gunicorn, RedisServer, Worker, django_env, wait_for
from tests.rights.helpers import drain, seed_person

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

QUEUE = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
DETAILS: dict[str, dict[str, Any]] = {
    "rectification": {"profile": {"name": "Corrected"}},
    "restriction": {"ground": "18(1)(a)"},
    "objection": {"scope": "direct_marketing"},
}
DOI_EMAIL = "doi-broker@example.de"


class Http:
    """The API over HTTP, as a client service calls it."""

    def __init__(self, base: str, key: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def post(self, path: str, body: dict[str, Any], expect: int) -> dict[str, Any]:
        response = self.client.post(path, json=body)
        assert response.status_code == expect, response.text
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def stack(
    broker: RedisServer, tmp_path: Path, make_client: Callable[..., str]
) -> Iterator[tuple[Http, Worker, Beat, Path]]:
    apply_catalogue(rights_catalogue())
    var = tmp_path / "var"
    var.mkdir()
    env = {"CELERY_BROKER_URL": broker.url, "ASSENT_VAR_DIR": str(var), "ASSENT_RIGHTS_LEASE_SECONDS": "3"}
    gunicorn = Gunicorn(tmp_path / "gunicorn.log", workers=1, env=env)
    mail = tmp_path / "mail"
    mail.mkdir()
    worker = Worker(mail, tmp_path / "worker.log", env=env)
    scheduler = f"{FastScheduler.__module__}.{FastScheduler.__name__}"
    beat_env = {**env, "ASSENT_TEST_BEAT_FAST": ",".join(SAFETY_NETS), "ASSENT_TEST_BEAT_SECONDS": "1"}
    beat = Beat(tmp_path / "beat.log", env=beat_env, scheduler=scheduler)
    gunicorn.start()
    yield Http(gunicorn.base, make_client()), worker, beat, var
    for process in (beat, worker, gunicorn):
        process.stop()


def as_the_dpo(broker: RedisServer, *calls: str) -> None:
    """Run rights services in a Django process of its own on the test's broker, as the admin would."""
    code = "from subjects.rights.requests import Actor, request_extend, request_reject\n" + "\n".join(calls)
    env = django_env(CELERY_BROKER_URL=broker.url)
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=PROJECT, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def queued(broker: RedisServer) -> int:
    return int(redis.Redis.from_url(broker.url).llen(QUEUE))


def test_work_queued_when_the_broker_restarts_is_found_in_the_database_and_done_once(
    stack: tuple[Http, Worker, Beat, Path], broker: RedisServer
) -> None:
    http, worker, beat, var = stack

    # given a completed restriction (run in this process), whose lifting is asked for while no worker runs
    lifted = seed_person("broker-lift", records_per_source=1)
    restriction = http.post(
        "/api/v1/requests",
        {
            "kind": "restriction",
            "subject": {"email": lifted.email},
            "channel": "api",
            "verified": True,
            "details": {"ground": "18(1)(a)"},
        },
        202,
    )["id"]
    assert drain(restriction).status == "completed"
    http.post(f"/api/v1/requests/{restriction}/lift", {}, 202)

    # and one request of each kind, and a double opt-in grant, also while no worker runs
    requests: dict[str, str] = {}
    people = {kind: seed_person(f"broker-{kind}", records_per_source=2) for kind in KINDS}
    for kind, person in people.items():
        body = {
            "kind": kind,
            "subject": {"email": person.email},
            "channel": "api",
            "verified": True,
            "details": DETAILS.get(kind, {}),
        }
        requests[kind] = http.post("/api/v1/requests", body, 202)["id"]
    http.post(f"/api/v1/requests/{requests['erasure']}/approve", {}, 202)
    grant = {
        "subject": {"email": DOI_EMAIL},
        "purpose": "newsletter",
        "channel": "email",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
    }
    assert http.post("/api/v1/consents", grant, 201)["state"] == "pending_confirmation"

    # and the DPO extends the access request and rejects another request (in admin: a process of its own whose
    # notices to the person go to the same broker)
    refused = seed_person("broker-refused", records_per_source=0)
    body = {"kind": "erasure", "subject": {"email": refused.email}, "channel": "api", "verified": False, "details": {}}
    rejected = http.post("/api/v1/requests", body, 202)["id"]
    as_the_dpo(
        broker,
        f"request_extend(request_id={requests['access']!r}, months=1, reason='many stores', actor=Actor('staff:dpo'))",
        f"request_reject(request_id={rejected!r}, reason='manifestly unfounded', actor=Actor('staff:dpo'))",
    )
    events = {kind: ConsentEvent.objects.filter(subject_id=p.subject_id).count() for kind, p in people.items()}

    # when the broker restarts, losing every message it held
    parts = RightsRequestPart.objects.filter(request_id__in=requests.values()).exclude(name="finish").count()
    # the parts, the confirmation mail, the lifting, two notices (and the restriction's part, run here already: its
    # completion mail went to this process's own broker, never to this one, and is found by the safety net too)
    assert queued(broker) == parts + 5
    broker.kill()
    broker.start()
    assert queued(broker) == 0

    # and the work waits longer than the safety nets' thresholds, then a worker and beat start
    earlier = timedelta(minutes=10)
    RightsRequestPart.objects.filter(request_id__in=requests.values()).update(enqueued_at=F("enqueued_at") - earlier)
    Confirmation.objects.update(created_at=F("created_at") - earlier)
    RightsRequest.objects.filter(pk=restriction).update(lift_requested_at=F("lift_requested_at") - earlier)
    RightsRequestEvent.objects.filter(event__in=("extended", "rejected", "completed")).update(at=F("at") - earlier)
    worker.start()
    beat.start()

    # then every request completes, the confirmation is mailed and the restriction lifted, each once
    def completed() -> bool:
        return not RightsRequest.objects.filter(pk__in=requests.values()).exclude(status="completed").exists()

    for what, condition in (
        ("every request to complete", completed),
        ("the confirmation mail", lambda: not Confirmation.objects.filter(mailed_at__isnull=True).exists()),
        ("the lifting", lambda: RightsRequest.objects.filter(pk=restriction, lifted_at__isnull=False).exists()),
        # the extension, the rejection, the lifting, and a completion mail for the lifted restriction and each
        # request of KINDS (waiting for one fewer let the worker stop before the last mail: a loop round found it)
        ("the notices", lambda: RightsRequestEvent.objects.filter(event="person_told").count() >= 4 + len(KINDS)),
    ):
        wait_for(condition, timeout=90, every=0.2, what=what)
    beat.stop()
    worker.stop()
    # Count messages, not files: Django's file backend names a file by the second and the backend object's id, so two
    # mails sent within one second can share a file (a loop round counted 10 files for 11 mails).
    mails = worker.mails()

    def sent_to(email: str) -> int:
        return len(re.findall(rf"^To: {re.escape(email)}$", mails, re.M))

    assert sent_to(DOI_EMAIL) == 1
    assert sent_to(lifted.email) == 2  # the lifting, the restriction's completion
    assert sent_to(people["access"].email) == 2  # the extension, the completion
    assert sent_to(refused.email) == 1  # the rejection
    for kind in KINDS:  # each request's completion, the erasure's to the address sealed before it went
        assert sent_to(people[kind].email) == (2 if kind == "access" else 1), kind
    assert len(re.findall(r"^To: ", mails, re.M)) == 5 + len(KINDS)
    told = RightsRequestEvent.objects.filter(event="person_told").values_list("request_id", "note")
    assert sorted((str(r), n) for r, n in told if n in ("extension", "rejection")) == sorted(
        [(requests["access"], "extension"), (rejected, "rejection")]
    )
    assert Subject.objects.get(pk=lifted.subject_id).restricted_at is None
    for kind in ("access", "portability"):
        assert RightsExport.objects.filter(request_id=requests[kind]).count() == 1
    assert ErasureLog.objects.filter(request_id=requests["erasure"]).count() == 1
    assert ConsentEvent.objects.filter(subject_id=people["objection"].subject_id).count() == events["objection"]
    assert unfinished_parts() == []
    assert leftovers(var) == []
    report_faults("broker_restarted", faults_injected=1, messages_lost=parts + 5, recovered_from_database=parts + 4)
