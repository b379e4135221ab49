"""Celery tasks: thin, ids only, each calling one service."""

from __future__ import annotations

import random
import uuid

from celery import shared_task
from celery.app.task import Task

from consent.double_opt_in import confirmation_send, confirmations_unsent
from consent.expiry import consents_expire
from consent.ledger.verification import verification_run
from consent.models import LedgerVerification
from consent.send_jobs.services import send_job_fail, send_job_run, send_jobs_purge, send_jobs_stalled
from consent.services import idempotency_keys_purge
from consent.task_names import DELIVER_WEBHOOKS, RUN_SEND_JOB, SEND_CONFIRMATION
from consent.webhooks.delivery import deliveries_run, webhooks_purge
from subjects.rights.context import TRANSIENT

SEND_JOB_RETRIES = 8


@shared_task(
    name=SEND_CONFIRMATION,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=8,
)
def send_confirmation(confirmation_id: str) -> None:
    confirmation_send(confirmation_id=uuid.UUID(confirmation_id))


@shared_task
def resend_unsent_confirmations() -> None:
    for confirmation_id in confirmations_unsent():
        send_confirmation.delay(str(confirmation_id))


@shared_task
def purge_idempotency_keys() -> None:
    idempotency_keys_purge()


@shared_task
def expire_consents() -> None:
    consents_expire()


@shared_task
def verify_ledger_incremental() -> None:
    verification_run(kind=LedgerVerification.Kind.INCREMENTAL)


@shared_task
def verify_ledger_full() -> None:
    verification_run(kind=LedgerVerification.Kind.FULL)


@shared_task(bind=True, name=RUN_SEND_JOB, max_retries=SEND_JOB_RETRIES, acks_late=True, reject_on_worker_lost=True)
def run_send_job(self: Task, job_id: str) -> None:
    try:
        result = send_job_run(job_id=uuid.UUID(job_id))
    except TRANSIENT as exc:
        if self.request.retries >= SEND_JOB_RETRIES:
            send_job_fail(
                job_id=uuid.UUID(job_id), error=f"gave up after {SEND_JOB_RETRIES} retries: {type(exc).__name__}"
            )
            return
        countdown = min(60.0, 2.0**self.request.retries) * (0.5 + random.random() / 2)
        raise self.retry(exc=exc, countdown=countdown) from None
    if result.retry_in is not None and not self.request.is_eager:
        # Another worker holds a live lease on the job; if it died, the lease ends and this claims the job then.
        run_send_job.apply_async((job_id,), countdown=result.retry_in)


@shared_task
def resume_send_jobs() -> int:
    """Safety net: send jobs whose message was lost or whose worker died go to the broker again."""
    ids = send_jobs_stalled()
    for job_id in ids:
        run_send_job.delay(str(job_id))
    return len(ids)


@shared_task
def purge_send_jobs() -> int:
    return send_jobs_purge()


@shared_task(name=DELIVER_WEBHOOKS, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhooks() -> None:
    """Send every due webhook delivery. Enqueued after each outbox write commits and every few seconds by beat;
    runs that overlap share the work (each delivery is claimed with a lease)."""
    if deliveries_run().more:
        deliver_webhooks.delay()


@shared_task
def purge_webhooks() -> None:
    webhooks_purge()
