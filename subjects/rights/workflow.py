"""The workflow engine of a rights request: parts, leased claims, batches, completion.

A request in `processing` has parts: one per source of linked records, `profile` (profile and identifiers),
`consent` (the ledger, through the port), and `finish`, which runs when every other part is done and completes the
request. A Celery task (ids only, one message per part) runs parts:

- a part is claimed with a conditional UPDATE that sets a lease (`claimed_until`) and a fresh `lease_token`; a
  part whose lease ran out (its worker died) can be claimed again, one with a live lease cannot;
- the work goes in batches (`PartContext.step`), each a durable transaction that locks the subject (lock order:
  subject, then requests, then records), does the batch, and saves the part's progress and a renewed lease with an
  UPDATE conditional on the token: if the lease was lost the batch rolls back. A batch either happens with its
  progress recorded or not at all, so a reclaimed part resumes where the dead worker stopped and nothing is done
  twice;
- transient errors (database, disk) give the part back and are retried with backoff by the task; any other error
  fails the part with an error in our own words; the request fails when every part has settled and one failed.

Work stealing: a task claims its own part together with every other claimable part of the request, then the
finish step. With one worker a request runs in one task (the other messages find it done with one query); with
several, parts whose messages arrive at the same time are shared out by the claims.

The engine knows no handler: `part_run` is given the lookup (registry.handler_for) by its caller, the Celery task;
what a handler works with (`PartContext`, the part names, history and completion) is in context.py."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import DomainError
from subjects.crypto import DecryptionError
from subjects.locks import lock_subjects
from subjects.models import RightsRequest, RightsRequestPart
from subjects.rights.context import (
    CONNECTOR_PART,
    CONSENT,
    FINISH,
    PROFILE,
    SOURCE,
    SYSTEM,
    TRANSIENT,
    HandlerLookup,
    LeaseLostError,
    PartContext,
    PartWaitError,
    lease,
    status_set,
)
from subjects.rights.enqueue import RUN_PART, enqueue_on_commit
from subjects.selectors import subject_group

log = logging.getLogger(__name__)

Part = RightsRequestPart
Status = RightsRequest.Status


# ---------------------------------------------------------------------------------------------------------
# Starting: the parts of a request
# ---------------------------------------------------------------------------------------------------------
def parts_plan(*, kind: str, sources: list[str], connectors: Collection[str] = ()) -> list[str]:
    """`connectors`: the sources with a connector; access and erasure reach into those systems (API.md)."""
    reach = [CONNECTOR_PART + s for s in sorted(set(connectors))]
    if kind in (RightsRequest.Kind.ACCESS, RightsRequest.Kind.ERASURE):
        return [*reach, *(SOURCE + s for s in sorted(set(sources))), PROFILE, CONSENT, FINISH]
    if kind == RightsRequest.Kind.PORTABILITY:
        return [*(SOURCE + s for s in sorted(set(sources))), PROFILE, CONSENT, FINISH]
    if kind == RightsRequest.Kind.OBJECTION:
        return [CONSENT, FINISH]
    return [PROFILE, FINISH]  # rectification, restriction


def parts_create(
    request: RightsRequest, names: list[str], now: datetime, outcomes: dict[str, dict[str, Any]] | None = None
) -> list[int]:
    """Create the request's parts (inside the caller's transaction) and hand them to the broker on commit.
    `outcomes`: what some parts start with (a connector's request, sealed, taken while the data is all there)."""
    outcomes = outcomes or {}
    rows = Part.objects.bulk_create(
        [Part(request=request, name=name, enqueued_at=now, outcome=outcomes.get(name, {})) for name in names]
    )
    ids = [row.pk for row in rows if row.name != FINISH]
    parts_enqueue(ids)
    return ids


def parts_enqueue(part_ids: list[int]) -> None:
    for part_id in part_ids:
        enqueue_on_commit(RUN_PART, str(part_id))


# ---------------------------------------------------------------------------------------------------------
# Claims
# ---------------------------------------------------------------------------------------------------------
def _claimable(now: datetime) -> Q:
    return Q(status=Part.Status.PENDING) | Q(status=Part.Status.RUNNING, claimed_until__lt=now)


def _unfinished_others(request_id: uuid.UUID) -> bool:
    return (
        Part.objects.filter(request_id=request_id)
        .exclude(name=FINISH)
        .exclude(status__in=(Part.Status.DONE, Part.Status.SKIPPED))
        .exists()
    )


@dataclass
class _Run:
    """One task's run over a request's parts: the request and its subjects are read once."""

    request: RightsRequest
    subject_ids: list[uuid.UUID]
    shared: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_part(cls, part_id: int) -> _Run | None:
        """None when the part's request is not processing (most messages of a request find it finished by the task
        that stole their parts: this one query says so)."""
        part = Part.objects.select_related("request").filter(pk=part_id, request__status=Status.PROCESSING).first()
        return None if part is None else cls(part.request, subject_group(part.request.subject_id))

    def claim(self, condition: Q, *, wait: bool = False) -> PartContext | None:
        """One worker wins: the candidate row is locked (`FOR UPDATE SKIP LOCKED`) with conditions on the part's own
        columns only, which PostgreSQL re-checks on the latest row version, then the request's status and any
        condition on other parts are read inside the same transaction, after the lock is ours, and the UPDATE goes
        by primary key. (A filter through a relation compiles to `pk IN (subquery)`, which PostgreSQL does not
        re-check after waiting for a row lock: two winners, or none.) `wait`: wait for the lock instead of skipping
        the row, for the finish step, whose condition reads the other parts: a worker that skips it while another
        looks at it and finds a part still running could leave it to nobody."""
        now = timezone.now()
        token = uuid.uuid4()
        with transaction.atomic():
            rows = Part.objects.select_for_update(skip_locked=not wait).filter(condition, request_id=self.request.pk)
            row = rows.filter(_claimable(now)).order_by("pk").values_list("pk", "name", "outcome").first()
            if row is None or not self._processing():
                return None
            if row[1] == FINISH and _unfinished_others(self.request.pk):
                return None
            Part.objects.filter(pk=row[0]).update(
                status=Part.Status.RUNNING,
                lease_token=token,
                claimed_until=now + lease(),
                attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now),
            )
        return PartContext(
            part_id=row[0],
            token=token,
            name=row[1],
            request=self.request,
            subject_ids=self.subject_ids,
            outcome=dict(row[2]),
            shared=self.shared,
        )

    def _processing(self) -> bool:
        return RightsRequest.objects.filter(pk=self.request.pk, status=Status.PROCESSING).exists()

    def claim_part(self, part_id: int) -> PartContext | None:
        return self.claim(Q(pk=part_id))

    def claim_rest(self) -> list[PartContext]:
        """Work stealing: every other claimable part of the request, locked (skipping those another worker is
        claiming) and claimed in one transaction (each part gets the lease). With one worker a request then costs
        one claim, not one per part; other workers' messages for these parts find them taken. A part whose lease
        runs out while it waits here may be taken over by another worker: our batches then find the lease gone and
        write nothing."""
        now = timezone.now()
        token = uuid.uuid4()
        with transaction.atomic():
            rows = list(
                Part.objects.select_for_update(skip_locked=True)
                .filter(_claimable(now), request_id=self.request.pk)
                .exclude(name=FINISH)
                .order_by("pk")
                .values_list("pk", "name", "outcome")
            )
            if not rows or not self._processing():
                return []
            Part.objects.filter(pk__in=[row[0] for row in rows]).update(
                status=Part.Status.RUNNING,
                lease_token=token,
                claimed_until=now + lease(),
                attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now),
            )
        return [
            PartContext(
                part_id=pk,
                token=token,
                name=name,
                request=self.request,
                subject_ids=self.subject_ids,
                outcome=dict(outcome),
                shared=self.shared,
            )
            for pk, name, outcome in rows
        ]

    def claim_finish(self) -> PartContext | None:
        return self.claim(Q(name=FINISH), wait=True)


def part_claim(*, part_id: int) -> PartContext | None:
    run = _Run.of_part(part_id)
    return None if run is None else run.claim_part(part_id)


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunResult:
    retry_in: float | None = None  # another worker holds a live lease on a part of this request: look again then


def part_run(*, part_id: int, handlers: HandlerLookup, steal: bool = True) -> RunResult:
    """Run one part (with `steal`: it and every other claimable part of its request, claimed together), then the
    finish step when every other part is done. Transient errors propagate (the task retries them); any other error
    fails its part. `handlers` names the handler of each part (the registry, given by the caller: the engine knows
    no handler)."""
    run = _Run.of_part(part_id)
    if run is None:
        return RunResult()
    request_id = run.request.pk
    if not steal and (context := run.claim_part(part_id)) is not None:
        _run(context, handlers)
    while steal and (stolen := run.claim_rest()):
        for index, context in enumerate(stolen):
            try:
                _run(context, handlers)
            except TRANSIENT:
                for waiting in stolen[index + 1 :]:
                    part_release(waiting)  # not left to wait for their leases: the retry takes them at once
                raise
    if (context := run.claim_finish()) is not None:
        _run(context, handlers)
    elif Part.objects.filter(request_id=request_id, status=Part.Status.FAILED).exists():
        request_settle(request_id=request_id)  # the last part to settle after a failure ends the request
    return RunResult(retry_in=_live_lease_elsewhere(request_id))


def _live_lease_elsewhere(request_id: uuid.UUID) -> float | None:
    if not RightsRequest.objects.filter(pk=request_id, status=Status.PROCESSING).exists():
        return None
    now = timezone.now()
    until = (
        Part.objects.filter(request_id=request_id, status=Part.Status.RUNNING, claimed_until__gte=now)
        .order_by("claimed_until")
        .values_list("claimed_until", flat=True)
        .first()
    )
    return None if until is None else max(0.5, (until - now).total_seconds() + 0.5)


def _run(context: PartContext, handlers: HandlerLookup) -> None:
    try:
        handlers(context.request.kind, context.name)(context)
        if not context.done:
            with context.step():
                context.mark_done()
    except LeaseLostError:
        log.info("rights part %s: lease lost to another worker", context.part_id)
    except PartWaitError as wait:
        part_wait(context, wait)
    except TRANSIENT:
        part_release(context)
        raise
    except Exception as exc:  # noqa: BLE001 - any other error is the part's outcome, recorded for the DPO
        log.warning("rights part %s (%s) failed: %s", context.part_id, context.name, type(exc).__name__)
        part_fail(part_id=context.part_id, token=context.token, error=error_text(exc))


def part_wait(context: PartContext, wait: PartWaitError) -> None:
    """Keep the part running, held by nobody, until `wait.until`: then it is claimable again (the task looks again
    then, as for a live lease elsewhere; the beat sweep if that message is lost). A callback may end it sooner."""
    Part.objects.filter(pk=context.part_id, lease_token=context.token, status=Part.Status.RUNNING).update(
        claimed_until=wait.until, lease_token=None, outcome=wait.outcome
    )


def error_text(exc: BaseException) -> str:
    """Our own words only: a database or library message could echo a value."""
    if isinstance(exc, DomainError):
        return f"{exc.code}: {exc.detail}"[:500]
    if isinstance(exc, DecryptionError):
        return f"decryption_failed: {exc}"[:500]
    return f"{type(exc).__name__} (details in the worker log)"


def part_release(context: PartContext) -> None:
    """Give the part back at once (a transient error): the retry claims it without waiting for the lease."""
    with contextlib.suppress(*TRANSIENT):  # the database is away: the lease runs out on its own
        Part.objects.filter(pk=context.part_id, lease_token=context.token, status=Part.Status.RUNNING).update(
            status=Part.Status.PENDING, lease_token=None, claimed_until=None
        )


@transaction.atomic(durable=True)
def part_fail(*, part_id: int, error: str, token: uuid.UUID | None = None) -> None:
    """Record a part's final failure; when every part has settled, the request fails with every error visible."""
    part = Part.objects.select_related("request").filter(pk=part_id).first()
    if part is None:
        return
    request = part.request
    if request.subject_id:
        lock_subjects([request.subject_id])
    request = RightsRequest.objects.select_for_update().get(pk=request.pk)
    query = Part.objects.select_for_update().filter(pk=part_id).exclude(status=Part.Status.DONE)
    if token is not None:
        query = query.filter(lease_token=token)
    if not query.exists():
        return
    now = timezone.now()
    Part.objects.filter(pk=part_id).update(status=Part.Status.FAILED, error=error, finished_at=now, lease_token=None)
    _settle(request, now)


@transaction.atomic(durable=True)
def request_settle(*, request_id: uuid.UUID) -> None:
    subject_id = RightsRequest.objects.filter(pk=request_id).values_list("subject_id", flat=True).first()
    if subject_id is not None:
        lock_subjects([subject_id])
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    _settle(request, timezone.now())


def _settle(request: RightsRequest, now: datetime) -> None:
    parts = Part.objects.filter(request=request).exclude(name=FINISH)
    if request.status != Status.PROCESSING or parts.filter(status__in=(Part.Status.PENDING, Part.Status.RUNNING)):
        return
    failed = list(parts.filter(status=Part.Status.FAILED).values_list("name", "error"))
    if not failed:
        return
    Part.objects.filter(request=request, name=FINISH).update(status=Part.Status.SKIPPED, finished_at=now)
    status_set(
        request,
        Status.FAILED,
        by=SYSTEM,
        at=now,
        note=f"{len(failed)} part(s) failed",
        completed_at=now,
        result={**request.result, "errors": [{"part": name, "error": error} for name, error in failed]},
    )


# ---------------------------------------------------------------------------------------------------------
# The safety net (beat): parts whose message was lost, or whose worker died, are handed to the broker again
# ---------------------------------------------------------------------------------------------------------
def parts_stalled(*, older_than: timedelta = timedelta(minutes=2)) -> list[int]:
    now = timezone.now()
    stalled = (
        Part.objects.filter(request__status=Status.PROCESSING)
        .filter(
            Q(status=Part.Status.PENDING, enqueued_at__lt=now - older_than)
            | Q(status=Part.Status.RUNNING, claimed_until__lt=now)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    ids = list(stalled)
    if ids:
        Part.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids
