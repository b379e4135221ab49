"""Everything Assent holds about one subject, decrypted, for the admin's subject page. The caller writes the audit
entry before calling this (a view of decrypted data is audited even if rendering fails afterwards)."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from consent.catalogue.snapshot import catalogue_snapshot
from consent.ledger.chain import ChainProblem, event_evidence, ledger_verify_subject
from consent.models import ApiClient, ConsentEvent, ConsentState, LedgerHead, Objection, ReadLog, SendRecipient
from consent.policy import Action, Decision, Reason, SubjectState, decide
from consent.selectors import subject_states_for_policy
from subjects import crypto
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA
from subjects.keys import data_key, decrypt_field
from subjects.models import Identifier, LinkedRecord, MergeAudit, Subject
from subjects.profile import profile_read
from subjects.selectors import subject_with_absorbed

UNREADABLE = "(cannot be decrypted)"
# A value copied in from another row or person (or changed) in the database: shown as such, never as data.
TAMPERED = "(integrity check failed: this stored value does not belong to this row; see reencrypt_fields --check)"


@dataclass(frozen=True, slots=True)
class IdentifierRow:
    kind: str
    value: str
    created_at: datetime
    purchase_at: datetime | None


@dataclass(frozen=True, slots=True)
class StateRow:
    purpose: str
    channel: str
    status: str  # "" when the person never chose
    notice_version: str
    since: datetime | None
    decision: Decision


@dataclass(frozen=True, slots=True)
class EventRow:
    event: ConsentEvent
    evidence: dict[str, Any] | None  # None: cannot be decrypted
    client_name: str


@dataclass(frozen=True, slots=True)
class RecordRow:
    external_id: str
    category: str
    occurred_at: datetime
    data: str  # pretty JSON, or UNREADABLE


@dataclass(frozen=True, slots=True)
class SendRow:
    campaign: str
    purpose: str
    channel: str
    created_at: datetime
    client_name: str
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class SubjectOverview:
    subject: Subject
    decryptable: bool
    identifiers: list[IdentifierRow]
    profile: dict[str, Any]
    states: list[StateRow]
    objections: list[Objection]
    events: list[EventRow]
    chain_problems: list[ChainProblem]
    records: dict[str, list[RecordRow]]  # per source
    reads: list[tuple[ReadLog, str]]  # with the client's name
    sends: list[SendRow]
    merges: list[MergeAudit]
    absorbed: list[uuid.UUID] = field(default_factory=list)  # subjects merged into this one


def subject_overview(*, subject: Subject, now: datetime) -> SubjectOverview:
    key: bytes | None
    try:
        key = data_key(subject)
    except crypto.DecryptionError:
        key = None  # crypto-shredded (erased): the ciphertexts stay unreadable

    clients = dict(ApiClient.objects.values_list("pk", "name"))
    identifiers = _identifier_rows(subject, key)
    profile = _profile(subject, key)
    events = _event_rows(subject, key, clients)
    records = _record_rows(subject, key)
    sends = _send_rows(subject, clients)
    return SubjectOverview(
        subject=subject,
        decryptable=key is not None,
        identifiers=identifiers,
        profile=profile,
        states=_states(subject, now),
        objections=list(Objection.objects.filter(subject=subject).order_by("since")),
        events=events,
        chain_problems=ledger_verify_subject(subject, LedgerHead.objects.filter(subject=subject).first()),
        records=records,
        reads=[
            (r, clients.get(r.client_id, ""))
            for r in ReadLog.objects.filter(subject=subject).order_by("-read_at")[:500]
        ],
        sends=sends,
        merges=list(
            MergeAudit.objects.filter(survivor=subject).order_by("-merged_at")
            | MergeAudit.objects.filter(absorbed=subject).order_by("-merged_at")
        ),
        absorbed=subject_with_absorbed(subject_id=subject.pk)[1:],
    )


def _identifier_rows(subject: Subject, key: bytes | None) -> list[IdentifierRow]:
    return [
        IdentifierRow(i.kind, _open(subject, key, IDENTIFIER_VALUE, i.value_enc, i.pk), i.created_at, i.purchase_at)
        for i in Identifier.objects.filter(subject=subject).order_by("kind", "created_at", "pk")
    ]


def _profile(subject: Subject, key: bytes | None) -> dict[str, Any]:
    if key is None:
        return {}
    try:
        return profile_read(subject, key)
    except crypto.CiphertextIntegrityError:
        return {"": TAMPERED}
    except crypto.DecryptionError:
        return {"": UNREADABLE}


def _event_rows(subject: Subject, key: bytes | None, clients: dict[int, str]) -> list[EventRow]:
    events = []
    for event in ConsentEvent.objects.filter(subject=subject).order_by("seq"):
        evidence: dict[str, Any] | None = None
        if key is not None:
            try:
                evidence = event_evidence(event, key)
            except crypto.DecryptionError:
                evidence = None
        events.append(EventRow(event, evidence, clients.get(event.client_id, "") if event.client_id else ""))
    return events


def _record_rows(subject: Subject, key: bytes | None) -> dict[str, list[RecordRow]]:
    """Per source, newest first; data shown as pretty JSON unless it cannot be read."""
    records: dict[str, list[RecordRow]] = defaultdict(list)
    for record in LinkedRecord.objects.filter(subject=subject).order_by("source", "-occurred_at"):
        text = _open(subject, key, RECORD_DATA, record.data_enc, record.pk)
        if text not in (UNREADABLE, TAMPERED):
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
        records[record.source].append(RecordRow(record.external_id, record.category, record.occurred_at, text))
    return dict(records)


def _send_rows(subject: Subject, clients: dict[int, str]) -> list[SendRow]:
    return [
        SendRow(
            r.send.campaign,
            r.send.purpose,
            r.send.channel,
            r.send.created_at,
            clients.get(r.send.client_id, ""),
            r.allowed,
            r.reason,
        )
        for r in SendRecipient.objects.filter(subject=subject).select_related("send").order_by("-send__created_at")
    ]


def _open(
    subject: Subject, key: bytes | None, column: str, blob: bytes | memoryview | None, row_id: crypto.RowId
) -> str:
    if key is None or not blob:
        return UNREADABLE
    try:
        return decrypt_field(subject, key, column, bytes(blob), row_id=row_id)
    except crypto.CiphertextIntegrityError:
        return TAMPERED
    except crypto.DecryptionError:
        return UNREADABLE


def _states(subject: Subject, now: datetime) -> list[StateRow]:
    """Every catalogue purpose and channel, with the stored state and what the policy decides now, and why."""
    snapshot = catalogue_snapshot()
    state = subject_states_for_policy(subject_ids=[subject.pk]).get(subject.pk, SubjectState())
    stored = {(s.purpose, s.channel): s for s in ConsentState.objects.filter(subject=subject)}
    rows: list[StateRow] = []
    for key in sorted(snapshot.purposes):
        rule = snapshot.purposes[key].rule
        for channel in sorted(rule.channels):
            row = stored.pop((key, channel), None)
            rows.append(
                StateRow(
                    key,
                    channel,
                    row.status if row else "",
                    row.notice_version if row else "",
                    row.since if row else None,
                    decide(state, rule, channel, Action.CHECK, now),
                )
            )
    for (purpose, channel), row in sorted(stored.items()):  # states for purposes or channels the catalogue dropped
        rows.append(
            StateRow(
                purpose,
                channel,
                row.status,
                row.notice_version,
                row.since,
                Decision(False, Reason.CHANNEL_NOT_PERMITTED, None),
            )
        )
    return rows
