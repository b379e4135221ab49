"""Webhook subscriptions: made and ended by API clients (`webhooks:manage`) or in admin. The secret (`whsec_` and
base64 of 32 random bytes, as Standard Webhooks defines it) is sealed under the master keyring, bound to the
subscription's id, and shown once."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from config.errors import InvalidInputError, NotFoundError
from consent.webhooks.models import WebhookDelivery, WebhookSubscription
from consent.webhooks.outbox import ALL, EVENT_TYPES
from consent.webhooks.urls import url_resolve
from subjects import crypto
from subjects.keys import keyring

SECRET_PREFIX = "whsec_"
MAX_SUBSCRIPTIONS_PER_CLIENT = 20


def _aad(subscription_id: uuid.UUID) -> bytes:
    return b"webhook-secret|" + subscription_id.bytes


def secret_seal(subscription_id: uuid.UUID, secret: str) -> tuple[str, bytes]:
    kid, master = keyring().keys[0]
    return kid, crypto.seal(master, secret.encode(), _aad(subscription_id))


def secret_open(subscription: WebhookSubscription) -> str:
    for kid, master in keyring().keys:
        if kid == subscription.secret_kid:
            return crypto.open_sealed(master, bytes(subscription.secret_sealed), _aad(subscription.id)).decode()
    raise crypto.DecryptionError(f"master key {subscription.secret_kid!r} is not configured")


def events_check(events: object) -> list[str]:
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise InvalidInputError(f"must be a non-empty list of event types, or [{ALL!r}]", field="events")
    unknown = sorted(set(events) - {*EVENT_TYPES, ALL})
    if unknown:
        raise InvalidInputError(f"unknown event type {unknown[0]!r}; one of {', '.join(EVENT_TYPES)}", field="events")
    return [ALL] if ALL in events else sorted(set(events))


@dataclass(frozen=True, slots=True)
class SubscriptionCreated:
    subscription: WebhookSubscription
    secret: str


def subscription_create(*, client_id: int, url: str, events: Sequence[str]) -> SubscriptionCreated:
    """A new subscription and its secret, shown this once. The URL is checked and its host resolved here (outside
    the transaction: resolution is network I/O), and again at every delivery."""
    kinds = events_check(events)
    url_resolve(url)
    secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    subscription_id = uuid.uuid4()
    kid, sealed = secret_seal(subscription_id, secret)
    with transaction.atomic(durable=True):
        live = WebhookSubscription.objects.select_for_update().filter(client_id=client_id, ended_at__isnull=True)
        if len(live) >= MAX_SUBSCRIPTIONS_PER_CLIENT:
            raise InvalidInputError(
                f"a client may hold at most {MAX_SUBSCRIPTIONS_PER_CLIENT} subscriptions", field="url"
            )
        subscription = WebhookSubscription.objects.create(
            id=subscription_id,
            client_id=client_id,
            url=url,
            events=kinds,
            secret_kid=kid,
            secret_sealed=sealed,
            created_at=timezone.now(),
        )
    return SubscriptionCreated(subscription, secret)


def subscriptions_of_client(*, client_id: int) -> list[WebhookSubscription]:
    return list(
        WebhookSubscription.objects.filter(client_id=client_id, ended_at__isnull=True).order_by("created_at", "pk")
    )


@transaction.atomic(durable=True)
def subscription_end(*, subscription_id: uuid.UUID, client_id: int | None = None) -> None:
    """End a subscription (a client may end only its own: another's is not found). What it had not received yet is
    dropped: its endpoint asked to hear no more."""
    rows = WebhookSubscription.objects.select_for_update().filter(pk=subscription_id, ended_at__isnull=True)
    if client_id is not None:
        rows = rows.filter(client_id=client_id)
    subscription = rows.first()
    if subscription is None:
        raise NotFoundError("no such webhook subscription")
    WebhookSubscription.objects.filter(pk=subscription.pk).update(ended_at=timezone.now())
    WebhookDelivery.objects.filter(subscription=subscription, status=WebhookDelivery.Status.PENDING).delete()


def webhook_secrets_reseal() -> int:
    """After a master key rotation: every secret sealed under an older master key, sealed again under the first
    (rotate_master_key runs it beside the data keys' re-wrap). How many were resealed."""
    current = keyring().current_kid
    count = 0
    for subscription in WebhookSubscription.objects.exclude(secret_kid=current).order_by("pk"):
        kid, sealed = secret_seal(subscription.pk, secret_open(subscription))
        count += WebhookSubscription.objects.filter(pk=subscription.pk, secret_kid=subscription.secret_kid).update(
            secret_kid=kid, secret_sealed=sealed
        )
    return count
