"""Where the write kernel (consent.ledger.recording) reads what one event needs and stores it: on PostgreSQL one
prepared statement for the reads (chain head, the state rows it moves, the subject's identifiers, whether the
reference's e-mail is the subject's) and one for the writes (event, head and state rows, in one CTE), instead of
a query per row. Both run under the subject's row lock, after it was taken: the reads' snapshot is then newer
than every change made under that lock. Elsewhere (the SQLite demo) the same through the ORM."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db import connection

from config.db import prepared_rows
from consent.ledger.state_rows import STATE_FIELDS
from consent.models import ConsentEvent, ConsentState, LedgerHead, WebhookEvent
from consent.webhooks.outbox import SUBSCRIBED_SQL
from subjects.keys import blind_index
from subjects.models import Identifier, Subject, Suppression
from subjects.selectors import identifier_owners

_STATE_FIELDS = [f.attname for f in ConsentState._meta.concrete_fields]
_STATE_COLUMNS = ", ".join(f"cs.{f.column}" for f in ConsentState._meta.concrete_fields)
# The columns a state row is written with (consent.ledger.state_rows.state_values, plus the event).
STATE_VALUES = (*STATE_FIELDS, "event_id")
_STATE_TYPES = ("text", "text", "timestamptz", "timestamptz", "bool", "text", "bool", "bigint", "uuid")

CONSENT_CHANGED_TYPES = orjson.dumps([WebhookEvent.Type.CONSENT_CHANGED.value]).decode()
_READ = (
    "SELECT h.last_seq, h.last_hash,"
    " EXISTS (SELECT 1 FROM subjects_identifier i JOIN subjects_subject o ON o.id = i.subject_id"
    "         WHERE i.blind_index = %(email)s AND COALESCE(o.merged_into_id, o.id) = %(subject)s),"
    " EXISTS (SELECT 1 FROM subjects_suppression p WHERE p.digest = ANY(%(suppression)s::bytea[])),"
    " ARRAY(SELECT i.id FROM subjects_identifier i WHERE i.subject_id = %(subject)s ORDER BY i.created_at, i.id),"
    f" {SUBSCRIBED_SQL.format(types='%(webhook_types)s')},"
    f" {_STATE_COLUMNS}"
    " FROM (SELECT 1) AS one"
    " LEFT JOIN consent_ledgerhead h ON h.subject_id = %(subject)s"
    " LEFT JOIN consent_consentstate cs"
    "   ON cs.subject_id = %(subject)s AND cs.purpose = %(purpose)s AND cs.channel = ANY(%(channels)s::text[])"
)

_WRITE = (
    "WITH event AS ("
    " INSERT INTO consent_consentevent (id, subject_id, seq, purpose, channel, action, notice_version, source, actor,"
    "   client_id, evidence_enc, related_subject, suppressed, occurred_at, recorded_at, prev_hash, hash)"
    " VALUES (%(id)s, %(subject)s, %(seq)s, %(purpose)s, %(channel)s, %(action)s, %(notice_version)s, %(source)s,"
    "   %(actor)s, %(client)s, %(evidence)s, %(related)s, %(suppressed)s, %(occurred_at)s, %(recorded_at)s,"
    "   %(prev_hash)s, %(hash)s)"
    "), head AS ("
    " INSERT INTO consent_ledgerhead (subject_id, last_seq, last_hash) VALUES (%(subject)s, %(seq)s, %(hash)s)"
    " ON CONFLICT (subject_id) DO UPDATE SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash"
    ") INSERT INTO consent_consentstate (subject_id, purpose, channel, "
    + ", ".join(STATE_VALUES)
    + ") SELECT %(subject)s, %(state_purpose)s, r.* FROM jsonb_to_recordset(%(states)s::jsonb) AS r(channel text, "
    + ", ".join(f"{name} {kind}" for name, kind in zip(STATE_VALUES, _STATE_TYPES, strict=True))
    + ") ON CONFLICT (subject_id, purpose, channel) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in STATE_VALUES)
)


@dataclass(frozen=True, slots=True)
class WriteInputs:
    head: tuple[int, str] | None  # the chain's last (seq, hash); None: no event yet
    states: dict[str, ConsentState]  # the purpose's state rows by channel, of the channels asked for
    identifier_ids: list[int]  # the subject's identifiers now, in attach order
    webhooks: bool | None  # anyone subscribed to consent.changed (None: not read here)
    email_linked: bool  # the e-mail asked about is an identifier of the subject (merges followed)
    suppressed: bool  # one of the suppression digests asked about is on the list


def write_inputs(
    *, subject: Subject, purpose: str, channels: list[str], email: str | None, suppression: list[bytes] | None
) -> WriteInputs:
    """What recording one event on a locked subject needs to read (`email`: a normalised address to ask about,
    `suppression`: keyed hashes to look up on the suppression list). Call it once the lock is held."""
    if connection.vendor != "postgresql":
        return _write_inputs_orm(subject, purpose, channels, email, suppression)
    params = {
        "subject": subject.id,
        "purpose": purpose,
        "channels": channels,
        "email": blind_index().lookup("email", email) if email is not None else None,
        "suppression": suppression,
        "webhook_types": CONSENT_CHANGED_TYPES,
    }
    rows = prepared_rows(_READ, params)
    first = rows[0]
    head = (int(first[0]), str(first[1])) if first[0] is not None else None
    states = {}
    for row in rows:
        if row[6] is not None:  # the state row's id: NULL when the LEFT JOIN found none
            state = ConsentState.from_db(connection.alias, _STATE_FIELDS, row[6:])
            states[state.channel] = state
    return WriteInputs(head, states, list(first[4]), bool(first[5]), bool(first[2]), bool(first[3]))


def _write_inputs_orm(
    subject: Subject, purpose: str, channels: list[str], email: str | None, suppression: list[bytes] | None
) -> WriteInputs:
    head = LedgerHead.objects.filter(subject=subject).values_list("last_seq", "last_hash").first()
    states = {
        row.channel: row for row in ConsentState.objects.filter(subject=subject, purpose=purpose, channel__in=channels)
    }
    ids = list(Identifier.objects.filter(subject=subject).order_by("created_at", "pk").values_list("pk", flat=True))
    linked = email is not None and subject.id in identifier_owners(identifiers=[("email", email)])[0]
    suppressed = bool(suppression) and Suppression.objects.filter(digest__in=suppression).exists()
    return WriteInputs(head, states, ids, None, linked, suppressed)


def event_store(*, event: ConsentEvent, state_purpose: str, states: list[tuple[str, dict[str, Any]]]) -> None:
    """Store a new event, move the chain head to it, and write the state rows it moved ((channel, values) with
    every column of STATE_VALUES), under the subject's lock."""
    if connection.vendor != "postgresql":
        _event_store_orm(event, state_purpose, states)
        return
    params: dict[str, Any] = {
        "id": event.id,
        "subject": event.subject_id,
        "seq": event.seq,
        "purpose": event.purpose,
        "channel": event.channel,
        "action": event.action,
        "notice_version": event.notice_version,
        "source": event.source,
        "actor": event.actor,
        "client": event.client_id,
        "evidence": event.evidence_enc,
        "related": event.related_subject,
        "suppressed": event.suppressed,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "state_purpose": state_purpose,
        # One JSON parameter for any number of rows (an objection moves every channel): one statement shape, and
        # orjson writes it faster than psycopg adapts a list per column.
        "states": orjson.dumps(
            [{"channel": channel, **values} for channel, values in states], default=_iso_default
        ).decode(),
    }
    prepared_rows(_WRITE, params)


def _iso_default(value: object) -> str:
    """orjson writes datetime itself, not its subclasses (a test clock's): ISO 8601 all the same."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _event_store_orm(event: ConsentEvent, state_purpose: str, states: list[tuple[str, dict[str, Any]]]) -> None:
    event.save(force_insert=True)
    LedgerHead.objects.update_or_create(
        subject_id=event.subject_id, defaults={"last_seq": event.seq, "last_hash": event.hash}
    )
    for channel, values in states:
        ConsentState.objects.update_or_create(
            subject_id=event.subject_id, purpose=state_purpose, channel=channel, defaults=values
        )
