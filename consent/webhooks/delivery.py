"""Delivery of the outbox (API.md, Webhooks; Standard Webhooks): each due delivery is claimed with a lease, POSTed
outside any transaction, signed with its subscription's secret, and its answer recorded. Any 2xx acknowledges;
anything else (an error status, a refused address, a timeout) is retried after about 5 s, 30 s and 2 minutes, then
doubling up to an hour, with jitter, until 24 hours have passed since the first attempt: then the delivery is dead
(a dead letter, replayed from admin).

Order per subject: a delivery is due only when no earlier event of the same subject waits for the same endpoint
(delivered or dead ends the wait). A subject's events are written under its row lock, so their ids are in commit
order; a claim takes at most the head of each (endpoint, subject) line, so a batch can be sent in parallel."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from config.errors import DomainError
from consent.task_names import DELIVER_WEBHOOKS
from consent.webhooks.models import WebhookDelivery, WebhookEvent, WebhookSubscription
from consent.webhooks.outbox import RECORDS_BY_CLIENT
from consent.webhooks.subscriptions import secret_open
from consent.webhooks.urls import Target, url_resolve

Status = WebhookDelivery.Status
RETRY_WINDOW = timedelta(hours=24)
FIRST_DELAYS = (5.0, 30.0, 120.0)  # seconds, after the 1st, 2nd and 3rd failed attempt
MAX_DELAY = 3600.0
JITTER = 0.2  # each delay is drawn from +-20% around its nominal value
LEASE = timedelta(seconds=60)  # longer than a batch's sends can take (timeouts below), so no delivery goes twice
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
USER_AGENT = "Assent-Webhooks/1"
MAX_ANSWER_BYTES = 64 * 1024


def retry_delay(failures: int, *, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait after the `failures`-th failed attempt (1-based): 5 s, 30 s, 2 min, then doubling up to an hour,
    each with jitter so that endpoints coming back are not hit by every retry at once."""
    if failures <= len(FIRST_DELAYS):
        nominal = FIRST_DELAYS[failures - 1]
    else:
        nominal = min(MAX_DELAY, FIRST_DELAYS[-1] * 2 ** (failures - len(FIRST_DELAYS)))
    return timedelta(seconds=nominal * (1 - JITTER + 2 * JITTER * rng()))


# ---------------------------------------------------------------------------------------------------------
# Claiming
# ---------------------------------------------------------------------------------------------------------
_CLAIM_SQL = """
WITH due AS (
    SELECT d.id FROM consent_webhookdelivery d
    WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
      AND (d.claimed_until IS NULL OR d.claimed_until < %(now)s)
      AND (d.subject_id IS NULL OR NOT EXISTS (
          SELECT 1 FROM consent_webhookdelivery e
          WHERE e.subscription_id = d.subscription_id AND e.subject_id = d.subject_id
            AND e.status = 'pending' AND e.event_id < d.event_id))
    ORDER BY d.next_attempt_at, d.id
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE consent_webhookdelivery d
SET claimed_until = %(until)s, first_attempt_at = COALESCE(d.first_attempt_at, %(now)s)
FROM due WHERE d.id = due.id
RETURNING d.id
"""


def deliveries_claim(*, limit: int, now: datetime) -> list[int]:
    """Lease up to `limit` due deliveries, each the head of its (endpoint, subject) line. SKIP LOCKED: two senders
    never wait for, nor take, each other's rows; the lease (the row's own column, re-checked under the lock) keeps
    a claimed delivery from a second sender until it runs out."""
    until = now + LEASE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(_CLAIM_SQL, {"now": now, "until": until, "limit": limit})
                return sorted(row[0] for row in cursor.fetchall())
        return _claim_portable(limit, now, until)


def _claim_portable(limit: int, now: datetime, until: datetime) -> list[int]:
    """The demo's SQLite (one writer at a time): the same rule through the ORM."""
    due = (
        WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at", "pk")
    )
    claimed: list[int] = []
    for delivery in due[: limit * 4]:
        earlier = WebhookDelivery.objects.filter(
            subscription_id=delivery.subscription_id,
            subject_id=delivery.subject_id,
            status=Status.PENDING,
            event_id__lt=delivery.event_id,
        )
        if delivery.subject_id is not None and earlier.exists():
            continue
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            claimed_until=until, first_attempt_at=delivery.first_attempt_at or now
        )
        claimed.append(delivery.pk)
        if len(claimed) >= limit:
            break
    return claimed


# ---------------------------------------------------------------------------------------------------------
# Sending (no transaction open: network I/O)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: int
    subscription_id: uuid.UUID
    ok: bool
    status: int | None
    error: str
    attempts_before: int = 0
    first_attempt_at: datetime | None = None


_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}


def target_pool(target: Target, *, read_timeout: float = READ_TIMEOUT, maxsize: int = 1) -> urllib3.HTTPConnectionPool:
    """A connection pool for an address url_resolve allowed: the connection goes to that address, the host name
    goes in the Host header and, for https, in SNI and the certificate check. Webhooks and connectors use it."""
    timeout = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            target.address,
            target.port,
            timeout=timeout,
            maxsize=maxsize,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
        )
    return urllib3.HTTPConnectionPool(target.address, target.port, timeout=timeout, maxsize=maxsize)


def signed_headers(target: Target, msg_id: str, body: str, signer: Webhook) -> dict[str, str]:
    """The headers of a POST signed as a Standard Webhook, dated now."""
    sent_at = datetime.now(UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signer.sign(msg_id, sent_at, body),
    }


def _pool(target: Target) -> urllib3.HTTPConnectionPool:
    """A keep-alive pool per checked address, kept for the process."""
    key = (target.scheme, target.address, target.port, target.host)
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = target_pool(target, maxsize=4)
    return pool


def message_body(event: WebhookEvent, client_id: int | None = None) -> str:
    """The Standard Webhooks payload: the same bytes for every attempt, and for every endpoint but in an Art. 19
    event's `records`, which are those of the sources the endpoint's client has written."""
    stamp = event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    data = event.data
    if RECORDS_BY_CLIENT in data:
        data = {k: v for k, v in data.items() if k != RECORDS_BY_CLIENT}
        data["records"] = event.data[RECORDS_BY_CLIENT].get(str(client_id), [])
    return json.dumps({"type": event.type, "timestamp": stamp, "data": data}, separators=(",", ":"))


def message_id(event: WebhookEvent) -> str:
    # One id per event, the same on every attempt: the receiver's key for dropping a repeat.
    return f"msg_{event.pk}"


UNREACHABLE = "unreachable in this batch (not tried again until its next attempt)"


@dataclass
class _Endpoint:
    """One subscription within a batch: resolved once (at delivery time, before its first send), its signer, and
    whether a connection to it failed, after which its other deliveries of the batch are not tried: a dead
    endpoint that times out costs the batch one timeout, not one per delivery, and holds no other endpoint up."""

    subscription: WebhookSubscription
    signer: Webhook
    target: Target | None = None
    refused: str = ""
    unreachable: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self) -> None:
        with self.lock:
            if self.target is None and not self.refused:
                try:
                    self.target = url_resolve(self.subscription.url)
                except DomainError as exc:
                    self.refused = f"refused: {exc.detail}"[:300]


def _send(row: WebhookDelivery, endpoint: _Endpoint) -> Attempt:
    attempt = _post(row.pk, row.event, endpoint)
    return replace(attempt, attempts_before=row.attempts, first_attempt_at=row.first_attempt_at)


def _post(delivery_id: int, event: WebhookEvent, endpoint: _Endpoint) -> Attempt:
    subscription_id = endpoint.subscription.pk
    endpoint.resolve()
    if endpoint.target is None:
        return Attempt(delivery_id, subscription_id, False, None, endpoint.refused)
    if endpoint.unreachable:
        return Attempt(delivery_id, subscription_id, False, None, UNREACHABLE)
    target = endpoint.target
    body = message_body(event, endpoint.subscription.client_id)
    headers = signed_headers(target, message_id(event), body, endpoint.signer)
    try:
        response = _pool(target).urlopen(
            "POST",
            target.path,
            body=body.encode(),
            headers=headers,
            retries=False,
            redirect=False,
            preload_content=False,
        )
        # Only the status counts. A short body is read so the connection can serve the next delivery; a long or
        # unsized one is not read at all (an endpoint must not hold a sender by streaming): the connection goes.
        remaining = response.length_remaining
        if remaining is not None and remaining <= MAX_ANSWER_BYTES:
            response.drain_conn()
            response.release_conn()
        else:
            response.close()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        endpoint.unreachable = True
        return Attempt(delivery_id, subscription_id, False, None, type(exc).__name__[:300])
    ok = 200 <= response.status < 300
    return Attempt(delivery_id, subscription_id, ok, response.status, "" if ok else f"HTTP {response.status}")


def deliveries_send(delivery_ids: list[int]) -> list[Attempt]:
    """POST each claimed delivery; in parallel (each is the head of its own line, so order is not at stake)."""
    rows = list(WebhookDelivery.objects.filter(pk__in=delivery_ids).select_related("event", "subscription"))
    endpoints: dict[uuid.UUID, _Endpoint] = {}
    jobs = []
    for row in rows:
        if row.subscription.pk not in endpoints:
            endpoints[row.subscription.pk] = _Endpoint(row.subscription, Webhook(secret_open(row.subscription)))
        jobs.append((row, endpoints[row.subscription.pk]))
    workers = min(settings.ASSENT_WEBHOOK_CONCURRENCY, len(jobs))
    if workers <= 1:
        return [_send(*job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: _send(*job), jobs))


# ---------------------------------------------------------------------------------------------------------
# Recording the answers
# ---------------------------------------------------------------------------------------------------------
_RECORD_SQL = """
UPDATE consent_webhookdelivery d
SET attempts = d.attempts + 1, last_attempt_at = %(now)s, claimed_until = NULL,
    last_status = v.last_status, last_error = v.last_error, status = v.status, delivered_at = v.delivered_at,
    next_attempt_at = COALESCE(v.next_attempt_at, d.next_attempt_at)
FROM unnest(%(ids)s::bigint[], %(codes)s::integer[], %(errors)s::text[], %(statuses)s::text[],
            %(delivered)s::timestamptz[], %(next)s::timestamptz[])
     AS v(id, last_status, last_error, status, delivered_at, next_attempt_at)
WHERE d.id = v.id AND d.status = 'pending'
"""


def attempts_record(attempts: list[Attempt], *, now: datetime, rng: Callable[[], float] = random.random) -> None:
    """Each answer on its delivery, in one statement: delivered, retried later, or dead once the next attempt would
    fall past 24 hours after the first. Only a delivery still pending is written (an admin may have acted)."""
    outcomes: list[tuple[Attempt, str, datetime | None]] = []  # (attempt, status, next attempt)
    for attempt in attempts:
        if attempt.ok:
            outcomes.append((attempt, Status.DELIVERED, None))
            continue
        next_at = now + retry_delay(attempt.attempts_before + 1, rng=rng)
        dead = next_at > (attempt.first_attempt_at or now) + RETRY_WINDOW
        outcomes.append((attempt, Status.DEAD if dead else Status.PENDING, None if dead else next_at))
    recovered = {a.subscription_id for a in attempts if a.ok}
    failing = {a.subscription_id for a in attempts if not a.ok} - recovered
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    _RECORD_SQL,
                    {
                        "now": now,
                        "ids": [a.delivery_id for a, _, _ in outcomes],
                        "codes": [a.status for a, _, _ in outcomes],
                        "errors": [a.error for a, _, _ in outcomes],
                        "statuses": [str(status) for _, status, _ in outcomes],
                        "delivered": [now if status == Status.DELIVERED else None for _, status, _ in outcomes],
                        "next": [next_at for _, _, next_at in outcomes],
                    },
                )
        else:
            for attempt, status, retry_at in outcomes:
                WebhookDelivery.objects.filter(pk=attempt.delivery_id, status=Status.PENDING).update(
                    attempts=F("attempts") + 1,
                    last_attempt_at=now,
                    claimed_until=None,
                    last_status=attempt.status,
                    last_error=attempt.error,
                    status=status,
                    delivered_at=now if status == Status.DELIVERED else None,
                    next_attempt_at=retry_at or F("next_attempt_at"),
                )
        # Written only when they change: every batch touching these rows would queue the senders behind each other.
        if recovered:
            WebhookSubscription.objects.filter(pk__in=recovered, failing_since__isnull=False).update(failing_since=None)
        if failing:
            WebhookSubscription.objects.filter(pk__in=failing, failing_since__isnull=True).update(failing_since=now)


@dataclass(frozen=True, slots=True)
class RunResult:
    sent: int
    delivered: int
    more: bool  # the time budget ran out with work left


def deliveries_run(*, batch: int = 100, budget_seconds: float = 20.0) -> RunResult:
    """Send what is due, batch by batch, until nothing is or the budget is spent (the task then queues itself
    again, so one long backlog does not hold a worker for ever)."""
    started = time.monotonic()
    sent = delivered = 0
    while True:
        claimed = deliveries_claim(limit=batch, now=timezone.now())
        if not claimed:
            return RunResult(sent, delivered, False)
        attempts = deliveries_send(claimed)
        attempts_record(attempts, now=timezone.now())
        sent += len(attempts)
        delivered += sum(1 for a in attempts if a.ok)
        if time.monotonic() - started > budget_seconds:
            return RunResult(sent, delivered, True)


# ---------------------------------------------------------------------------------------------------------
# Dead letters (admin)
# ---------------------------------------------------------------------------------------------------------
def _replay(rows: Any) -> int:
    now = timezone.now()
    count = int(
        rows.filter(status=Status.DEAD).update(
            status=Status.PENDING,
            attempts=0,
            first_attempt_at=None,
            next_attempt_at=now,
            claimed_until=None,
            last_error="",
        )
    )
    return count


@transaction.atomic(durable=True)
def delivery_replay(*, delivery_id: int) -> int:
    """Send a dead letter again, with a fresh 24-hour window. 1 if it was dead, else 0."""
    count = _replay(WebhookDelivery.objects.filter(pk=delivery_id, subscription__ended_at__isnull=True))
    if count:
        transaction.on_commit(_enqueue)
    return count


@transaction.atomic(durable=True)
def deliveries_replay_dead(*, subscription_id: uuid.UUID) -> int:
    """Every dead letter of one endpoint, again (after it was repaired). Replayed in event order, as always."""
    count = _replay(
        WebhookDelivery.objects.filter(subscription_id=subscription_id, subscription__ended_at__isnull=True)
    )
    if count:
        transaction.on_commit(_enqueue)
    return count


def _enqueue() -> None:
    current_app.signature(DELIVER_WEBHOOKS).apply_async()


# ---------------------------------------------------------------------------------------------------------
# Clean-up (beat, daily)
# ---------------------------------------------------------------------------------------------------------
KEPT = timedelta(days=30)  # delivered messages stay this long for the DPO to look into, then go


def webhooks_purge(*, now: datetime | None = None) -> int:
    """Delete deliveries acknowledged more than 30 days ago, dead letters of ended subscriptions, and events
    nothing refers to any more. Dead letters of live subscriptions stay until replayed. How many deliveries went."""
    cutoff = (now or timezone.now()) - KEPT
    with transaction.atomic(durable=True):
        gone, _ = WebhookDelivery.objects.filter(
            Q(status=Status.DELIVERED, delivered_at__lt=cutoff)
            | Q(status=Status.DEAD, subscription__ended_at__isnull=False, last_attempt_at__lt=cutoff)
        ).delete()
        WebhookEvent.objects.filter(created_at__lt=cutoff, deliveries__isnull=True).delete()
    return int(gone)
