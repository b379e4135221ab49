"""Reads of send jobs: a client sees its own jobs only."""

from __future__ import annotations

import uuid

from config.errors import ConflictError, DomainError, NotFoundError
from consent.models import SendJob
from consent.send_jobs.files import job_path


class SendJobNotFoundError(NotFoundError):
    code = "not_found"
    title = "Unknown send job"


class SendJobNotCompletedError(ConflictError):
    code = "job_not_completed"
    title = "The send job has no result yet"


class SendJobResultGoneError(DomainError):
    code = "result_gone"
    status = 410
    title = "The send job's result was deleted"


def send_job_get(*, job_id: uuid.UUID, client_id: int) -> SendJob:
    """The job, if this client created it; another client's job is as unknown as one that never existed."""
    job = SendJob.objects.filter(pk=job_id, client_id=client_id).first()
    if job is None:
        raise SendJobNotFoundError("no send job with this id")
    return job


def send_job_result_path(*, job_id: uuid.UUID, client_id: int) -> str:
    """The path of a completed job's result file; 409 while it is queued or running, or when it failed."""
    job = send_job_get(job_id=job_id, client_id=client_id)
    if job.status != SendJob.Status.COMPLETED:
        raise SendJobNotCompletedError(f"the job is {job.status}: its result exists once it is completed")
    if not job.result_file:
        raise SendJobResultGoneError("the result is deleted some days after the job ended (it names addresses)")
    return str(job_path(job.result_file))
