"""PostgreSQL failing under real processes (issue 11): backends terminated (`pg_terminate_backend`, only the test
database's) and the database refusing connections for a while, during checks, writes and an erasure.

- A check that cannot read answers 503 with a problem body that says `allowed: false`; once the database is back,
  the very next checks answer again, with no restart.
- A write is all or nothing: each one the client was told succeeded is in the ledger with its state; each one that
  failed left nothing; a retry with the same Idempotency-Key records it exactly once; every chain verifies.
- An erasure whose worker loses its connection mid-way resumes and completes exactly once.

FAULT_ROUNDS (default 1) scales the rounds for the full form (`make faults`); FAULTS counts what was injected."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from consent.models import ConsentEvent, ConsentState, IdempotencyKey
from subjects.identity import normalise
from subjects.models import ErasureLog, LinkedRecord, RetainedRecord, RightsRequest, RightsRequestPart, Subject
from subjects.selectors import identifier_owners
from tests.api import Api
from tests.catalogue import NEWSLETTER_NOTICE
from tests.factories import grant
from tests.integration.processes import PROJECT, DatabaseFaults, Gunicorn, Worker, django_env, wait_for
from tests.rights.conftest import rapi, rights_catalogue, rights_worker
from tests.rights.helpers import records_bulk, seed_person, wait_settled

__all__ = ["rapi", "rights_catalogue", "rights_worker"]  # fixtures of the erasure test

ROUNDS = max(1, int(os.environ.get("FAULT_ROUNDS", "1")))
CHECK = "/api/v1/consents/check"
BULK = "/api/v1/consents/check-bulk"
CONSENTS = "/api/v1/consents"
RECORDS = "/api/v1/records"
FAULTS: Counter[str] = Counter()  # what this module injected, for the lead's figures (printed at the end)

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def _report_faults() -> Iterator[None]:
    yield
    print(f"\ndatabase faults injected: {dict(FAULTS)}")


@pytest.fixture
def pg(transactional_db: None) -> Iterator[DatabaseFaults]:
    faults = DatabaseFaults()
    connection.ensure_connection()
    assert connection.connection is not None
    faults.spare(connection.connection.info.backend_pid)  # the test's own reads survive every fault
    yield faults
    FAULTS["backends terminated"] += faults.terminated
    FAULTS["outages"] += faults.outages
    faults.close()


@pytest.fixture
def gunicorn(transactional_db: None, tmp_path: Path) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path / "gunicorn.log", workers=2)
    server.start()
    yield server
    server.stop()


class Http:
    """Another service calling the API over HTTP with its key; a broken connection is an answer too (None)."""

    def __init__(self, base: str, key: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response | None:
        try:
            return self.client.post(path, json=body, headers=headers)
        except httpx.TransportError:
            return None


def assert_deny_unavailable(response: httpx.Response | None) -> None:
    assert response is not None
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert response.headers["Retry-After"]
    problem = response.json()
    assert (problem["status"], problem["code"], problem["allowed"], problem["reason"]) == (
        503,
        "unavailable",
        False,
        "unavailable",
    )
    assert problem["title"]
    assert problem["detail"]


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------
ANNA = {"email": "anna@example.de"}
BERT = {"email": "bert@example.de"}


def single(http: Http, subject: dict[str, str] = ANNA) -> httpx.Response | None:
    return http.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": "sms"})


def bulk(http: Http) -> httpx.Response | None:
    return http.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": [ANNA, BERT]})


def assert_checks_answer(http: Http) -> None:
    """Anna granted, Bert never asked: the real decisions."""
    one = single(http)
    many = bulk(http)
    assert one is not None
    assert many is not None
    assert (one.status_code, one.json()["allowed"], one.json()["reason"]) == (200, True, "granted"), one.text
    assert many.status_code == 200, many.text
    decisions = [(r["allowed"], r["reason"]) for r in many.json()["results"]]
    assert decisions == [(True, "granted"), (False, "unknown_subject")]


def test_checks_answer_the_decision_or_503_deny_while_the_database_fails_and_recover_with_no_restart(
    api: Api, make_client: Callable[..., str], gunicorn: Gunicorn, pg: DatabaseFaults
) -> None:
    # given a granted consent, and four clients checking it (single and bulk) over HTTP as fast as they can
    grant(ANNA)
    http = Http(gunicorn.base, make_client("consent:check"))
    assert_checks_answer(http)
    answers: Counter[str] = Counter()
    wrong: list[str] = []
    stop = threading.Event()

    def checker(ask: Callable[[Http], httpx.Response | None], allowed: object) -> None:
        while not stop.is_set():
            response = ask(http)
            if response is not None and response.status_code == 200:
                answers["decided"] += 1
                if allowed(response.json()) is not True:
                    wrong.append(response.text)
            elif response is not None and response.status_code == 503:
                answers["503"] += 1
                try:
                    assert_deny_unavailable(response)
                except AssertionError as exc:
                    wrong.append(f"{exc}: {response.text}")
            else:
                wrong.append("no answer" if response is None else f"{response.status_code} {response.text}")

    def one_granted(body: dict[str, Any]) -> bool:
        return (body["allowed"], body["reason"]) == (True, "granted")

    def bulk_decided(body: dict[str, Any]) -> bool:
        return [r["allowed"] for r in body["results"]] == [True, False]

    threads = [threading.Thread(target=checker, args=(single, one_granted)) for _ in range(3)]
    threads.append(threading.Thread(target=checker, args=(bulk, bulk_decided)))
    for thread in threads:
        thread.start()
    try:
        # when gunicorn's backends are terminated again and again while they check
        for _ in range(12 * ROUNDS):
            wait_for(lambda: pg.terminate() > 0 or None, timeout=10, every=0.02, what="a backend to terminate")
            seen = sum(answers.values())
            wait_for(lambda seen=seen: sum(answers.values()) >= seen + 8, timeout=30, what="checks answered")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)

    # then each answer was the decision or a 503 deny with its problem body, never an error or a wrong decision
    assert wrong == []
    assert answers["decided"] > 0
    FAULTS["checks answered under termination"] += answers["decided"]
    FAULTS["checks refused under termination"] += answers["503"]

    for _ in range(2 * ROUNDS):
        # when the database refuses connections for a while and every backend of gunicorn is terminated
        pg.away()
        try:
            # then every check, single and bulk, in every gunicorn worker, denies with 503 and says why
            for _ in range(4):
                assert_deny_unavailable(single(http))
                assert_deny_unavailable(bulk(http))
                FAULTS["checks refused while away"] += 2
        finally:
            pg.back()

        # when it accepts connections again, then the very next checks answer, with no restart of anything
        for _ in range(4):
            assert_checks_answer(http)
    assert gunicorn.alive()


# ---------------------------------------------------------------------------------------------------------
# Writes
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Write:
    """One write as its client sent it, and what the client was told."""

    path: str
    body: dict[str, Any]
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: int | None = None  # None: the connection broke, no answer
    sent: bool = False
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status in (200, 201)

    def send(self, http: Http) -> None:
        response = http.post(self.path, self.body, headers={"Idempotency-Key": self.key})
        self.status = None if response is None else response.status_code
        self.sent = True
        self.answer = response.json() if response is not None and response.content else {}


def consent_write(n: int, tag: str) -> Write:
    email = f"{tag}-{n}@example.de"
    body = {
        "subject": {"email": email},
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": NEWSLETTER_NOTICE,
        "source": "webshop",
    }
    return Write(CONSENTS, body)


def record_write(n: int, tag: str) -> Write:
    body = {
        "source": "pos",
        "external_id": f"{tag}-{n}",
        "category": "contact",
        "identifiers": {"customer_number": f"C-{tag}-{n}"},
        "occurred_at": "2026-01-05T10:00:00+00:00",
        "data": {"name": f"Name {n}"},
    }
    return Write(RECORDS, body)


def written(write: Write) -> tuple[int, int, int]:
    """(events, states, idempotency keys) of a consent write, or (records, subjects, 0) of a record write:
    what the database holds of it."""
    if write.path == RECORDS:
        identifier = ("customer_number", normalise("customer_number", write.body["identifiers"]["customer_number"]))
        owners = identifier_owners(identifiers=[identifier])[0]
        records = LinkedRecord.objects.filter(source="pos", external_id=write.body["external_id"]).count()
        return records, len(owners), 0
    identifier = ("email", normalise("email", write.body["subject"]["email"]))
    owners = identifier_owners(identifiers=[identifier])[0]
    events = ConsentEvent.objects.filter(subject_id__in=owners).count()
    states = ConsentState.objects.filter(subject_id__in=owners).count()
    keys = IdempotencyKey.objects.filter(key=write.key).count()
    return events, states, keys


def test_writes_under_terminated_backends_are_all_or_nothing_and_a_retry_records_each_exactly_once(
    api: Api, make_client: Callable[..., str], gunicorn: Gunicorn, pg: DatabaseFaults
) -> None:
    # given four clients each posting consents and records, every write with its own Idempotency-Key
    http = Http(gunicorn.base, make_client("consent:write", "records:write"))
    per_client = 15 * ROUNDS
    plans = [[(consent_write if n % 2 else record_write)(n, f"w{c}") for n in range(per_client)] for c in range(4)]
    done = threading.Event()

    def client(writes: list[Write]) -> None:
        for write in writes:
            write.send(http)

    threads = [threading.Thread(target=client, args=(writes,)) for writes in plans]
    for thread in threads:
        thread.start()

    # when gunicorn's backends are terminated again and again while they write: each time a few more writes
    # were answered, so that the writes go on between the faults
    def answered() -> int:
        return sum(1 for writes in plans for write in writes if write.sent)

    def terminator() -> None:
        while not done.is_set():
            seen = answered()
            while not done.is_set() and answered() < seen + 3:
                done.wait(0.01)
            pg.terminate()

    killer = threading.Thread(target=terminator)
    killer.start()
    for thread in threads:
        thread.join(120)
    done.set()
    killer.join(10)
    writes = [write for writes in plans for write in writes]
    told = Counter("ok" if w.succeeded else str(w.status) for w in writes)
    FAULTS["writes sent under termination"] += len(writes)
    FAULTS["writes failed under termination"] += sum(1 for w in writes if not w.succeeded)

    # then no write got anything but success or a 503 problem (or a broken connection)
    assert set(told) <= {"ok", "503", "None"}, told
    failed = [w for w in writes if not w.succeeded]
    assert failed, f"no write failed: the faults missed ({told})"
    assert told["ok"] > 0, told

    # and every write the client was told succeeded is whole in the database
    for write in writes:
        if write.succeeded:
            assert written(write) == ((1, 1, 1) if write.path == CONSENTS else (1, 1, 0)), write
            if write.path == CONSENTS:
                assert ConsentEvent.objects.filter(pk=write.answer["event"]).exists()
    # and every write that failed left nothing: no event without its state, no subject, no key, no record
    for write in failed:
        assert written(write) == (0, 0, 0), write

    # when each failed write is retried with the same Idempotency-Key
    for write in failed:
        write.send(http)
        assert write.status == 201, (write.status, write.answer)
        # then it is recorded once; a second retry replays the first answer and records nothing more
        first = dict(write.answer)
        write.send(http)
        assert (write.status, write.answer) == ((201, first) if write.path == CONSENTS else (200, first))
        assert written(write) == ((1, 1, 1) if write.path == CONSENTS else (1, 1, 0)), write
    FAULTS["writes retried"] += len(failed)

    # and the whole ledger verifies: every chain whole, every state equal to its re-projection
    verified = subprocess.run(
        [sys.executable, "manage.py", "verify_ledger"], cwd=PROJECT, env=django_env(), capture_output=True, text=True
    )
    assert verified.returncode == 0, verified.stderr
    assert "ledger verified" in verified.stdout
    assert ConsentEvent.objects.count() == ConsentState.objects.count() == sum(1 for w in writes if w.path == CONSENTS)


# ---------------------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------------------
def open_erasure(api: Api, email: str) -> str:
    response = api.post(
        "/api/v1/requests", {"kind": "erasure", "subject": {"email": email}, "channel": "portal", "verified": True}
    )
    assert response.status_code == 202, response.content
    request_id: str = response.json()["id"]
    assert api.post(f"/api/v1/requests/{request_id}/approve", {}).status_code == 202
    return request_id


def test_an_erasure_whose_worker_loses_its_database_mid_way_resumes_and_completes_exactly_once(
    rights_worker: Worker, rapi: Api, pg: DatabaseFaults
) -> None:
    # given a person with thousands of records: kept orders (re-encrypted under the retention key) and app records
    person = seed_person("pgkill", records_per_source=0)
    records_bulk(person.subject_id, "shop", "orders", 2000, "pgkill")
    records_bulk(person.subject_id, "app", "app_usage", 1000, "pgkill")
    total = LinkedRecord.objects.filter(subject_id=person.subject_id).count()

    # when the erasure runs and the worker's database backend is terminated each time it has made progress
    request_id = open_erasure(rapi, person.email)

    def progress() -> int:
        return sum(
            outcome.get("deleted", 0) + outcome.get("retained", 0)
            for outcome in RightsRequestPart.objects.filter(request_id=request_id).values_list("outcome", flat=True)
        )

    hits = 0
    seen = 0

    def settled() -> bool:
        return RightsRequest.objects.filter(pk=request_id, status__in=["completed", "failed"]).exists()

    for _ in range(3):  # the erasure has a few batches only: three faults land in different ones
        wait_for(lambda seen=seen: progress() > seen or settled(), timeout=60, every=0.005, what="progress")
        if settled() or not LinkedRecord.objects.filter(subject_id=person.subject_id).exists():
            break
        seen = progress()
        hits += pg.terminate()
    assert hits > 0, "no worker backend was terminated mid-erasure"

    # then the erasure completes, each record handled exactly once, and it is logged once
    body = wait_settled(rapi, request_id, timeout=120)
    assert body["status"] == "completed", body
    assert not LinkedRecord.objects.filter(subject_id=person.subject_id).exists()
    shop = next(s for s in body["result"]["sources"] if s["source"] == "shop")
    app = next(s for s in body["result"]["sources"] if s["source"] == "app")
    assert app["deleted"] == 1000
    assert shop["kept"][0]["count"] == 2000
    assert RetainedRecord.objects.filter(subject_id=person.subject_id).count() == 2000
    assert sum(s["deleted"] for s in body["result"]["sources"]) + 2000 == total
    assert ErasureLog.objects.filter(request_id=request_id).count() == 1
    assert Subject.objects.get(pk=person.subject_id).wrapped_key is None
    attempts = dict(RightsRequestPart.objects.filter(request_id=request_id).values_list("name", "attempts"))
    assert max(attempts.values()) >= 2, attempts  # a part lost its connection and was taken up again
    FAULTS["erasure backends terminated"] += hits
