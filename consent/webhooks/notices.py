"""Art. 19 notices as the DPO and the person see them: for a request (its events) or a person (every Art. 19 event
about them), each recipient told, when it was told (the first attempt) and when it acknowledged (a 2xx), and the
systems that hold the person's data but have no subscription to be told by (the DPO tells them)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.db.models import Q

from consent.models import ApiClient, ReadLog
from consent.webhooks.models import WebhookDelivery, WebhookEvent

ART19_TYPES = (
    WebhookEvent.Type.SUBJECT_RECTIFIED,
    WebhookEvent.Type.SUBJECT_RESTRICTED,
    WebhookEvent.Type.SUBJECT_RESTRICTION_LIFTED,
    WebhookEvent.Type.SUBJECT_ERASED,
)
NOT_TOLD_WHY = "holds the person's data but has no webhook subscription for this event: tell it another way"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def notices_list(
    *,
    event_ids: Sequence[int] = (),
    subject_ids: Sequence[uuid.UUID] = (),
    holders: Sequence[int] = (),
) -> dict[str, Any]:
    """`told`: one entry per delivery of the events (those given, or every Art. 19 event about `subject_ids`);
    `not_told`: the `holders` (client ids) no delivery went to; `unacknowledged`: how many of both still wait."""
    condition = Q(event_id__in=list(event_ids))
    if subject_ids:
        condition |= Q(event__subject_id__in=list(subject_ids), event__type__in=ART19_TYPES)
    rows = (
        WebhookDelivery.objects.filter(condition)
        .select_related("event", "subscription__client")
        .order_by("event_id", "pk")
    )
    told: list[dict[str, Any]] = []
    clients: set[int] = set()
    for row in rows:
        clients.add(row.subscription.client_id)
        told.append(
            {
                "event": row.event.type,
                "recipient": row.subscription.client.name,
                "subscription": str(row.subscription_id),
                "told_at": _iso(row.first_attempt_at),
                "acknowledged_at": _iso(row.delivered_at),
                "status": row.status,
                "last_error": row.last_error,
            }
        )
    missing = sorted(set(holders) - clients)
    names = dict(ApiClient.objects.filter(pk__in=missing).values_list("pk", "name")) if missing else {}
    not_told = [{"recipient": names.get(pk, f"client {pk}"), "why": NOT_TOLD_WHY} for pk in missing]
    waiting = sum(1 for item in told if item["acknowledged_at"] is None) + len(not_told)
    return {"told": told, "not_told": not_told, "unacknowledged": waiting}


def profile_readers(*, subject_ids: Sequence[uuid.UUID]) -> list[int]:
    """The clients that read the person's profile (the read log): they received the person's data."""
    return sorted(set(ReadLog.objects.filter(subject_id__in=list(subject_ids)).values_list("client_id", flat=True)))
