"""Celery tasks: thin, ids only, each calling one service."""

from __future__ import annotations

import uuid

from celery import shared_task

from consent.double_opt_in import confirmation_send, confirmations_unsent
from consent.expiry import consents_expire
from consent.ledger.verification import verification_run
from consent.models import LedgerVerification
from consent.services import idempotency_keys_purge
from consent.task_names import DELIVER_WEBHOOKS, SEND_CONFIRMATION
from consent.webhooks.delivery import deliveries_run, webhooks_purge


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


@shared_task(name=DELIVER_WEBHOOKS, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhooks() -> None:
    """Send every due webhook delivery. Enqueued after each outbox write commits and every few seconds by beat;
    runs that overlap share the work (each delivery is claimed with a lease)."""
    if deliveries_run().more:
        deliver_webhooks.delay()


@shared_task
def purge_webhooks() -> None:
    webhooks_purge()
