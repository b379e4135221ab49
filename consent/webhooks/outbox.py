"""The outbox: `outbox_record` writes an event, and its deliveries to every subscription that wants it, in the
transaction of the change it reports (the Zulip way: the change and its outgoing event commit together or not at
all). After commit the delivery task is enqueued; the beat sweep finds anything whose message was lost.

Cheap on the hot path. On PostgreSQL a change nobody subscribed to costs one small read (is there a live
subscription for this type?) and writes nothing: an event with no subscriber is skipped, there is nobody to tell,
then or later. Otherwise one statement inserts the event and its delivery rows."""

from __future__ import annotations

import json
import uuid
from typing import Any

from celery import current_app
from django.db import connection, transaction
from django.utils import timezone

from consent.task_names import DELIVER_WEBHOOKS
from consent.webhooks.models import WebhookDelivery, WebhookEvent, WebhookSubscription

EVENT_TYPES = tuple(WebhookEvent.Type.values)
ALL = "*"
# Art. 19 events name, for each subscriber, the person's records of the sources its client has written (API.md):
# the event keeps them per client under this key, and delivery puts that client's list in `records`.
RECORDS_BY_CLIENT = "records_by_client"

# Whether anyone subscribed to the types of a JSON array parameter: {types} is that parameter's placeholder. Also
# read inside a consent write's own statement (consent.ledger.storage), which passes the answer as `subscribed`.
SUBSCRIBED_SQL = (
    "EXISTS (SELECT 1 FROM consent_webhooksubscription"
    " WHERE ended_at IS NULL AND (events @> {types}::jsonb OR events @> '[\"*\"]'::jsonb))"
)
_ANY_SQL = "SELECT " + SUBSCRIBED_SQL.format(types="%s")
_RECORD_SQL = """
WITH subs AS (
    SELECT id FROM consent_webhooksubscription
    WHERE ended_at IS NULL AND (events @> %(type_json)s::jsonb OR events @> '["*"]'::jsonb)
), ev AS (
    INSERT INTO consent_webhookevent (type, subject_id, data, created_at)
    SELECT %(type)s, %(subject)s, %(data)s::jsonb, %(now)s WHERE EXISTS (SELECT 1 FROM subs)
    RETURNING id
)
INSERT INTO consent_webhookdelivery
    (event_id, subscription_id, subject_id, status, attempts, next_attempt_at, last_error)
SELECT ev.id, subs.id, %(subject)s, 'pending', 0, %(now)s, '' FROM ev CROSS JOIN subs
RETURNING event_id
"""


def outbox_record(
    *, type: str, subject_id: uuid.UUID | None, data: dict[str, Any], subscribed: bool | None = None
) -> int | None:
    """Write one event for every subscriber of `type`, inside the caller's transaction (under the subject's lock,
    which orders a subject's events). `data`: ids and keys only (API.md, Webhooks). `subscribed`: the answer of
    SUBSCRIBED_SQL when the caller read it already in this transaction (None: asked here). Returns the event's id,
    or None when nobody subscribed (nothing is written)."""
    assert type in EVENT_TYPES, type
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # A cheap question first: the write below takes PostgreSQL 0.6 ms to plan, a change nobody
            # subscribed to should not pay that. (The write asks again: a subscription ended between the two is
            # not written to.)
            if subscribed is None:
                cursor.execute(_ANY_SQL, [json.dumps([type])])
                row = cursor.fetchone()
                subscribed = bool(row and row[0])
            if not subscribed:
                return None
            cursor.execute(
                _RECORD_SQL,
                {
                    "type": type,
                    "type_json": json.dumps([type]),
                    "subject": subject_id,
                    "data": json.dumps(data, default=str),
                    "now": now,
                },
            )
            rows = cursor.fetchall()
            event_id = rows[0][0] if rows else None
    else:
        event_id = _record_portable(type, subject_id, data, now)
    if event_id is not None:
        # By name: consent.tasks (an edge) declares the task; the signature runs it eagerly in the demo.
        transaction.on_commit(current_app.signature(DELIVER_WEBHOOKS).apply_async)
    return event_id


def _record_portable(type: str, subject_id: uuid.UUID | None, data: dict[str, Any], now: Any) -> int | None:
    """The demo's SQLite: the same rows through the ORM."""
    subscriptions = [
        pk
        for pk, events in WebhookSubscription.objects.filter(ended_at__isnull=True).values_list("pk", "events")
        if type in events or ALL in events
    ]
    if not subscriptions:
        return None
    event = WebhookEvent.objects.create(
        type=type, subject_id=subject_id, data=json.loads(json.dumps(data, default=str)), created_at=now
    )
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, subscription_id=pk, subject_id=subject_id, next_attempt_at=now)
        for pk in subscriptions
    )
    return event.pk


def outbox_consent_changed(
    *,
    subject_id: uuid.UUID,
    purpose: str,
    channel: str | None,
    state: str,
    event_id: uuid.UUID,
    subscribed: bool | None = None,
) -> None:
    """`consent.changed`: a consent event moved a state (channel None: an objection covering every channel)."""
    outbox_record(
        type=WebhookEvent.Type.CONSENT_CHANGED,
        subject_id=subject_id,
        data={
            "subject": str(subject_id),
            "purpose": purpose,
            "channel": channel or None,
            "state": state,
            "event": str(event_id),
        },
        subscribed=subscribed,
    )


def outbox_lines_merge(*, survivor_id: uuid.UUID, absorbed_id: uuid.UUID) -> None:
    """A merge joins the absorbed person's line to the survivor's: what still waits for an endpoint about the
    absorbed side goes before the merge and everything after it (their ids are older), as one person's events.
    In the merge's transaction, under both subjects' locks."""
    WebhookDelivery.objects.filter(subject_id=absorbed_id, status=WebhookDelivery.Status.PENDING).update(
        subject_id=survivor_id
    )
