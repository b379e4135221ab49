"""A worker killed with SIGKILL (an OOM kill, a pulled plug) in the middle of every kind of rights request.

Each round opens one request of each kind (access, portability, erasure, rectification, restriction, objection)
while no worker runs, then, kind after kind, starts a worker, lets it get observably into the request's work and
kills its whole process group there. Where the worker is killed (`POINTS`, a different place each round):

- `first`: the test holds the person's row lock, so the worker waits inside the first batch that changes the
  person (its part row says running, its backend waits for the lock);
- `finish`: the test holds the request's row lock, so the worker waits inside the finish step, after the other
  parts are done and (access, portability) after the export file was written;
- `piece`: the test holds the linked records' table, so the worker waits while writing an access part's piece, with
  its temporary file open;
- `zip`: while the finish step writes the export (its temporary file exists);
- `batch`: between two committed batches of an erasure (some records gone, others not).

Then a new worker and beat (its safety net `rights-resume-stalled`, run every second) take over. Every request
must complete; nothing is done twice, counted by the effects in the database and on disk (one export row and one
export file, the records erased or retained exactly once, one erasure log row, the objection's ledger events once,
one e-mail identifier after a rectification); nothing is left (no part pending or running, no temporary file, no
piece, no vault key without its store). FAULT_ROUNDS=5 (`make faults`) kills at every point of every kind."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core import signing
from django.test import override_settings

from config.celery import app
from consent.models import ConsentEvent, EvidenceArchive, Objection
from subjects.identity import parse_reference
from subjects.models import (
    ErasureLog,
    Identifier,
    LinkedRecord,
    RetainedRecord,
    RightsExport,
    RightsRequest,
    RightsRequestEvent,
    RightsRequestPart,
    Subject,
    Suppression,
    VaultKey,
)
from subjects.rights.exports import _SALT, export_open, export_path, parts_dir
from subjects.rights.mails import COMPLETION
from subjects.selectors import subject_resolve
from tests.catalogue import rights_catalogue
from tests.factories import apply_catalogue
from tests.integration.fast_beat import FastScheduler
from tests.integration.faults import (
    KINDS,
    Case,
    Hold,
    fault_rounds,
    leftovers,
    open_case,
    report_faults,
    settled,
    statuses,
    unfinished_parts,
    waiting,
)
from tests.integration.processes import Beat, Worker, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

POINTS: dict[str, tuple[str, ...]] = {
    "access": ("piece", "zip", "finish"),
    "portability": ("zip", "finish", "piece"),
    "erasure": ("batch", "first", "finish"),
    "rectification": ("first", "finish"),
    "restriction": ("finish", "first"),
    "objection": ("first", "finish"),
}
HEAVY = 3000  # extra records of the access, portability and erasure people: their parts take observable time
LEASE_SECONDS = "3"
FAST_BEAT = "1"


@pytest.fixture
def var(tmp_path: Path) -> Path:
    """The workers' ASSENT_VAR_DIR: exports, pieces, the erasure log, of this test alone."""
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def processes(tmp_path: Path, var: Path) -> Iterator[tuple[Worker, Beat]]:
    env = {"ASSENT_VAR_DIR": str(var), "ASSENT_RIGHTS_LEASE_SECONDS": LEASE_SECONDS}
    mail = tmp_path / "mail"
    mail.mkdir()
    worker = Worker(mail, tmp_path / "worker.log", env=env)
    beat_env = {**env, "ASSENT_TEST_BEAT_FAST": "rights-resume-stalled", "ASSENT_TEST_BEAT_SECONDS": FAST_BEAT}
    scheduler = f"{FastScheduler.__module__}.{FastScheduler.__name__}"
    beat = Beat(tmp_path / "beat.log", env=beat_env, scheduler=scheduler)
    app.control.purge()
    yield worker, beat
    beat.stop()
    worker.stop()


def test_a_worker_killed_inside_every_kind_of_request_is_replaced_and_every_request_completes_once(
    processes: tuple[Worker, Beat], var: Path
) -> None:
    worker, beat = processes
    apply_catalogue(rights_catalogue())
    injected: dict[str, int] = {}
    for round_no in range(fault_rounds()):
        # given one request of each kind, opened while no worker runs
        cases = [open_case(kind, f"r{round_no}-{kind}", heavy=HEAVY) for kind in KINDS]
        for case in cases:
            case.point = POINTS[case.kind][round_no % len(POINTS[case.kind])]
            case.before = before(case)

        # when, kind after kind, a worker gets inside the request's work and is killed there
        for case in cases:
            kill_inside(worker, case, var)
            key = f"{case.kind}@{case.point}"
            injected[key] = injected.get(key, 0) + 1

        # and a new worker and beat take over
        worker.start()
        beat.start()
        wait_for(lambda cases=cases: settled(cases), timeout=180, every=0.2, what="every request to settle")
        # and each person is told once that their request is done (a task queued when the request completed)
        wait_for(lambda cases=cases: all(completion_told(c) for c in cases), timeout=60, every=0.2, what="the mails")
        beat.stop()
        worker.stop()

        # then every request completed once, and nothing is left
        assert statuses(cases) == dict.fromkeys(KINDS, "completed"), worker.log()[-3000:]
        for case in cases:
            assert_completed_once(case)
            EFFECTS[case.kind](case, var)
        assert unfinished_parts() == []
        assert leftovers(var) == []
        assert_no_orphaned_vault_keys()
        mails = worker.mails()
        for case in cases:  # one completion mail each, the erasure's to its sealed address, the rectified to the new
            sent = mails.count(f"To: {case.person.email}") + (
                mails.count(f"To: {case.new_email}") if case.new_email else 0
            )
            assert sent == 1, (case.kind, case.point, sent)
    report_faults(
        "worker_killed", rounds=fault_rounds(), faults_injected=sum(injected.values()), by_kind_and_point=injected
    )


def completion_told(case: Case) -> bool:
    return RightsRequestEvent.objects.filter(request_id=case.request_id, event="person_told", note=COMPLETION).exists()


# ---------------------------------------------------------------------------------------------------------
# Killing
# ---------------------------------------------------------------------------------------------------------
def kill_inside(worker: Worker, case: Case, var: Path) -> None:
    """Start a worker, wait until it is inside the case's request at the case's point, SIGKILL it there."""
    request_id = case.request_id
    hold: Hold | None = None
    arrived: Callable[[], bool]
    if case.point == "first":
        hold = Hold.row(Subject, case.person.subject_id)
        arrived = lambda: waiting() > 0  # noqa: E731
    elif case.point == "finish":
        hold = Hold.row(RightsRequest, request_id)
        arrived = lambda: waiting() > 0  # noqa: E731
    elif case.point == "piece":
        hold = Hold.table(LinkedRecord)
        pieces = var / "exports" / "parts" / str(request_id)
        arrived = lambda: waiting() > 0 and any(pieces.glob("*.tmp"))  # noqa: E731
    elif case.point == "zip":
        arrived = lambda: any((var / "exports").glob(f"{request_id}.zip.enc.*.tmp"))  # noqa: E731
    else:  # batch

        def arrived() -> bool:
            outcomes = RightsRequestPart.objects.filter(request_id=request_id, status="running").values_list(
                "outcome", flat=True
            )
            return any(o.get("deleted", 0) + o.get("retained", 0) > 0 for o in outcomes)

    try:
        worker.start()
        every = 0.003 if case.point in ("zip", "batch") else 0.05  # progress is seen in passing; a wait stays
        wait_for(arrived, timeout=90, every=every, what=f"the worker inside the {case.kind} request ({case.point})")
        worker.kill()
    finally:
        if hold is not None:
            hold.release()
    # the kill landed inside the request: it is unfinished, with parts claimed by the dead worker
    request = RightsRequest.objects.get(pk=request_id)
    assert request.status == "processing", (case.kind, case.point, request.status)
    case.killed_parts = list(
        RightsRequestPart.objects.filter(request_id=request_id, status="running").values_list("name", flat=True)
    )
    assert case.killed_parts, (case.kind, case.point)
    if case.point == "zip":
        assert any((var / "exports").glob(f"{request_id}.zip.enc.*.tmp"))
    if case.point == "batch":
        left = LinkedRecord.objects.filter(subject_id=case.person.subject_id).count()
        assert 0 < left < case.records, (left, case.records)


# ---------------------------------------------------------------------------------------------------------
# Effects: each counted once
# ---------------------------------------------------------------------------------------------------------
def before(case: Case) -> dict[str, int]:
    subject_id = case.person.subject_id
    return {
        "events": ConsentEvent.objects.filter(subject_id=subject_id).count(),
        "objections": Objection.objects.filter(subject_id=subject_id).count(),
        "identifiers": Identifier.objects.filter(subject_id=subject_id).count(),
    }


def assert_completed_once(case: Case) -> None:
    history = list(RightsRequestEvent.objects.filter(request_id=case.request_id).values_list("event", flat=True))
    assert history.count("completed") == 1, history
    assert history.count("processing") == 1, history
    attempts = dict(RightsRequestPart.objects.filter(request_id=case.request_id).values_list("name", "attempts"))
    for name in case.killed_parts:
        assert attempts[name] >= 2, (case.kind, case.point, attempts)  # claimed again after the kill


def export_records(case: Case, var: Path) -> int:
    token = signing.TimestampSigner(salt=_SALT).sign(str(case.request_id))
    with override_settings(VAR_DIR=var):
        chunks, _size = export_open(request_id=case.request_id, token=token)
        archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    return len(json.loads(archive.read("data.json"))["records"])


def export_effects(case: Case, var: Path) -> None:
    assert RightsExport.objects.filter(request_id=case.request_id).count() == 1
    with override_settings(VAR_DIR=var):
        assert export_path(case.request_id).exists()
        assert not parts_dir(case.request_id).exists()
    assert len(list((var / "exports").glob(f"{case.request_id}*"))) == 1
    assert export_records(case, var) == case.records  # every record in the export, each once


def erasure_effects(case: Case, var: Path) -> None:
    subject_id = case.person.subject_id
    result = RightsRequest.objects.get(pk=case.request_id).result
    deleted = sum(s["deleted"] for s in result["sources"])
    retained = RetainedRecord.objects.filter(subject_id=subject_id).count()
    assert not LinkedRecord.objects.filter(subject_id=subject_id).exists()
    assert deleted + retained == case.records  # each record erased or retained, once
    assert retained == sum(k["count"] for k in result["kept"] if k["category"] == "orders") > 0
    assert ErasureLog.objects.filter(request_id=case.request_id).count() == 1
    lines = [json.loads(line) for line in (var / "erasure.log").read_text().splitlines() if line.strip()]
    assert sum(1 for line in lines if line["request"] == str(case.request_id)) >= 1
    assert Suppression.objects.count() >= case.before["identifiers"]
    assert VaultKey.objects.filter(subject_id=subject_id, purpose="retention").count() == 1
    assert EvidenceArchive.objects.filter(subject_id=subject_id).count() <= 1
    assert Subject.objects.get(pk=subject_id).wrapped_key is None


def rectification_effects(case: Case, var: Path) -> None:
    subject_id = case.person.subject_id
    assert Identifier.objects.filter(subject_id=subject_id).count() == case.before["identifiers"]
    assert Identifier.objects.filter(subject_id=subject_id, kind="email").count() == 1
    assert subject_resolve(reference=parse_reference({"email": case.new_email})) == subject_id
    assert subject_resolve(reference=parse_reference({"email": case.person.email})) is None


def restriction_effects(case: Case, var: Path) -> None:
    assert Subject.objects.get(pk=case.person.subject_id).restricted_at is not None


def objection_effects(case: Case, var: Path) -> None:
    # recorded when the request was opened (Art. 21: in force at once); the part confirms it without a second
    # record, however often it runs
    subject_id = case.person.subject_id
    assert Objection.objects.filter(subject_id=subject_id).count() == case.before["objections"] == 1
    assert ConsentEvent.objects.filter(subject_id=subject_id).count() == case.before["events"]
    assert RightsRequest.objects.get(pk=case.request_id).result["in_force"] is True


EFFECTS: dict[str, Callable[[Case, Path], None]] = {
    "access": export_effects,
    "portability": export_effects,
    "erasure": erasure_effects,
    "rectification": rectification_effects,
    "restriction": restriction_effects,
    "objection": objection_effects,
}


def assert_no_orphaned_vault_keys() -> None:
    """Every live vault key has its store: retained records, or a consent evidence archive."""
    for vault_id, purpose in VaultKey.objects.filter(wrapped_key__isnull=False).values_list("pk", "purpose"):
        if purpose == "retention":
            assert RetainedRecord.objects.filter(vault_id=vault_id).exists(), vault_id
        else:
            assert EvidenceArchive.objects.filter(vault_id=vault_id).exists(), vault_id
