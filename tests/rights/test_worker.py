"""Every kind of request end to end on a real Celery worker against the real broker (Redis) and PostgreSQL; the
crash test (SIGKILL mid-erasure); and the scan after an erasure of the full pg_dump, the mail files, the export
files, the erasure log and the worker's log."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from consent.models import EvidenceArchive
from subjects.models import (
    ErasureLog,
    LinkedRecord,
    RetainedRecord,
    RightsRequest,
    RightsRequestPart,
    Subject,
    Suppression,
)
from subjects.rights import texts
from subjects.rights.exports import export_path
from tests.api import Api
from tests.integration.conftest import Worker, wait_for
from tests.rights.erasure_checks import assert_gone_from_every_table, busy_person
from tests.rights.helpers import records_bulk, seed_person, wait_settled
from tests.rights.test_access import download

REQUESTS = "/api/v1/requests"
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def open_request(api: Api, kind: str, subject: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    response = api.post(
        REQUESTS, {"kind": kind, "subject": subject, "channel": "portal", "verified": True, "details": details or {}}
    )
    assert response.status_code == 202, response.content
    request_id: str = response.json()["id"]
    if kind == "erasure":
        assert api.post(f"{REQUESTS}/{request_id}/approve", {}).status_code == 202
    return request_id


def test_every_kind_of_request_runs_to_completion_on_a_real_worker(rights_worker: Worker, rapi: Api) -> None:
    person = seed_person("wk1", records_per_source=2)
    check = {"subject": {"email": person.email}, "purpose": "offers", "channel": "post"}

    # access and portability: an export, downloadable through its link
    for kind in ("access", "portability"):
        body = wait_settled(rapi, open_request(rapi, kind, {"email": person.email}))
        assert body["status"] == "completed", body
        archive = download(rapi, body["result"]["export_url"])
        assert len(json.loads(archive.read("data.json"))["records"]) == 11

    # rectification
    body = wait_settled(
        rapi, open_request(rapi, "rectification", {"email": person.email}, {"profile": {"name": "Name-wk1-new"}})
    )
    assert body["result"]["rectified"] == {"identifiers": [], "profile": ["name"]}

    # restriction, and its lifting: the worker mails the person first
    request_id = open_request(rapi, "restriction", {"email": person.email}, {"ground": "18(1)(a)"})
    assert wait_settled(rapi, request_id)["status"] == "completed"
    assert rapi.post("/api/v1/consents/check", check).json()["reason"] == "restricted"
    assert rapi.post(f"{REQUESTS}/{request_id}/lift", {}).status_code == 202
    wait_for(lambda: rapi.post("/api/v1/consents/check", check).json()["allowed"], what="the lift")
    assert f"To: {person.email}" in rights_worker.mails()
    assert "Art. 18(3)" in rights_worker.mails()

    # objection
    body = wait_settled(rapi, open_request(rapi, "objection", {"email": person.email}, {"scope": "direct_marketing"}))
    assert body["result"]["in_force"] is True
    assert rapi.post("/api/v1/consents/check", check).json()["reason"] == "objected"

    # erasure
    body = wait_settled(rapi, open_request(rapi, "erasure", {"email": person.email}))
    assert body["status"] == "completed", body
    assert body["result"]["message"] == texts.ERASURE_DONE
    assert Subject.objects.get(pk=person.subject_id).wrapped_key is None


def test_an_unknown_persons_request_completes_like_any_other(rights_worker: Worker, rapi: Api) -> None:
    # The same parts, the same result keys, the same states: nothing in the answer tells a caller whether Assent knew
    # the person. (Not their timings: a timed assertion fails on a loaded machine, as this one did under a test loop.)
    person = seed_person("wk2", records_per_source=1)
    bodies = {}
    for who, reference in (("known", {"email": person.email}), ("unknown", {"email": "nobody-wk2@example.de"})):
        bodies[who] = wait_settled(rapi, open_request(rapi, "access", reference))
    assert bodies["unknown"]["status"] == bodies["known"]["status"] == "completed"
    assert set(bodies["unknown"]["result"]) == set(bodies["known"]["result"])
    assert [p["name"] for p in bodies["unknown"]["parts"]] == [p["name"] for p in bodies["known"]["parts"]]
    assert [p["status"] for p in bodies["unknown"]["parts"]] == [p["status"] for p in bodies["known"]["parts"]]
    assert bodies["unknown"]["result"]["message"] == texts.NO_DATA_FOUND


def test_a_worker_killed_mid_erasure_is_replaced_and_the_erasure_completes_once_leaving_nothing(
    rights_worker: Worker, rapi: Api
) -> None:
    # given a person with thousands of records: 6,000 web-shop orders (kept restricted, re-encrypted under the
    # retention key: the slow part) and 3,000 app records
    person = seed_person("crash1", records_per_source=0)
    records_bulk(person.subject_id, "shop", "orders", 6000, "crash1")
    records_bulk(person.subject_id, "app", "app_usage", 3000, "crash1")
    total = LinkedRecord.objects.filter(subject_id=person.subject_id).count()
    assert total == 9001

    # when the erasure is approved and the worker is killed (SIGKILL) in the middle of it
    request_id = open_request(rapi, "erasure", {"email": person.email})

    def midway() -> bool:
        for outcome, status in RightsRequestPart.objects.filter(request_id=request_id).values_list("outcome", "status"):
            if status == "running" and outcome.get("deleted", 0) + outcome.get("retained", 0) > 0:
                return True
        return False

    wait_for(midway, timeout=60, every=0.005, what="the erasure under way")
    rights_worker.kill()
    left = LinkedRecord.objects.filter(subject_id=person.subject_id).count()
    assert 0 < left < total, "the worker was killed mid-erasure"
    running = RightsRequestPart.objects.filter(request_id=request_id, status="running")
    assert running.exists()

    # and a new worker starts
    rights_worker.start()
    body = wait_settled(rapi, request_id, timeout=120)

    # then the erasure completed, each record was handled exactly once, and nothing is left
    assert body["status"] == "completed", body
    assert not LinkedRecord.objects.filter(subject_id=person.subject_id).exists()
    shop = next(s for s in body["result"]["sources"] if s["source"] == "shop")
    app = next(s for s in body["result"]["sources"] if s["source"] == "app")
    assert app["deleted"] == 3000
    assert shop["deleted"] == 1  # the contact record
    assert shop["kept"][0]["count"] == 6000
    assert RetainedRecord.objects.filter(subject_id=person.subject_id).count() == 6000
    assert sum(s["deleted"] for s in body["result"]["sources"]) + 6000 == total
    assert Suppression.objects.count() == 3
    assert ErasureLog.objects.filter(request_id=request_id).count() == 1
    assert EvidenceArchive.objects.count() == 0  # this person gave no consent
    assert Subject.objects.get(pk=person.subject_id).wrapped_key is None
    attempts = dict(RightsRequestPart.objects.filter(request_id=request_id).values_list("name", "attempts"))
    assert max(attempts.values()) >= 2, attempts  # the killed part was claimed again


def test_after_an_erasure_nothing_of_the_person_is_found_anywhere(
    rights_worker: Worker, rapi: Api, tmp_path: Path
) -> None:
    # given a person with data everywhere, who also received mail-free consent writes with an Idempotency-Key,
    # a profile read, a send, and an access export
    person = busy_person(rapi, "scan1")
    bystander = seed_person("scan-bystander", records_per_source=1)
    access = open_request(rapi, "access", {"email": person.email})
    assert wait_settled(rapi, access)["status"] == "completed"
    assert export_path(access).exists()

    # when the person is erased
    erasure = open_request(rapi, "erasure", {"email": person.email})
    body = wait_settled(rapi, erasure)
    assert body["status"] == "completed", body
    # the completion mail went to the address sealed before it was erased, and the sealed copy went after it
    wait_for(
        lambda: RightsRequest.objects.filter(pk=erasure, mail_to_enc__isnull=True).exists(),
        what="the erasure's completion mail",
    )
    rights_worker.stop()

    # then a scan of the whole database dump, the mail files, the export files, the erasure log and the worker's
    # log finds none of their identifiers or values
    db = settings.DATABASES["default"]
    dump = subprocess.run(
        ["pg_dump", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], "--no-owner", db["NAME"]],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "item-scan-bystander-pos-0" not in dump  # values are never in clear, not even a bystander's
    # The mails went to the person: their address is in the To: line, and nothing of theirs anywhere else.
    mails = rights_worker.mails()
    # the erasure's completion, and the access's unless its task came after the addresses went (then it has none)
    assert 1 <= mails.count(f"To: {person.email}") <= 2
    mails = mails.replace(f"To: {person.email}", "To: (the person)")
    places = {"pg_dump": dump, "mail": mails, "worker log": rights_worker.log_path.read_text()}
    var = Path(settings.VAR_DIR)
    for path in var.rglob("*"):
        if path.is_file():
            places[str(path)] = path.read_bytes().decode("latin-1")
    assert str(bystander.subject_id) in dump
    for secret in [*person.secrets, "call-scan1", "Name-scan1"]:
        for where, text in places.items():
            assert secret not in text, f"{secret!r} found in {where}"
    assert not export_path(access).exists()
    assert not (var / "exports" / "parts" / access).exists()
    assert_gone_from_every_table(person, [person.subject_id])
