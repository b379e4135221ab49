"""Folding consent events into the state of one subject x purpose x channel. Pure.

The state follows occurred_at (ties by seq), not arrival: a till that uploads yesterday's signature does not
override today's withdrawal."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from consent.policy import ConsentStatus

# The statuses as the plain strings the state rows store (one definition: consent.policy.ConsentStatus).
GRANTED: str = ConsentStatus.GRANTED.value
PENDING: str = ConsentStatus.PENDING_CONFIRMATION.value
WITHDRAWN: str = ConsentStatus.WITHDRAWN.value
OBJECTED: str = ConsentStatus.OBJECTED.value
EXPIRED: str = ConsentStatus.EXPIRED.value
PERSON_SOURCES = frozenset({"portal", "double-opt-in"})  # the person's own act (lifts an objection)
STATE_ACTIONS = frozenset({"grant", "confirm", "withdraw", "object", "expire"})


@dataclass(frozen=True, slots=True)
class Fact:
    status: str
    notice_version: str
    since: datetime
    seq: int
    granted_at: datetime | None = None
    confirmed: bool = False
    actor: str = "subject"
    suppressed: bool = False

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.since, self.seq)


@dataclass(frozen=True, slots=True)
class Step:
    """What the fold needs of one event."""

    action: str
    notice_version: str
    actor: str
    occurred_at: datetime
    seq: int
    suppressed: bool = False

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.occurred_at, self.seq)


def apply(current: Fact | None, step: Step, *, double_opt_in: bool) -> Fact | None:
    at, seq = step.occurred_at, step.seq
    if step.action == "grant":
        already_confirmed = current is not None and current.status == GRANTED and current.confirmed
        if (double_opt_in and not already_confirmed) or step.suppressed:
            return Fact(PENDING, step.notice_version, at, seq, actor=step.actor, suppressed=step.suppressed)
        return Fact(GRANTED, step.notice_version, at, seq, granted_at=at, confirmed=already_confirmed, actor=step.actor)
    if step.action == "confirm":
        if current is not None and current.status == PENDING:
            notice = step.notice_version or current.notice_version
            return Fact(GRANTED, notice, at, seq, granted_at=at, confirmed=True, actor=current.actor)
        if step.notice_version:  # a client whose own form ran the double opt-in
            return Fact(GRANTED, step.notice_version, at, seq, granted_at=at, confirmed=True, actor=step.actor)
        return current
    if step.action == "withdraw":
        return Fact(WITHDRAWN, current.notice_version if current else step.notice_version, at, seq, actor=step.actor)
    if step.action == "object":
        return Fact(OBJECTED, current.notice_version if current else "", at, seq, actor=step.actor)
    if step.action == "expire":
        if current is not None and current.status == GRANTED:
            return replace(current, status=EXPIRED, since=at, seq=seq, granted_at=None)
        return current
    return current


def fold(steps: Iterable[Step], *, double_opt_in: bool, start: Fact | None = None) -> Fact | None:
    fact = start
    for step in sorted(steps, key=lambda s: s.order):
        fact = apply(fact, step, double_opt_in=double_opt_in)
    return fact


def by_person(source: str, actor: str) -> bool:
    """The person's own act, through the portal or their double opt-in click."""
    return source in PERSON_SOURCES and actor == "subject"


def apply_event(current: Fact | None, step: Step, source: str, *, double_opt_in: bool) -> Fact | None:
    """`apply`, but a suppressed grant waits for the person: nobody else's confirmation releases it."""
    if step.action == "confirm" and not by_person(source, step.actor):
        if step.suppressed:  # a client's own double opt-in for a suppressed identifier counts as a grant
            notice = step.notice_version or (current.notice_version if current else "")
            return apply(current, replace(step, action="grant", notice_version=notice), double_opt_in=double_opt_in)
        if current is not None and current.suppressed:
            return current
    return apply(current, step, double_opt_in=double_opt_in)
