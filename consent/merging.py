"""The consent side of merging and splitting subjects: the ConsentPort that `subjects.merge` calls (registered in
ConsentConfig.ready()), and the replay that rebuilds a subject's states from its own chain and the chains merged
into it.

Merge. The absorbed chain is closed with a `merged` event (related_subject = the survivor); the survivor's chain
gets a `merged` event naming the absorbed subject, whose evidence holds the absorbed chain's last hash and the ids
of the read-log, send-recipient and open confirmation rows moved over (they carry no other origin marker, and a
split moves them back). Both chains stay valid chains of their own.

States are merged per (purpose, channel) to the MOST RESTRICTIVE, because until someone confirms that the two
records are one person, neither side's permission may widen the other's. The order, least to most restrictive:

    granted < pending_confirmation < expired < withdrawn < objected

On a tie: two grants keep the older grant (its granted_at expires first, its notice is the older one), confirmed
only if both were, given by a parental guardian only if both were; two equal denials keep the earlier one. A
triple only the absorbed side had is copied. Every triple the absorbed side had gets `since` = the merge and
`seq` = the survivor's merged event, so any later-arriving event that happened before the merge is folded again
(services._project), through `state_refold`, instead of being applied on top of a combined state. Objections are
unioned, keeping the earliest `since`. The absorbed side's own state and objection rows are deleted: its id
resolves to the survivor, and rows left behind would still be found by table-wide jobs (the expiry task would
append to a closed chain).

Split. Both chains get a `split` event (ConsentEvent.Action.SPLIT, related_subject = the other side); the moved
log rows go back; each side's states and objections are rebuilt by `consent_rebuild`, which replays the chain.

The replay folds a chain's state events in occurred_at order (ties by seq), exactly as the projection does, and
at each survivor-side `merged` event of a merge that is still in force (a MergeAudit without split_at) combines
the absorbed subject's own replay as above, recursively. Objections are replayed in recording order, as
services._record writes them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db.models import Q

from consent import projection
from consent.ledger import NewEvent, event_evidence, ledger_append
from consent.models import Confirmation, ConsentEvent, ConsentState, Objection, ReadLog, SendRecipient
from consent.selectors import CatalogueSnapshot, catalogue_snapshot
from consent.services import PERSON_SOURCES, _apply, _fact_of
from subjects.columns import CONFIRMATION_EMAIL
from subjects.keys import data_key, decrypt_field, encrypt_field
from subjects.models import MergeAudit, Subject

MERGE_SOURCE = "merge"
SPLIT_SOURCE = "split"
SYSTEM = ConsentEvent.Actor.SYSTEM
GUARDIAN = "parental_guardian"

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
# The port
# ---------------------------------------------------------------------------------------------------------
class ConsentPortImpl:
    """subjects.ports.ConsentPort. Both subjects are locked by the caller, in the caller's transaction."""

    def on_merge(self, *, survivor_id: uuid.UUID, absorbed_id: uuid.UUID, now: datetime) -> None:
        survivor = Subject.objects.get(pk=survivor_id)
        absorbed = Subject.objects.get(pk=absorbed_id)
        survivor_key, absorbed_key = data_key(survivor), data_key(absorbed)

        read_logs = list(ReadLog.objects.filter(subject=absorbed).order_by("pk").values_list("pk", flat=True))
        ReadLog.objects.filter(pk__in=read_logs).update(subject=survivor)
        send_recipients = list(
            SendRecipient.objects.filter(subject=absorbed).order_by("pk").values_list("pk", flat=True)
        )
        SendRecipient.objects.filter(pk__in=send_recipients).update(subject=survivor)
        # An open double opt-in link of the absorbed side confirms on the survivor.
        confirmations = _confirmations_move(
            Confirmation.objects.filter(subject=absorbed, used_at__isnull=True),
            source=absorbed,
            source_key=absorbed_key,
            target=survivor,
            target_key=survivor_key,
        )

        closing = ledger_append(
            subject=absorbed,
            key=absorbed_key,
            new=_system_event(ConsentEvent.Action.MERGED, MERGE_SOURCE, related=survivor.id, now=now),
            recorded_at=now,
        )
        marker = ledger_append(
            subject=survivor,
            key=survivor_key,
            new=_system_event(
                ConsentEvent.Action.MERGED,
                MERGE_SOURCE,
                related=absorbed.id,
                now=now,
                evidence={
                    "absorbed_head_hash": closing.hash,
                    "read_logs": read_logs,
                    "send_recipients": send_recipients,
                    "confirmations": [str(pk) for pk in confirmations],
                    # Which grants met the suppression list: the ledger does not say it, a replay needs it.
                    "survivor_suppressed": _suppressed_seqs(survivor),
                    "absorbed_suppressed": _suppressed_seqs(absorbed),
                },
            ),
            recorded_at=now,
        )

        mine = {(row.purpose, row.channel): row for row in ConsentState.objects.filter(subject=survivor)}
        for theirs in ConsentState.objects.filter(subject=absorbed).order_by("purpose", "channel"):
            row = mine.get((theirs.purpose, theirs.channel))
            fact = fact_combine(
                _fact_of(row) if row else None, _fact_of(theirs), since=marker.occurred_at, seq=marker.seq
            )
            ConsentState.objects.update_or_create(
                subject=survivor,
                purpose=theirs.purpose,
                channel=theirs.channel,
                defaults={**_state_values(fact), "event_id": marker.id},
            )
        objections = {o.purpose: o for o in Objection.objects.filter(subject=survivor)}
        for theirs_objection in Objection.objects.filter(subject=absorbed):
            own = objections.get(theirs_objection.purpose)
            since, seq = objection_combine(
                (own.since, own.seq) if own else None, (theirs_objection.since, theirs_objection.seq), seq=marker.seq
            )
            Objection.objects.update_or_create(
                subject=survivor, purpose=theirs_objection.purpose, defaults={"since": since, "seq": seq}
            )
        ConsentState.objects.filter(subject=absorbed).delete()
        Objection.objects.filter(subject=absorbed).delete()

    def on_split(self, *, survivor_id: uuid.UUID, restored_id: uuid.UUID, now: datetime) -> None:
        survivor = Subject.objects.get(pk=survivor_id)
        restored = Subject.objects.get(pk=restored_id)
        survivor_key, restored_key = data_key(survivor), data_key(restored)
        marker = (
            ConsentEvent.objects.filter(
                subject=survivor, action=ConsentEvent.Action.MERGED, related_subject=restored.id
            )
            .order_by("-seq")
            .first()
        )
        moved: dict[str, Any] = event_evidence(marker, survivor_key) if marker else {}

        reopening = ledger_append(
            subject=restored,
            key=restored_key,
            new=_system_event(ConsentEvent.Action.SPLIT, SPLIT_SOURCE, related=survivor.id, now=now),
            recorded_at=now,
        )
        ledger_append(
            subject=survivor,
            key=survivor_key,
            new=_system_event(
                ConsentEvent.Action.SPLIT,
                SPLIT_SOURCE,
                related=restored.id,
                now=now,
                evidence={"restored_head_hash": reopening.hash},
            ),
            recorded_at=now,
        )
        ReadLog.objects.filter(pk__in=moved.get("read_logs", []), subject=survivor).update(subject=restored)
        SendRecipient.objects.filter(pk__in=moved.get("send_recipients", []), subject=survivor).update(subject=restored)
        _confirmations_move(
            Confirmation.objects.filter(pk__in=moved.get("confirmations", []), subject=survivor),
            source=survivor,
            source_key=survivor_key,
            target=restored,
            target_key=restored_key,
        )
        snapshot = catalogue_snapshot(refresh=True)
        survivor_marked = frozenset(_suppressed_seqs(survivor)) | frozenset(moved.get("survivor_suppressed", ()))
        consent_rebuild(subject_id=survivor.id, marked=survivor_marked, snapshot=snapshot)
        restored_marked = frozenset(moved.get("absorbed_suppressed", ()))
        consent_rebuild(subject_id=restored.id, marked=restored_marked, snapshot=snapshot)


def _system_event(
    action: str, source: str, *, related: uuid.UUID, now: datetime, evidence: dict[str, Any] | None = None
) -> NewEvent:
    return NewEvent(
        purpose="",
        channel="",
        action=action,
        notice_version="",
        source=source,
        actor=SYSTEM,
        occurred_at=now,
        evidence=evidence,
        related_subject=related,
    )


def _confirmations_move(
    rows: Any, *, source: Subject, source_key: bytes, target: Subject, target_key: bytes
) -> list[uuid.UUID]:
    """Hand confirmation rows over, their e-mail re-encrypted (its associated data names the subject)."""
    moving: list[Confirmation] = list(rows.select_for_update())
    for row in moving:
        email = decrypt_field(source, source_key, CONFIRMATION_EMAIL, bytes(row.email_enc), row_id=row.pk)
        row.email_enc = encrypt_field(target, target_key, CONFIRMATION_EMAIL, email, row_id=row.pk)
        row.subject = target
    Confirmation.objects.bulk_update(moving, ["subject", "email_enc"])
    return [row.pk for row in moving]


def _state_values(fact: projection.Fact) -> dict[str, Any]:
    return {
        "status": fact.status,
        "notice_version": fact.notice_version,
        "since": fact.since,
        "granted_at": fact.granted_at,
        "confirmed": fact.confirmed,
        "actor": fact.actor,
        "suppressed": fact.suppressed,
        "seq": fact.seq,
    }


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


def _replay(
    subject_id: uuid.UUID,
    scope: _Scope,
    marked: frozenset[int] = frozenset(),
    seen: frozenset[uuid.UUID] = frozenset(),
) -> Replayed:
    """`marked`: seqs of this chain's grants that met the suppression list (the ledger does not say it; the state
    rows and the merge events do)."""
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
    rows = list(events.order_by("seq").values_list(*_FIELDS))
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
    if absorbed_at:
        subject = Subject.objects.get(pk=subject_id)
        key = data_key(subject)
        own = set(marked)
        for marker in ConsentEvent.objects.filter(subject_id=subject_id, seq__in=list(absorbed_at)):
            evidence = event_evidence(marker, key)
            own.update(evidence.get("survivor_suppressed", ()))
            theirs = frozenset(evidence.get("absorbed_suppressed", ()))
            nested[marker.seq] = _replay(absorbed_at[marker.seq], scope, theirs, seen)
        marked = frozenset(own)

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
                folded = _apply(facts.get(triple), step, source, double_opt_in=scope.needs_confirmation(purpose, each))
                if folded is not None:
                    facts[triple] = folded

    objections: dict[str, ObjectionMark] = {}
    for seq, purpose, _channel, action, _n, source, actor, occurred_at, _related in rows:
        if seq in nested:
            for objected, their_mark in nested[seq].objections.items():
                objections[objected] = objection_combine(objections.get(objected), their_mark, seq=seq)
        elif action == ConsentEvent.Action.OBJECT:
            objections[purpose] = (occurred_at, seq)
        elif action in ("grant", "confirm") and source in PERSON_SOURCES and actor == "subject":
            # Art. 21: the person's own later grant lifts their objection to that purpose (as services._record).
            standing = objections.get(purpose)
            if standing is not None and standing[0] <= occurred_at:
                del objections[purpose]
    return Replayed(facts, objections)


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
    consent_rebuild would store, for consent.verification to compare with what is stored."""
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
            **_state_values(fact),
        )
        for (purpose, channel), fact in sorted(replayed.facts.items())
    )
    Objection.objects.bulk_create(
        Objection(subject_id=subject_id, purpose=purpose, since=since, seq=seq)
        for purpose, (since, seq) in sorted(replayed.objections.items())
    )
    return replayed


def _suppressed_seqs(subject: Subject) -> list[int]:
    return sorted(ConsentState.objects.filter(subject=subject, suppressed=True).values_list("seq", flat=True))
