"""What the send-job tests with real workers share: a job of known answers uploaded through the API, and the
check that its effects happened exactly once (one send, one log row per line, the result lines once, in order)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from django.conf import settings

from consent.models import Send, SendJob, SendRecipient
from tests.api import Api
from tests.factories import grant

NDJSON = "application/x-ndjson"


@dataclass
class Job:
    id: uuid.UUID
    expected: list[tuple[bool, str | None]]  # (allowed, reason) per line


def people(count: int, tag: str) -> list[str]:
    """`count` people who consented to the newsletter by SMS."""
    return [grant({"email": f"{tag}-{n}@example.de"}) for n in range(count)]


def upload_job(api: Api, tag: str, lines: int, granted: int = 20) -> Job:
    """A job of `lines` lines: in turn a consenting person by e-mail, an unknown address, a malformed line."""
    people(granted, tag)
    body: list[bytes] = []
    expected: list[tuple[bool, str | None]] = []
    for k in range(lines):
        if k % 3 == 0:
            body.append(orjson.dumps({"email": f"{tag}-{k % granted}@example.de"}))
            expected.append((True, None))
        elif k % 3 == 1:
            body.append(orjson.dumps({"email": f"{tag}-nobody-{k}@example.de"}))
            expected.append((False, "unknown_subject"))
        else:
            body.append(b"{broken")
            expected.append((False, "invalid_reference"))
    response = api.http.post(
        "/api/v1/send-jobs?campaign=c&purpose=newsletter&channel=sms",
        b"\n".join(body) + b"\n",
        content_type=NDJSON,
        **api._headers(None),
    )
    assert response.status_code == 202, response.content
    return Job(uuid.UUID(response.json()["id"]), expected)


def status_of(job: Job) -> str:
    return SendJob.objects.get(pk=job.id).status


def assert_effects_once(job: Job) -> None:
    """One send; one log row per line, each index once; the result file holds each line once, in input order, with
    the expected answers; the counts agree everywhere; the upload is gone."""
    row = SendJob.objects.get(pk=job.id)
    total = len(job.expected)
    allowed = sum(1 for a, _ in job.expected if a)
    assert (row.status, row.total, row.processed, row.allowed, row.blocked) == (
        "completed",
        total,
        total,
        allowed,
        total - allowed,
    )
    assert Send.objects.filter(job=row).count() == 1
    send = Send.objects.get(pk=row.send_id)
    assert (send.allowed_count, send.blocked_count) == (allowed, total - allowed)
    indexes = list(SendRecipient.objects.filter(send=send).order_by("index").values_list("index", flat=True))
    assert indexes == list(range(total))
    result = (Path(settings.ASSENT_SEND_JOB_DIR) / row.result_file).read_bytes().splitlines()
    lines = [orjson.loads(line) for line in result]
    assert [line["index"] for line in lines] == list(range(total))
    assert [(line["allowed"], line.get("reason")) for line in lines] == job.expected
    assert not (Path(settings.ASSENT_SEND_JOB_DIR) / row.upload_file).exists()
    assert not list(Path(settings.ASSENT_SEND_JOB_DIR).glob("*.tmp"))
