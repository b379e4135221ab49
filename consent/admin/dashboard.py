"""Reads for the DPO's dashboard: consent rates per purpose and channel over time, consents on outdated notices,
the rights-request queue, mails to people that the mail server did not take, and webhook endpoints failing for
hours."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import CharField, Count, Q
from django.db.models.functions import Cast
from django.utils import timezone

from config.names import as_given, localised
from consent.models import (
    Channel,
    Confirmation,
    ConsentEvent,
    ConsentState,
    Notice,
    Purpose,
    WebhookDelivery,
    WebhookSubscription,
)
from subjects.models import RightsRequest, Subject, UndeliveredMail
from subjects.rights.calendar import DUE_SOON

GIVING = ("grant", "confirm")  # a consent stands after these
ENDING = ("withdraw", "expire", "object")  # and no longer after these


@dataclass(frozen=True, slots=True)
class RatePoint:
    week: date  # the Monday the week starts on (Europe/Berlin)
    consented: int
    known: int

    @property
    def rate(self) -> float | None:
        return self.consented / self.known if self.known else None


@dataclass(frozen=True, slots=True)
class RateSeries:
    purpose: str
    channel: str
    points: tuple[RatePoint, ...]
    granted_now: int  # from the state projection: exact, double opt-in confirmations included
    recorded_now: int

    @property
    def rate_now(self) -> float | None:
        return self.granted_now / self.recorded_now if self.recorded_now else None


def consent_rates(*, now: datetime, weeks: int = 12) -> list[RateSeries]:
    """For every consent purpose and channel: at the end of each of the last `weeks` weeks, of the people who had
    made a choice, how many had consented. Computed from the ledger's transitions (LAG over each person's events
    for the pair, in the database), so only first choices and changes leave the database, not every event.
    People since merged or erased are left out: their chains end in events of another kind."""
    today = timezone.localtime(now).date()
    start = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    week_starts = [start + timedelta(weeks=i) for i in range(weeks)]
    channels: dict[str, list[str]] = {
        p.key: sorted(c.key for c in p.channels.all())
        for p in Purpose.objects.filter(legal_basis=Purpose.LegalBasis.CONSENT).prefetch_related("channels")
    }
    purposes = sorted(channels)
    baseline: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # consented, known
    deltas: dict[tuple[str, str], list[list[int]]] = defaultdict(lambda: [[0, 0] for _ in week_starts])
    for purpose, channel, action, prev, occurred_at in _transitions(purposes):
        known = 1 if prev is None else 0
        consented = (1 if action in GIVING else 0) - (1 if prev in GIVING else 0)
        day = timezone.localtime(occurred_at).date()
        if day < start:
            cell = baseline[(purpose, channel)]
        elif day > today:
            continue
        else:
            cell = deltas[(purpose, channel)][(day - start).days // 7]
        cell[0] += consented
        cell[1] += known
    current = _current(purposes)
    series: list[RateSeries] = []
    for purpose in purposes:
        for channel in channels[purpose]:
            consented, known = baseline[(purpose, channel)]
            points = []
            for week, (d_consented, d_known) in zip(week_starts, deltas[(purpose, channel)], strict=True):
                consented, known = consented + d_consented, known + d_known
                points.append(RatePoint(week, consented, known))
            granted_now, recorded_now = current.get((purpose, channel), (0, 0))
            series.append(RateSeries(purpose, channel, tuple(points), granted_now, recorded_now))
    return series


def _transitions(purposes: list[str]) -> list[tuple[str, str, str, str | None, datetime]]:
    """(purpose, channel, action, previous action or None, occurred_at) for each person's first choice on a pair
    and each change between consented and not. State follows occurred_at, ties by seq (DESIGN.md)."""
    if not purposes:
        return []
    actions = (*GIVING, *ENDING)
    events = ConsentEvent._meta.db_table
    subjects = Subject._meta.db_table
    giving = ", ".join(["%s"] * len(GIVING))
    sql = f"""
        SELECT purpose, channel, action, prev, occurred_at FROM (
            SELECT e.purpose, e.channel, e.action, e.occurred_at,
                   LAG(e.action) OVER (
                       PARTITION BY e.subject_id, e.purpose, e.channel ORDER BY e.occurred_at, e.seq
                   ) AS prev
            FROM {events} e JOIN {subjects} s ON s.id = e.subject_id
            WHERE s.status = %s AND e.channel <> '' AND e.purpose IN ({", ".join(["%s"] * len(purposes))})
              AND e.action IN ({", ".join(["%s"] * len(actions))})
        ) t
        WHERE prev IS NULL OR (action IN ({giving})) <> (prev IN ({giving}))
        ORDER BY occurred_at
    """
    params = [Subject.Status.ACTIVE, *purposes, *actions, *GIVING, *GIVING]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    out = []
    for purpose, channel, action, prev, occurred_at in rows:
        if isinstance(occurred_at, str):  # SQLite hands back text
            occurred_at = datetime.fromisoformat(occurred_at)
        if timezone.is_naive(occurred_at):
            occurred_at = timezone.make_aware(occurred_at, timezone.get_fixed_timezone(0))
        out.append((purpose, channel, action, prev, occurred_at))
    return out


def _current(purposes: list[str]) -> dict[tuple[str, str], tuple[int, int]]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = (
        ConsentState.objects.filter(purpose__in=purposes, subject__status=Subject.Status.ACTIVE)
        .values_list("purpose", "channel", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for purpose, channel, status, n in rows:
        cell = totals[(purpose, channel)]
        cell[1] += n
        if status == ConsentState.Status.GRANTED:
            cell[0] += n
    return {pair: (granted, total) for pair, (granted, total) in totals.items()}


# ---------------------------------------------------------------------------------------------------------
# Names: the dashboard shows the catalogue's names in the staff member's language, never its keys
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CatalogueNames:
    purposes: dict[str, str]
    channels: dict[str, str]

    def purpose(self, key: str) -> str:
        return self.purposes.get(key, key)  # a key the catalogue no longer holds is shown as it is

    def channel(self, key: str) -> str:
        return self.channels.get(key, key)


def catalogue_names(*, language: str | None) -> CatalogueNames:
    """Purpose and channel names in `language` (else German), in two queries."""
    return CatalogueNames(
        purposes={
            key: localised(as_given(name, names), language)
            for key, name, names in Purpose.objects.values_list("key", "name", "names")
        },
        channels={
            key: localised(as_given(name, names), language)
            for key, name, names in Channel.objects.values_list("key", "name", "names")
        },
    )


# ---------------------------------------------------------------------------------------------------------
# Consents on outdated notices
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OutdatedConsents:
    purpose: str
    version: str  # the outdated version people consented to
    outdated_by: str  # the newest version that requires re-consent
    count: int  # consent states (granted or awaiting confirmation) on that version


def outdated_notice_consents() -> list[OutdatedConsents]:
    """Per purpose and outdated notice version, how many consents stand on it: these people must be asked again,
    and until then the policy denies with `notice_outdated`."""
    versions: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for purpose, version, reconsent in Notice.objects.order_by("created_at", "pk").values_list(
        "purpose__key", "version", "requires_reconsent"
    ):
        versions[purpose].append((version, reconsent))
    outdated: dict[tuple[str, str], str] = {}
    for purpose, listed in versions.items():
        last = max((i for i, (_v, reconsent) in enumerate(listed) if reconsent), default=-1)
        for version, _reconsent in listed[:last]:
            outdated[(purpose, version)] = listed[last][0]
    if not outdated:
        return []
    counts = (
        ConsentState.objects.filter(
            purpose__in={p for p, _ in outdated},
            notice_version__in={v for _, v in outdated},
            status__in=[ConsentState.Status.GRANTED, ConsentState.Status.PENDING_CONFIRMATION],
        )
        .values_list("purpose", "notice_version")
        .annotate(n=Count("pk"))
        .order_by("purpose", "notice_version")
    )
    return [
        OutdatedConsents(purpose, version, outdated[(purpose, version)], n)
        for purpose, version, n in counts
        if (purpose, version) in outdated
    ]


# ---------------------------------------------------------------------------------------------------------
# Rights requests (Art. 12(3)): what is open, overdue or due soon, and how long requests take
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RequestSummary:
    open: int
    overdue: int
    due_soon: int  # within DUE_SOON, not yet overdue
    open_by_kind: dict[str, int]
    median_days: dict[str, float]  # per kind, of requests completed in the last `window_days`
    completed_by_kind: dict[str, int]  # how many requests each median reads
    window_days: int


MEDIAN_WINDOW_DAYS = 90  # the median time to completion reads requests completed in this many days


def request_summary(*, now: datetime, window_days: int = MEDIAN_WINDOW_DAYS) -> RequestSummary:
    """Open requests are due at their extension if they have one, else at their due date. The median time from
    receipt to completion, per kind, of the requests completed in the last `window_days`: a recent figure, so a
    slow quarter shows rather than drowning in the year's."""
    open_requests = RightsRequest.objects.open().with_effective_due()
    counts = open_requests.aggregate(
        open=Count("pk"),
        overdue=Count("pk", filter=Q(effective_due__lt=now)),
        due_soon=Count("pk", filter=Q(effective_due__gte=now, effective_due__lt=now + DUE_SOON)),
    )
    by_kind = dict(open_requests.values_list("kind").annotate(n=Count("pk")).order_by("kind"))
    durations: dict[str, list[float]] = defaultdict(list)
    completed = RightsRequest.objects.filter(
        status=RightsRequest.Status.COMPLETED, completed_at__gte=now - timedelta(days=window_days)
    ).values_list("kind", "received_at", "completed_at")
    for kind, received_at, completed_at in completed.iterator(chunk_size=2000):
        if completed_at is None:  # excluded by the filter; for the type checker
            continue
        durations[kind].append((completed_at - received_at).total_seconds() / 86400)
    return RequestSummary(
        open=counts["open"],
        overdue=counts["overdue"],
        due_soon=counts["due_soon"],
        open_by_kind=by_kind,
        median_days={kind: round(statistics.median(days), 1) for kind, days in sorted(durations.items())},
        completed_by_kind={kind: len(days) for kind, days in sorted(durations.items())},
        window_days=window_days,
    )


# ---------------------------------------------------------------------------------------------------------
# Mails the mail server did not take (subjects/mail_delivery.py)
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UndeliveredMails:
    count: int  # open: not delivered yet
    by_kind: dict[str, int]
    latest: list[UndeliveredMail]  # the most recently failed first, at most `limit`


UNDELIVERED_DAYS = 30


def undelivered_mails(*, limit: int = 50) -> UndeliveredMails:
    """Double opt-in and sign-in mails that failed and were not delivered since: the DPO sees that a person was
    not reached (never reported as sent), how often it was tried, and why, without the address."""
    now = timezone.now()
    # A confirmation link that was used (through another mail) or has expired needs no delivery any more; a failed
    # sign-in older than UNDELIVERED_DAYS is history (the person has long asked again or given up).
    moot = Confirmation.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lte=now)).values("pk")
    pending = UndeliveredMail.objects.filter(
        delivered_at=None, last_failed_at__gte=now - timedelta(days=UNDELIVERED_DAYS)
    ).exclude(
        kind=UndeliveredMail.Kind.CONFIRMATION, reference__in=moot.annotate(ref=Cast("pk", CharField())).values("ref")
    )
    by_kind = dict(pending.values_list("kind").annotate(n=Count("pk")).order_by("kind"))
    latest = list(pending.order_by("-last_failed_at", "-pk")[:limit])
    return UndeliveredMails(count=sum(by_kind.values()), by_kind=by_kind, latest=latest)


# ---------------------------------------------------------------------------------------------------------
# Webhook endpoints (consent.webhooks): connected systems that have not acknowledged for hours
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FailingEndpoint:
    subscription: WebhookSubscription
    failing_since: datetime
    waiting: int
    dead: int


@dataclass(frozen=True, slots=True)
class WebhookHealth:
    failing: list[FailingEndpoint]  # failing for at least ASSENT_WEBHOOK_FAILING_HOURS, the longest first
    hours: int
    dead_letters: int  # of live subscriptions, waiting for the DPO's replay


def webhook_health(*, now: datetime) -> WebhookHealth:
    """Endpoints whose every attempt has failed for hours: the systems behind them are not told of changes (Art. 19
    notifications among them) until they answer or the DPO replays their dead letters."""
    hours = settings.ASSENT_WEBHOOK_FAILING_HOURS
    live = WebhookSubscription.objects.filter(ended_at__isnull=True)
    rows = (
        live.filter(failing_since__lte=now - timedelta(hours=hours))
        .select_related("client")
        .annotate(
            waiting=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING)),
            dead=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.DEAD)),
        )
        .order_by("failing_since", "pk")
    )
    failing = [FailingEndpoint(row, row.failing_since, row.waiting, row.dead) for row in rows if row.failing_since]
    dead = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DEAD, subscription__in=live).count()
    return WebhookHealth(failing=failing, hours=hours, dead_letters=dead)
