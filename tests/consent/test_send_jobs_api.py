"""Send jobs: POST /api/v1/send-jobs and its progress and result (API.md). A large send is uploaded as NDJSON, gated
by a worker with the rules of POST /sends (here run in process; tests/integration has the real worker and the one
killed in the middle), and logged as one send. A malformed line is blocked in the result, not a failed job."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from consent.gates.unsubscribe import unsubscribe_token_parse
from consent.models import ConsentState, Send, SendJob, SendRecipient
from consent.send_jobs import files, services
from consent.send_jobs.services import send_job_claim, send_job_run
from tests.api import Api, assert_problem
from tests.factories import grant, ingest

JOBS = "/api/v1/send-jobs"
SENDS = "/api/v1/sends"
CONSENTS = "/api/v1/consents"
NDJSON = "application/x-ndjson"


@pytest.fixture(autouse=True)
def job_dir(tmp_path: Path) -> Iterator[Path]:
    """This test's own directory of job files, so that what a test leaves there can be seen."""
    with override_settings(ASSENT_SEND_JOB_DIR=tmp_path / "send-jobs"):
        yield tmp_path / "send-jobs"


def ndjson(*lines: Any) -> bytes:
    """One line per item: bytes as they are (a malformed line), anything else as JSON."""
    return b"".join((line if isinstance(line, bytes) else orjson.dumps(line)) + b"\n" for line in lines)


def upload(
    api: Api,
    body: bytes,
    *,
    query: str = "campaign=Winter&purpose=newsletter&channel=sms",
    content_type: str = NDJSON,
    encoding: str | None = None,
) -> Any:
    headers = api._headers({"Content-Encoding": encoding} if encoding else None)
    return api.http.post(f"{JOBS}?{query}", body, content_type=content_type, **headers)


def run_job(job_id: str) -> SendJob:
    """What the worker does, in process."""
    send_job_run(job_id=uuid.UUID(job_id))
    return SendJob.objects.get(pk=job_id)


def result_of(api: Api, job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"{JOBS}/{job_id}/result")
    assert response.status_code == 200, response
    assert response["Content-Type"] == NDJSON
    body = b"".join(response.streaming_content)
    return [orjson.loads(line) for line in body.splitlines()]


def log_of(send_id: Any) -> list[tuple[int, str | None, bool, str]]:
    rows = SendRecipient.objects.filter(send_id=send_id).order_by("index")
    return [(r.index, str(r.subject_id) if r.subject_id else None, r.allowed, r.reason) for r in rows]


# ---------------------------------------------------------------------------------------------------------
# The same answers as /sends
# ---------------------------------------------------------------------------------------------------------
def people(api: Api) -> list[dict[str, Any]]:
    """References of every kind of answer: granted, withdrawn, unknown, ambiguous, an id with an unknown identifier
    beside it, a merged-away id, a person who objected to direct marketing, a grant too old."""
    anna = grant({"email": "anna@example.de"})
    ben = grant({"email": "ben@example.de"})
    api.post(
        CONSENTS,
        {"subject": {"id": ben}, "purpose": "newsletter", "channel": "sms", "action": "withdraw", "source": "app"},
    )
    carla = grant({"email": "carla@example.de", "phone": "+49 171 1234567"})
    dora = grant({"email": "dora@example.de"})
    api.post(
        CONSENTS,
        {"subject": {"id": dora}, "purpose": "offers", "action": "object", "source": "callcenter"},
    )
    eva = grant({"email": "eva@example.de"})  # her grant is older than the newsletter's 730 days
    ConsentState.objects.filter(subject_id=eva).update(granted_at=timezone.now() - timedelta(days=800))
    return [
        {"id": eva},
        {"email": "Anna@Example.de "},
        {"email": "nobody@example.de"},
        {"id": ben},
        {"id": carla, "customer_number": "C-unknown"},
        {"id": anna, "email": "ben@example.de"},
        {"phone": "0171 1234567"},
        {"id": str(uuid.uuid4())},
        {"id": dora},
        {"email": "anna@example.de"},  # the same person twice: two lines, two answers
    ]


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_each_line_of_a_job_is_answered_as_sends_answers_the_same_recipient(api: Api, channel: str) -> None:
    # given people with every kind of answer, and (for e-mail) Carla's consent by e-mail confirmed
    recipients = people(api)
    if channel == "email":
        ConsentState.objects.filter(purpose="newsletter").update(channel="email", confirmed=True)
        recipients.append({"id": recipients[3]["id"], "email": "anna@example.de"})  # Ben's id, Anna's address

    # when the same recipients go once through /sends and once as a job
    sent = api.post(SENDS, {"campaign": "c", "purpose": "newsletter", "channel": channel, "recipients": recipients})
    assert sent.status_code == 201, sent.content
    queued = upload(api, ndjson(*recipients), query=f"campaign=c&purpose=newsletter&channel={channel}")
    assert queued.status_code == 202, queued.content
    job = run_job(queued.json()["id"])

    # then every line says what /sends said, and both logs hold the same rows
    by_index = {item["index"]: item for item in sent.json()["allowed"] + sent.json()["blocked"]}
    lines = result_of(api, str(job.id))
    assert [line["index"] for line in lines] == list(range(len(recipients)))
    for line in lines:
        expected = by_index[line["index"]]
        assert line["recipient"] == expected["recipient"]
        assert line["allowed"] == ("subject" in expected and "reason" not in expected)
        if line["allowed"]:
            assert line["subject"] == expected["subject"]
            assert line["list_unsubscribe"] == f"<{line['unsubscribe_url']}>"
            assert line["list_unsubscribe_post"] == expected["list_unsubscribe_post"]
            token = line["unsubscribe_url"].rsplit("/u/", 1)[1]
            assert unsubscribe_token_parse(token) == (uuid.UUID(line["subject"]), job.send_id)
        else:
            assert line["reason"] == expected["reason"]
    assert log_of(job.send_id) == log_of(sent.json()["send"])
    reasons = {line.get("reason") for line in lines}
    assert {None, "expired", "withdrawn", "unknown_subject", "ambiguous_subject"} <= reasons, reasons


def test_a_job_for_a_legitimate_interest_purpose_reads_existing_customer_addresses(api: Api) -> None:
    # given a customer whose address came from a purchase (UWG §7(3)) and one whose address did not
    ingest("pos", "R-1", {"email": "kim@example.org"}, purchase=True)
    ingest("pos", "C-1", {"email": "lea@example.org"}, category="contact")
    recipients = [{"email": "kim@example.org"}, {"email": "lea@example.org"}]
    query = "campaign=c&purpose=offers&channel=email"

    sent = api.post(SENDS, {"campaign": "c", "purpose": "offers", "channel": "email", "recipients": recipients})
    job = run_job(upload(api, ndjson(*recipients), query=query).json()["id"])

    assert [(line["allowed"], line.get("reason")) for line in result_of(api, str(job.id))] == [
        (True, None),
        (False, "no_existing_customer"),
    ]
    assert log_of(job.send_id) == log_of(sent.json()["send"])


# ---------------------------------------------------------------------------------------------------------
# The job's life: queued, progress, completed, logged once
# ---------------------------------------------------------------------------------------------------------
def test_a_job_is_queued_then_completed_with_its_progress_and_one_send(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})

    queued = upload(api, ndjson({"email": "anna@example.de"}, {"email": "nobody@example.de"}))

    assert queued.status_code == 202, queued.content
    assert set(queued.json()) == {"id", "status"}
    assert queued.json()["status"] == "queued"
    assert queued["Location"] == f"{JOBS}/{queued.json()['id']}"
    job_id = queued.json()["id"]
    assert api.get(f"{JOBS}/{job_id}").json() == {
        "id": job_id,
        "status": "queued",
        "total": 2,
        "processed": 0,
        "allowed": 0,
        "blocked": 0,
        "send": None,
        "result_url": None,
    }
    assert_problem(api.get(f"{JOBS}/{job_id}/result"), 409, "job_not_completed")

    job = run_job(job_id)

    body = api.get(f"{JOBS}/{job_id}").json()
    assert body == {
        "id": job_id,
        "status": "completed",
        "total": 2,
        "processed": 2,
        "allowed": 1,
        "blocked": 1,
        "send": str(job.send_id),
        "result_url": f"{settings.ASSENT_BASE_URL}{JOBS}/{job_id}/result",
    }
    send = Send.objects.get(pk=job.send_id)
    assert (send.campaign, send.purpose, send.channel, send.allowed_count, send.blocked_count) == (
        "Winter",
        "newsletter",
        "sms",
        1,
        1,
    )
    assert log_of(send.pk) == [(0, anna, True, "granted"), (1, None, False, "unknown_subject")]
    assert [line["subject"] for line in result_of(api, job_id)] == [anna, None]
    assert not files.job_path(job.upload_file).exists()  # the references are not kept once gated


def test_a_gzipped_upload_is_gated_like_a_plain_one(api: Api) -> None:
    grant({"email": "anna@example.de"})
    lines = ndjson(*([{"email": "anna@example.de"}, {"email": "nobody@example.de"}] * 500))

    queued = upload(api, gzip.compress(lines), encoding="gzip")

    assert queued.status_code == 202, queued.content
    job = run_job(queued.json()["id"])
    assert (job.total, job.allowed, job.blocked) == (1000, 500, 500)
    assert [line["allowed"] for line in result_of(api, str(job.id))] == [True, False] * 500


def test_an_upload_larger_than_the_request_memory_limit_streams_to_disk(api: Api) -> None:
    # Django's DATA_UPLOAD_MAX_MEMORY_SIZE guards request.body; the job never reads the body whole
    lines = ndjson(*([{"email": "anna@example.de"}] * 2000))
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024):
        queued = upload(api, lines)
    assert queued.status_code == 202, queued.content
    assert SendJob.objects.get(pk=queued.json()["id"]).total == 2000


def test_malformed_lines_are_blocked_invalid_reference_and_the_rest_of_the_job_goes_on(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})
    body = ndjson(
        {"email": "anna@example.de"},
        b"{not json",
        ["a list"],
        {"email": "not-an-address"},
        {"fax": "123"},
        {"id": "nope"},
        {},
        b"",
        b'{"email": "a\\u0000b@example.de"}',
        b"x" * (files.MAX_LINE_BYTES + 10),
    ) + orjson.dumps({"email": "anna@example.de"})  # the last line without its newline

    job = run_job(upload(api, body).json()["id"])

    lines = result_of(api, str(job.id))
    assert (job.status, job.total, job.processed, job.allowed, job.blocked) == ("completed", 11, 11, 2, 9)
    assert [line["index"] for line in lines] == list(range(11))
    assert lines[0]["allowed"]
    assert lines[10]["allowed"]
    assert lines[10]["subject"] == anna
    for line in lines[1:10]:
        assert line["allowed"] is False
        assert line["reason"] == "invalid_reference"
        assert line["subject"] is None
        assert line["error"]
    assert lines[1]["recipient"] is None
    assert lines[1]["error"] == "line: not a JSON document"
    assert lines[2]["recipient"] == ["a list"]
    assert lines[3]["error"] == "recipient.email: is not an e-mail address"
    assert lines[4]["error"].startswith("recipient.fax:")
    assert lines[5]["error"] == "recipient.id: is not a UUID"
    assert lines[9]["error"] == "line: longer than 64 KiB"
    assert lines[3]["recipient"] == {"email": "not-an-address"}  # echoed as sent; the error never echoes it
    assert [row[3] for row in log_of(job.send_id)] == ["granted", *["invalid_reference"] * 9, "granted"]


# ---------------------------------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("purpose=newsletter&channel=sms", "invalid", "campaign"),
        ("campaign=%20&purpose=newsletter&channel=sms", "invalid", "campaign"),
        (f"campaign={'x' * 201}&purpose=newsletter&channel=sms", "invalid", "campaign"),
        ("campaign=c&channel=sms", "invalid", "purpose"),
        ("campaign=c&purpose=newsletter", "invalid", "channel"),
        ("campaign=c&purpose=no-such&channel=sms", "purpose_unknown", "purpose"),
        ("campaign=c&purpose=order-updates&channel=sms", "purpose_not_marketing", "purpose"),
        ("campaign=c&purpose=newsletter&channel=post", "channel_not_permitted", "channel"),
    ],
)
def test_a_job_with_a_bad_query_is_400_as_sends_is(api: Api, query: str, code: str, field: str) -> None:
    assert_problem(upload(api, ndjson({"email": "anna@example.de"}), query=query), 400, code, field)
    assert not SendJob.objects.exists()


@pytest.mark.parametrize("body", [b"", b"\n\n  \n"])
def test_a_job_without_references_is_400(api: Api, body: bytes, job_dir: Path) -> None:
    assert_problem(upload(api, body), 400, "empty", "body")
    assert not SendJob.objects.exists()
    assert list(job_dir.glob("*")) == []


def test_a_job_body_that_is_not_ndjson_or_not_gzip_is_refused(api: Api) -> None:
    line = ndjson({"email": "anna@example.de"})
    assert_problem(upload(api, line, content_type="application/json"), 415, "unsupported_media_type")
    assert_problem(upload(api, line, encoding="br"), 415, "unsupported_media_type")
    assert_problem(upload(api, line, encoding="gzip"), 400, "malformed", "body")
    assert_problem(upload(api, gzip.compress(line)[:-6], encoding="gzip"), 400, "malformed", "body")
    assert not SendJob.objects.exists()


def test_a_job_of_more_lines_than_allowed_is_413_and_leaves_no_file(api: Api, job_dir: Path) -> None:
    with override_settings(ASSENT_SEND_JOB_MAX_LINES=3):
        response = upload(api, ndjson(*([{"email": "anna@example.de"}] * 4)))
    assert_problem(response, 413, "too_large")
    assert not SendJob.objects.exists()
    assert list(job_dir.glob("*")) == []


def test_a_gzip_bomb_is_413_before_it_is_inflated(api: Api) -> None:
    bomb = gzip.compress(b"\n" * (64 * 1024 * 1024))  # 64 MiB of newlines in some 64 KiB
    with override_settings(ASSENT_SEND_JOB_MAX_BYTES=1024 * 1024):
        assert_problem(upload(api, bomb, encoding="gzip"), 413, "too_large")


def test_a_job_is_seen_only_by_the_client_that_sent_it(api: Api, api_for: Any) -> None:
    job_id = upload(api, ndjson({"email": "anna@example.de"})).json()["id"]
    run_job(job_id)
    other = api_for("sends:create")

    assert_problem(other.get(f"{JOBS}/{job_id}"), 404, "not_found")
    assert_problem(other.get(f"{JOBS}/{job_id}/result"), 404, "not_found")
    assert_problem(api.get(f"{JOBS}/{uuid.uuid4()}"), 404, "not_found")
    assert api.get(f"{JOBS}/{job_id}").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Resuming: a worker that died between writing a chunk's result lines and committing them
# ---------------------------------------------------------------------------------------------------------
class Killed(BaseException):
    """The worker's death, as far as this process can stage one: nothing after it runs."""


def test_a_job_whose_worker_died_mid_chunk_is_resumed_and_each_line_counts_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    anna = grant({"email": "anna@example.de"})
    recipients = [{"email": "anna@example.de"}, {"email": "nobody@example.de"}, b"{broken"] * 4
    job_id = uuid.UUID(upload(api, ndjson(*recipients)).json()["id"])
    real_write = services.result_write
    writes = []

    def write_then_die(**kwargs: Any) -> int:
        # the third chunk's lines reach the file, then the worker dies before its commit
        end = real_write(**kwargs)
        writes.append(end)
        if len(writes) == 3:
            raise Killed
        return end

    monkeypatch.setattr(services, "result_write", write_then_die)
    with override_settings(ASSENT_SEND_JOB_CHUNK_LINES=2), pytest.raises(Killed):
        send_job_run(job_id=job_id)
    monkeypatch.undo()
    job = SendJob.objects.get(pk=job_id)
    assert (job.status, job.processed) == ("running", 4)
    assert send_job_claim(job_id=job_id) is None  # the dead worker's lease is still live
    SendJob.objects.filter(pk=job_id).update(claimed_until=job.claimed_until.replace(year=2000))  # it runs out

    with override_settings(ASSENT_SEND_JOB_CHUNK_LINES=2):
        job = run_job(str(job_id))

    assert (job.status, job.processed, job.allowed, job.blocked, job.attempts) == ("completed", 12, 4, 8, 2)
    lines = result_of(api, str(job_id))
    assert [line["index"] for line in lines] == list(range(12))
    assert [line["subject"] for line in lines] == [anna, None, None] * 4
    assert [row[0] for row in log_of(job.send_id)] == list(range(12))
    assert Send.objects.count() == 1
    send = Send.objects.get()
    assert (send.allowed_count, send.blocked_count) == (4, 8)


def test_a_jobs_files_are_deleted_some_days_after_it_ended_and_its_log_stays(api: Api, job_dir: Path) -> None:
    job = run_job(upload(api, ndjson({"email": "anna@example.de"})).json()["id"])
    assert services.send_jobs_purge() == 0  # a fresh result stays

    later = job.finished_at + timedelta(days=settings.ASSENT_SEND_JOB_KEEP_DAYS, seconds=1)
    assert services.send_jobs_purge(now=later) == 1

    assert list(job_dir.glob("*")) == []
    assert_problem(api.get(f"{JOBS}/{job.id}/result"), 410, "result_gone")
    assert api.get(f"{JOBS}/{job.id}").json()["status"] == "completed"
    assert SendRecipient.objects.filter(send_id=job.send_id).count() == 1
