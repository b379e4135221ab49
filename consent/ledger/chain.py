"""The append-only consent ledger: each subject's events form an HMAC chain in recording order.

hash = HMAC-SHA256(ASSENT_LEDGER_KEY, prev_hash || RFC 8785 canonical JSON of the stored fields).
The evidence is stored encrypted under the subject's key but hashed in clear, so re-encrypting it (a merge,
a key rotation) never breaks the chain. seq is given under the subject's row lock, which the caller holds.
"""

from __future__ import annotations

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from consent.models import ConsentEvent, LedgerHead
from subjects import crypto
from subjects.columns import EVENT_EVIDENCE
from subjects.keys import data_key, open_field
from subjects.models import Subject

GENESIS = "0" * 64
EVIDENCE_COLUMN = EVENT_EVIDENCE


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_fields(event: ConsentEvent, evidence: dict[str, Any] | None) -> dict[str, Any]:
    fields = {
        "subject": str(event.subject_id),
        "seq": event.seq,
        "purpose": event.purpose,
        "channel": event.channel,
        "action": event.action,
        "notice_version": event.notice_version,
        "source": event.source,
        "actor": event.actor,
        "client": event.client_id,
        "evidence": evidence or {},
        "related_subject": str(event.related_subject) if event.related_subject else None,
        "occurred_at": _iso(event.occurred_at),
        "recorded_at": _iso(event.recorded_at),
    }
    if event.suppressed:
        # Only when set, so every event recorded before the flag existed keeps its hash.
        fields["suppressed"] = True
    return fields


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    message = prev_hash.encode() + rfc8785.dumps(fields)
    return hmac.new(settings.ASSENT_LEDGER_KEY, message, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class NewEvent:
    purpose: str
    channel: str
    action: str
    notice_version: str
    source: str
    actor: str
    occurred_at: datetime
    evidence: dict[str, Any] | None = None
    client_id: int | None = None
    related_subject: uuid.UUID | None = None
    suppressed: bool = False  # a grant or confirmation held by the suppression list


def ledger_event(
    *, subject: Subject, key: bytes, new: NewEvent, recorded_at: datetime, head: tuple[int, str] | None
) -> ConsentEvent:
    """The next event of a locked subject's chain, sealed and hashed, not yet stored: `head` is the chain's last
    (seq, hash) as read under the lock, None for an empty chain."""
    seq = head[0] + 1 if head else 1
    prev_hash = head[1] if head else GENESIS
    event = ConsentEvent(
        subject=subject,
        seq=seq,
        purpose=new.purpose,
        channel=new.channel,
        action=new.action,
        notice_version=new.notice_version,
        source=new.source,
        actor=new.actor,
        client_id=new.client_id,
        related_subject=new.related_subject,
        suppressed=new.suppressed,
        occurred_at=new.occurred_at,
        recorded_at=recorded_at,
        prev_hash=prev_hash,
    )
    evidence = new.evidence or {}
    event.evidence_enc = (
        crypto.seal_field(key, json.dumps(evidence).encode(), subject.id, EVIDENCE_COLUMN, event.pk)
        if evidence
        else None
    )
    event.hash = event_hash(prev_hash, canonical_fields(event, evidence))
    return event


def ledger_append(*, subject: Subject, key: bytes, new: NewEvent, recorded_at: datetime) -> ConsentEvent:
    """Append one event to a locked subject's chain and move its head. Runs inside the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "the ledger is written under the subject's row lock"
    head = LedgerHead.objects.filter(subject=subject).values_list("last_seq", "last_hash").first()
    event = ledger_event(subject=subject, key=key, new=new, recorded_at=recorded_at, head=head)
    event.save(force_insert=True)
    if head is None:
        LedgerHead.objects.create(subject=subject, last_seq=event.seq, last_hash=event.hash)
    else:
        LedgerHead.objects.filter(subject=subject).update(last_seq=event.seq, last_hash=event.hash)
    return event


def ledger_retention_allow() -> None:
    """Open the ledger's one retention path for the rest of the caller's transaction.

    On PostgreSQL a trigger (migration consent 0007) refuses every UPDATE and DELETE on consent_consentevent: the
    ledger is append-only, whatever the caller. Erasure (Art. 17, ConsentRightsPortImpl.consent_erase in
    consent.adapters.rights_port, which first archives the events sealed and closes each chain with an `erased`
    event) is the one legitimate deletion; it calls this inside its transaction, which sets
    `assent.ledger_retention` with SET LOCAL, so the permission ends with that transaction (commit or rollback) and
    never leaks to another one on the connection.
    Any new retention code must call this function and nothing else; grep for it to review every such path.
    The one other opening is declared, not hidden: the re-encryption pass (subjects.reencryption) rewrites the
    evidence ciphertext (its clear text, which the chain's hash covers, is unchanged) through the column's
    `update_guard` in subjects.columns, which sets the same setting for its own batch transaction.
    """
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "SET LOCAL outside a transaction would open nothing"
    if connection.vendor != "postgresql":
        return  # the demo's SQLite has no such trigger (and no set_config): there is nothing to open
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('assent.ledger_retention', 'on', true)")


def event_evidence(event: ConsentEvent, key: bytes) -> dict[str, Any]:
    if not event.evidence_enc:
        return {}
    plain = open_field(key, bytes(event.evidence_enc), event.subject_id, EVIDENCE_COLUMN, event.pk)
    loaded: dict[str, Any] = json.loads(plain)
    return loaded


# ---------------------------------------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ChainProblem:
    subject_id: uuid.UUID
    seq: int | None
    problem: str

    def __str__(self) -> str:
        where = f"event seq {self.seq}" if self.seq is not None else "chain head"
        return f"subject {self.subject_id}: {where}: {self.problem}"


def ledger_verify_subject(subject: Subject, head: LedgerHead | None) -> list[ChainProblem]:
    problems: list[ChainProblem] = []
    key: bytes | None = None
    expected_prev = GENESIS
    expected_seq = 1
    for event in ConsentEvent.objects.filter(subject=subject).order_by("seq").iterator(chunk_size=2000):
        if event.seq != expected_seq:
            problems.append(ChainProblem(subject.id, expected_seq, f"missing; next stored event is seq {event.seq}"))
            expected_seq = event.seq
        if event.prev_hash != expected_prev:
            problems.append(ChainProblem(subject.id, event.seq, "prev_hash does not match the previous event"))
        evidence: dict[str, Any] = {}
        if event.evidence_enc:
            try:
                key = key or data_key(subject)
                evidence = event_evidence(event, key)
            except crypto.DecryptionError:
                problems.append(ChainProblem(subject.id, event.seq, "evidence does not decrypt"))
        if event_hash(event.prev_hash, canonical_fields(event, evidence)) != event.hash:
            problems.append(ChainProblem(subject.id, event.seq, "hash does not match the stored fields (edited)"))
        expected_prev = event.hash
        expected_seq = event.seq + 1
    last_seq = expected_seq - 1
    if head is None:
        if last_seq:
            problems.append(ChainProblem(subject.id, None, "events without a chain head"))
    elif head.last_seq != last_seq or head.last_hash != expected_prev:
        problems.append(
            ChainProblem(subject.id, None, f"head says seq {head.last_seq}, chain ends at seq {last_seq} (shortened)")
        )
    return problems


def stamped_under_lock(now: datetime) -> datetime:
    """The time for an event the system dates itself (a merge, a split, an objection), taken again once the caller
    holds the subject's lock. A time taken before the wait would date the event before an event that came first in
    the chain: the state (occurred_at order) and the replay would then disagree on which one stands (the soak found
    a merge queued behind a grant, dated before it)."""
    return max(now, timezone.now())
