"""A send job end to end on a real Celery worker against the real broker (Redis) and PostgreSQL: uploaded through
the API, gated by the worker, its progress and result read through the API."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.api import Api
from tests.integration.conftest import Worker, wait_for
from tests.integration.send_jobs import assert_effects_once, status_of, upload_job

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_gates_a_send_job_to_its_result(worker: Worker, api: Api) -> None:
    # given a job of 3,000 lines: consenting people, unknown addresses and malformed lines in turn
    job = upload_job(api, "wk", 3000)

    # when the worker has taken it
    wait_for(lambda: status_of(job) == "completed", timeout=60, what=f"the job to complete:\n{worker.log()[-2000:]}")

    # then the API shows it completed, with its counts, and streams each line's answer in input order
    body: dict[str, Any] = api.get(f"/api/v1/send-jobs/{job.id}").json()
    assert (body["status"], body["total"], body["processed"], body["allowed"], body["blocked"]) == (
        "completed",
        3000,
        3000,
        1000,
        2000,
    )
    response = api.get(body["result_url"].split("testserver", 1)[-1])
    lines = [orjson.loads(line) for line in b"".join(response.streaming_content).splitlines()]
    assert [(line["allowed"], line.get("reason")) for line in lines] == job.expected
    assert_effects_once(job)
