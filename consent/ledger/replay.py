"""Replaying a subject's chain, and the chains merged into it, into its states and objections: the projection's
path for a late event, a split's rebuild, and the proof consent.ledger.verification compares with the stored rows.

States are merged per (purpose, channel) to the MOST RESTRICTIVE, because until someone confirms that the two
records are one person, neither side's permission may widen the other's. The order, least to most restrictive:

    granted < pending_confirmation < expired < withdrawn < objected

On a tie: two grants keep the older grant (its granted_at expires first, its notice is the older one), confirmed
only if both were, given by a parental guardian only if both were; two equal denials keep the earlier one. A
triple only the absorbed side had is copied. Every triple the absorbed side had gets `since` = the merge and
`seq` = the survivor's merged event, so any later-arriving event that happened before the merge is folded again
(recording.state_project), through `state_refold`, instead of being applied on top of a combined state.
Objections are unioned, keeping the earliest `since`.

The replay folds a chain's state events in occurred_at order (ties by seq), exactly as the projection does, and
at each survivor-side `merged` event of a merge that is still in force (a MergeAudit without split_at) combines
the absorbed subject's own replay as above, recursively. Objections are replayed in recording order, as
recording.consent_event_record writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime

from django.db.models import Q

from consent.catalogue.snapshot import CatalogueSnapshot, catalogue_snapshot
from consent.ledger import projection
from consent.ledger.chain import event_evidence
from consent.ledger.state_rows import state_values
from consent.models import ConsentEvent, ConsentState, Objection
from consent.policy import Actor
from subjects.keys import data_key
from subjects.models import MergeAudit, Subject

GUARDIAN = Actor.PARENTAL_GUARDIAN.value

# Least to most restrictive (see the module docstring).
RESTRICTIVENESS: dict[str, int] = {
    projection.GRANTED: 0,
    projection.PENDING: 1,
    projection.EXPIRED: 2,
    projection.WITHDRAWN: 3,
    projection.OBJECTED: 4,
}

Triple = tuple[str, str]  # (purpose, channel)
ObjectionMark = tuple[datetime, int]  # (since, seq)


# ---------------------------------------------------------------------------------------------------------
# Combining two sides
# ---------------------------------------------------------------------------------------------------------
def fact_combine(mine: projection.Fact | None, other: projection.Fact, *, since: datetime, seq: int) -> projection.Fact:
    """The most restrictive of two facts for one triple, dated at the merge (`since`, `seq`)."""
    if mine is None:
        chosen = other
    elif RESTRICTIVENESS[mine.status] != RESTRICTIVENESS[other.status]:
        chosen = max(mine, other, key=lambda f: RESTRICTIVENESS[f.status])
    elif mine.status == projection.GRANTED:
        older, newer = sorted((mine, other), key=lambda f: (f.granted_at or f.since, f.seq))
        actor = older.actor if older.actor == newer.actor or newer.actor == GUARDIAN else newer.actor
        chosen = replace(
            older,
            confirmed=older.confirmed and newer.confirmed,
            actor=actor,
            suppressed=older.suppressed or newer.suppressed,
        )
    else:
        earlier = min(mine, other, key=lambda f: f.order)
        chosen = replace(earlier, suppressed=mine.suppressed or other.suppressed)
    return replace(chosen, since=since, seq=seq)


def objection_combine(mine: ObjectionMark | None, other: ObjectionMark, *, seq: int) -> ObjectionMark:
    """The union keeps the earliest objection; one taken over from the other side is dated by the merge event."""
    if mine is not None and mine[0] <= other[0]:
        return mine
    return (other[0], seq)


# ---------------------------------------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Scope:
    """One triple (the projection's late-event path) or, with `snapshot`, every triple (a rebuild)."""

    purpose: str | None = None
    channel: str | None = None
    double_opt_in: bool = False
    snapshot: CatalogueSnapshot | None = None

    def channels(self, purpose: str, channel: str) -> list[str]:
        if self.purpose is not None:
            return [self.channel or ""]
        if channel:
            return [channel]
        info = self.snapshot.purposes.get(purpose) if self.snapshot else None
        return sorted(info.rule.channels) if info else []  # blank: every channel of the purpose

    def needs_confirmation(self, purpose: str, channel: str) -> bool:
        if self.purpose is not None:
            return self.double_opt_in
        info = self.snapshot.purposes.get(purpose) if self.snapshot else None
        return info is not None and channel in info.rule.double_opt_in


@dataclass(frozen=True, slots=True)
class Replayed:
    facts: dict[Triple, projection.Fact]
    objections: dict[str, ObjectionMark]


_FIELDS = ("seq", "purpose", "channel", "action", "notice_version", "source", "actor", "occurred_at", "related_subject")


EventRow = tuple[int, str, str, str, str, str, str, datetime, uuid.UUID | None]  # _FIELDS, in order


def _replay(
    subject_id: uuid.UUID,
    scope: _Scope,
    marked: frozenset[int] = frozenset(),
    seen: frozenset[uuid.UUID] = frozenset(),
) -> Replayed:
    """`marked`: seqs of this chain's grants that met the suppression list, besides those whose event says so
    itself (events recorded before ConsentEvent.suppressed existed: the state rows and the merge events say it)."""
    seen = seen | {subject_id}
    # Merges into this subject still in force; a split one is skipped, its absorbed side has its own states again.
    live = set(
        MergeAudit.objects.filter(survivor_id=subject_id, split_at__isnull=True).values_list("absorbed_id", flat=True)
    ) - set(seen)
    events = ConsentEvent.objects.filter(subject_id=subject_id)
    if scope.purpose is not None:
        events = events.filter(
            Q(purpose=scope.purpose, channel__in=[scope.channel, ""])
            | Q(action=ConsentEvent.Action.MERGED, related_subject__in=live)
        )
    rows: list[EventRow] = []
    flagged: set[int] = set()
    for *row, suppressed in events.order_by("seq").values_list(*_FIELDS, "suppressed"):
        rows.append(tuple(row))
        if suppressed:
            flagged.add(row[0])
    marked = marked | flagged
    nested, marked = _absorbed_replays(subject_id, rows, live, scope, marked, seen)
    return Replayed(_facts_fold(rows, nested, scope, marked), _objections_fold(rows, nested))


def _absorbed_replays(
    subject_id: uuid.UUID,
    rows: list[EventRow],
    live: set[uuid.UUID],
    scope: _Scope,
    marked: frozenset[int],
    seen: frozenset[uuid.UUID],
) -> tuple[dict[int, Replayed], frozenset[int]]:
    """The replay of each subject merged into this one and still absorbed, by the seq of its last `merged` event
    here; and `marked` with the suppressed grants those merge events recorded for this side."""
    last_marker: dict[uuid.UUID, tuple[int, str]] = {}
    for seq, _p, _c, action, _n, _s, _a, _o, related in rows:
        if related is not None and action in (ConsentEvent.Action.MERGED, ConsentEvent.Action.SPLIT):
            last_marker[related] = (seq, action)
    absorbed_at = {
        seq: related
        for related, (seq, action) in last_marker.items()
        if related in live and action == ConsentEvent.Action.MERGED
    }
    nested: dict[int, Replayed] = {}
    if not absorbed_at:
        return nested, marked
    key = data_key(Subject.objects.get(pk=subject_id))
    own = set(marked)
    for marker in ConsentEvent.objects.filter(subject_id=subject_id, seq__in=list(absorbed_at)):
        evidence = event_evidence(marker, key)
        own.update(evidence.get("survivor_suppressed", ()))
        theirs = frozenset(evidence.get("absorbed_suppressed", ()))
        nested[marker.seq] = _replay(absorbed_at[marker.seq], scope, theirs, seen)
    return nested, frozenset(own)


def _facts_fold(
    rows: list[EventRow], nested: dict[int, Replayed], scope: _Scope, marked: frozenset[int]
) -> dict[Triple, projection.Fact]:
    """The states in occurred_at order (ties by seq), as the projection folds them, merges combined in place."""
    facts: dict[Triple, projection.Fact] = {}
    for seq, purpose, channel, action, notice, source, actor, occurred_at, _related in sorted(
        rows, key=lambda r: (r[7], r[0])
    ):
        if seq in nested:
            for triple, fact in nested[seq].facts.items():
                facts[triple] = fact_combine(facts.get(triple), fact, since=occurred_at, seq=seq)
        elif action in projection.STATE_ACTIONS and purpose:
            step = projection.Step(action, notice, actor, occurred_at, seq, suppressed=seq in marked)
            for each in scope.channels(purpose, channel):
                triple = (purpose, each)
                folded = projection.apply_event(
                    facts.get(triple), step, source, double_opt_in=scope.needs_confirmation(purpose, each)
                )
                if folded is not None:
                    facts[triple] = folded
    return facts


def _objections_fold(rows: list[EventRow], nested: dict[int, Replayed]) -> dict[str, ObjectionMark]:
    """The objections in recording order, as recording writes them, merges unioned in place."""
    objections: dict[str, ObjectionMark] = {}
    for seq, purpose, _channel, action, _n, source, actor, occurred_at, _related in rows:
        if seq in nested:
            for objected, their_mark in nested[seq].objections.items():
                objections[objected] = objection_combine(objections.get(objected), their_mark, seq=seq)
        elif action == ConsentEvent.Action.OBJECT:
            objections[purpose] = (occurred_at, seq)
        elif action in ("grant", "confirm") and projection.by_person(source, actor):
            # Art. 21: the person's own later grant lifts their objection to that purpose (as recording does).
            standing = objections.get(purpose)
            if standing is not None and standing[0] <= occurred_at:
                del objections[purpose]
    return objections


def state_refold(
    *, subject_id: uuid.UUID, purpose: str, channel: str, double_opt_in: bool, marked: frozenset[int] = frozenset()
) -> projection.Fact | None:
    """The state of one triple folded from the subject's whole history, merges included: the projection's path
    for an event that arrives after a later one (or after a merge) but happened before it."""
    scope = _Scope(purpose=purpose, channel=channel, double_opt_in=double_opt_in)
    return _replay(subject_id, scope, marked).facts.get((purpose, channel))


def state_replay(
    *, subject_id: uuid.UUID, snapshot: CatalogueSnapshot, marked: frozenset[int] = frozenset()
) -> dict[Triple, projection.Fact]:
    """Every triple's state folded from the subject's chain and the chains merged into it, writing nothing: what
    consent_rebuild would store, for consent.ledger.verification to compare with what is stored."""
    return _replay(subject_id, _Scope(snapshot=snapshot), marked).facts


def consent_rebuild(
    *, subject_id: uuid.UUID, marked: frozenset[int] = frozenset(), snapshot: CatalogueSnapshot | None = None
) -> Replayed:
    """Replace a locked subject's state and objection rows by the replay of its chain (and the chains merged into
    it). Runs in the caller's transaction."""
    scope = _Scope(snapshot=snapshot or catalogue_snapshot(refresh=True))
    replayed = _replay(subject_id, scope, marked)
    ConsentState.objects.filter(subject_id=subject_id).delete()
    Objection.objects.filter(subject_id=subject_id).delete()
    event_of = dict(
        ConsentEvent.objects.filter(
            subject_id=subject_id, seq__in={fact.seq for fact in replayed.facts.values()}
        ).values_list("seq", "pk")
    )
    ConsentState.objects.bulk_create(
        ConsentState(
            subject_id=subject_id,
            purpose=purpose,
            channel=channel,
            event_id=event_of.get(fact.seq),
            **state_values(fact),
        )
        for (purpose, channel), fact in sorted(replayed.facts.items())
    )
    Objection.objects.bulk_create(
        Objection(subject_id=subject_id, purpose=purpose, since=since, seq=seq)
        for purpose, (since, seq) in sorted(replayed.objections.items())
    )
    return replayed
