"""A worker killed with SIGKILL (an OOM kill, a pulled plug) in the middle of a send job (issue 11's owed case).

Each round uploads a job while no worker runs, starts a worker, lets it get observably into the job and kills its
whole process group there. Where (`POINTS`, alternating by round):
- `between`: after at least one chunk is committed (its progress is visible), between two chunks or inside one;
- `commit`: the test holds the send log's table, so the worker waits inside a chunk's commit *after* it wrote the
  chunk's result lines to the file: the file is ahead of the committed checkpoint when the worker dies.
Then a new worker and beat (its safety net `send-jobs-resume-stalled`, run every second) take over. The job must
complete, its effects counted once: one send, one log row per line, each result line once and in input order, the
counts equal everywhere, the upload gone, no temporary file. FAULT_ROUNDS=5 (`make faults`) kills more often."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app
from consent.models import SendJob, SendRecipient
from tests.api import Api
from tests.integration.fast_beat import FastScheduler
from tests.integration.faults import Hold, fault_rounds, report_faults, waiting
from tests.integration.processes import Beat, Worker, wait_for
from tests.integration.send_jobs import Job, assert_effects_once, status_of, upload_job

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

POINTS = ("between", "commit")
LINES = 30_000
CHUNK = "1000"  # 30 chunks: a kill lands between committed ones
LEASE_SECONDS = "3"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[Worker, Beat]]:
    env = {"ASSENT_SEND_JOB_CHUNK_LINES": CHUNK, "ASSENT_SEND_JOB_LEASE_SECONDS": LEASE_SECONDS}
    mail = tmp_path / "mail"
    mail.mkdir()
    worker = Worker(mail, tmp_path / "worker.log", env=env)
    beat_env = {**env, "ASSENT_TEST_BEAT_FAST": "send-jobs-resume-stalled", "ASSENT_TEST_BEAT_SECONDS": "1"}
    beat = Beat(tmp_path / "beat.log", env=beat_env, scheduler=f"{FastScheduler.__module__}.{FastScheduler.__name__}")
    app.control.purge()
    yield worker, beat
    beat.stop()
    worker.stop()


def kill_inside(worker: Worker, job: Job, point: str) -> None:
    """Start a worker, wait until it is inside the job at `point`, SIGKILL it there."""
    hold = None

    def progressed() -> bool:
        processed = SendJob.objects.filter(pk=job.id).values_list("processed", flat=True).first() or 0
        return 0 < processed < LINES

    try:
        worker.start()
        if point == "commit":
            wait_for(progressed, timeout=90, every=0.003, what="a first committed chunk")
            hold = Hold.table(SendRecipient)
            wait_for(lambda: waiting() > 0, timeout=30, what="the worker waiting inside a chunk's commit")
        else:
            wait_for(progressed, timeout=90, every=0.003, what="the worker between chunks")
        worker.kill()
    finally:
        if hold is not None:
            hold.release()
    row = SendJob.objects.get(pk=job.id)
    assert row.status == "running", (point, row.status)
    assert 0 < row.processed < LINES, (point, row.processed)


def test_a_worker_killed_inside_a_send_job_is_replaced_and_every_effect_happens_once(
    processes: tuple[Worker, Beat], api: Api
) -> None:
    worker, beat = processes
    injected: dict[str, int] = {}
    for round_no in range(fault_rounds()):
        point = POINTS[round_no % len(POINTS)]
        # given a job uploaded while no worker runs
        job = upload_job(api, f"r{round_no}", LINES)

        # when a worker gets inside it and is killed there
        kill_inside(worker, job, point)
        injected[point] = injected.get(point, 0) + 1
        if point == "commit":  # the dead worker's last chunk reached the file but not the database
            row = SendJob.objects.get(pk=job.id)
            size = (Path(settings.ASSENT_SEND_JOB_DIR) / row.result_file).stat().st_size
            assert size > row.checkpoint["result"], (size, row.checkpoint)

        # and a new worker and beat take over
        worker.start()
        beat.start()
        wait_for(lambda job=job: status_of(job) == "completed", timeout=120, every=0.2, what="the job to complete")
        beat.stop()
        worker.stop()

        # then the job completed once, each effect counted once
        assert SendJob.objects.get(pk=job.id).attempts >= 2  # claimed again after the kill
        assert_effects_once(job)
    report_faults(
        "send_job_worker_killed", rounds=fault_rounds(), faults_injected=sum(injected.values()), by_point=injected
    )
