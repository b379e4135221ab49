"""Issue 15: one JSON line per request and per task, carrying a request id from the web into the worker, and no
person's e-mail address anywhere in the logs of a whole journey."""

from __future__ import annotations

import json
import logging

import pytest

from config.logs import json_formatter
from config.ops import readiness, readiness_forget
from tests.api import Api
from tests.integration.processes import Worker
from tests.rights.helpers import wait_settled

EMAILS = ["log-anna@example.de", "log-ben@example.de"]
REQUEST_ID = "journey-4711"
pytestmark = [pytest.mark.worker]


def test_a_journey_logs_json_lines_with_the_request_id_and_no_email(
    rights_worker: Worker, rapi: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    for email in EMAILS:
        body = {"subject": {"email": email}, "purpose": "newsletter", "channel": "sms", "action": "withdraw"}
        assert rapi.post("/api/v1/consents", {**body, "source": "shop"}).status_code == 201, email
    checked = rapi.post(
        "/api/v1/consents/check", {"subject": {"email": EMAILS[0]}, "purpose": "newsletter", "channel": "sms"}
    )
    assert checked.status_code == 200
    assert checked["X-Request-ID"]  # generated when the caller sends none
    opened = rapi.post(
        "/api/v1/requests",
        {"kind": "access", "subject": {"email": EMAILS[0]}, "channel": "callcenter", "verified": True},
        headers={"X-Request-ID": REQUEST_ID},
    )
    assert opened.status_code == 202, opened.content
    assert opened["X-Request-ID"] == REQUEST_ID
    assert wait_settled(rapi, opened.json()["id"])["status"] == "completed"
    readiness_forget()
    assert readiness()["worker"] == "ok"  # the worker's tasks wrote its heartbeat
    rights_worker.stop()  # its log is complete

    formatter = json_formatter()
    web = [json.loads(formatter.format(record)) for record in caplog.records]
    worker = [json.loads(line) for line in rights_worker.log_path.read_text().splitlines() if line.startswith("{")]
    every_line = [json.dumps(line) for line in web + worker] + [r.getMessage() for r in caplog.records]

    requests = [line for line in web if line["logger"] == "assent.requests" and line["method"] == "POST"]
    routes = ["api/v1/consents", "api/v1/consents", "api/v1/consents/check", "api/v1/requests"]
    assert [line["route"] for line in requests] == routes
    assert all(line["client"] == "client-0" and line["duration_ms"] >= 0 for line in requests)
    assert [line["status"] for line in requests] == [201, 201, 200, 202]
    tasks = [line for line in worker if line["logger"] == "assent.tasks"]
    assert tasks, rights_worker.log_path.read_text()[-2000:]
    carried = [line for line in tasks if line["request_id"] == REQUEST_ID]
    assert carried, tasks
    assert all(line["state"] == "SUCCESS" and line["task"] for line in carried)
    leaked = [line for line in every_line for email in EMAILS if email in line or email.split("@")[0] in line]
    assert leaked == []
