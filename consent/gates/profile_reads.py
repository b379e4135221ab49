"""Purpose-bound profile reads (Art. 5(1)(b)-(c), purpose limitation and data minimisation): a read is not tied to
a channel (decide_read), returns only the data categories the purpose declares, and is logged with the calling
client, so that an access request can name the recipients (Art. 15(1)(c)) and an erasure can tell them (Art. 19).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db import DatabaseError, connection
from django.utils import timezone

from config.db import prepared_rows
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, purpose_get
from consent.clients import client_purpose_check
from consent.errors import PolicyDeniedError, undecidable
from consent.models import ReadLog
from consent.policy import Reason, SubjectState, decide_read
from consent.selectors import subject_state_lateral, subject_state_of_row, subject_states_for_policy
from subjects.columns import RECORD_DATA
from subjects.errors import SubjectNotFoundError
from subjects.keys import data_key, decrypt_field
from subjects.models import LinkedRecord, Subject
from subjects.profile import profile_read
from subjects.selectors import subject_get_survivor


@dataclass(frozen=True, slots=True)
class ProfileRead:
    subject_id: uuid.UUID
    purpose: str
    data: dict[str, Any]  # category -> profile attributes (profile categories) or list of records
    withheld: list[str]  # categories the subject has data in that the purpose does not declare

    def as_body(self) -> dict[str, Any]:
        return {"subject": str(self.subject_id), "purpose": self.purpose, "data": self.data, "withheld": self.withheld}


def profile_read_for_purpose(
    *,
    subject_id: uuid.UUID,
    purpose: str,
    client_id: int,
    client_purposes: frozenset[str],
    now: datetime | None = None,
) -> ProfileRead:
    """The subject's data in the categories `purpose` declares, if the policy allows the purpose to read it.

    400 unknown purpose, 403 a client restricted to other purposes, 404 unknown subject (an absorbed id reads
    the survivor), 403 `policy_denied` with the reason. Every allowed read writes one ReadLog row; a denied read
    discloses nothing and is not a recipient's read. Three statements: the subject with its records of the
    declared categories, the policy state, the log row.
    """
    now = now or timezone.now()
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    client_purpose_check(purpose=purpose, client_purposes=client_purposes)
    profile_categories = {key for key, profile in snapshot.categories.items() if profile}
    wanted = sorted(set(info.data_categories) - profile_categories)
    subject, state, record_categories, records = _subject_with_records(subject_id, purpose, wanted)
    # Decided before anything is decrypted: an erased subject's key is gone, and a denial discloses nothing.
    _read_decide(state, purpose, info, now)
    data, held = _declared_data(subject, profile_categories, info, record_categories, records)
    disclosed = sorted(category for category, value in data.items() if value)
    # One insert in autocommit: the read is logged before the data leaves, and nothing else rides on it.
    read_log_add(subject_id=subject.id, client_id=client_id, purpose=purpose, categories=disclosed, read_at=now)
    return ProfileRead(subject.id, purpose, data, sorted(held - set(info.data_categories)))


_READ_LOG = (
    "INSERT INTO consent_readlog (subject_id, client_id, purpose, categories, read_at)"
    " VALUES (%(subject)s, %(client)s, %(purpose)s, %(categories)s::jsonb, %(read_at)s)"
)


def read_log_add(
    *, subject_id: uuid.UUID, client_id: int, purpose: str, categories: list[str], read_at: datetime
) -> None:
    """Art. 15(1)(c): this client read these categories of the subject's data for this purpose (autocommit)."""
    if connection.vendor != "postgresql":
        ReadLog.objects.create(
            subject_id=subject_id, client_id=client_id, purpose=purpose, categories=categories, read_at=read_at
        )
        return
    prepared_rows(
        _READ_LOG,
        {
            "subject": subject_id,
            "client": client_id,
            "purpose": purpose,
            "categories": orjson.dumps(categories).decode(),
            "read_at": read_at,
        },
    )


def _read_decide(state: SubjectState | None, purpose: str, info: PurposeInfo, now: datetime) -> None:
    """The policy's answer for the read: nothing (allowed), 503 when it cannot decide, else 403 with the reason."""
    decision = decide_read(state, info.rule, now)
    if decision.reason == Reason.UNAVAILABLE:
        raise undecidable()
    if not decision.allowed:
        raise PolicyDeniedError(
            f"purpose '{purpose}' may not read this subject's data ({decision.reason.value})",
            reason=decision.reason.value,
        )


_SUBJECT_FIELDS = [f.attname for f in Subject._meta.concrete_fields]
_STATE_WIDTH = 9  # the columns of consent.selectors.subject_state_lateral
# The surviving subject an id names, its policy state for the purpose, every category it holds records in, and its
# records of the wanted categories in the order a reader gets them: one prepared statement (one row per record, or
# one without a record).
_SUBJECT_WITH_RECORDS = (
    "SELECT "
    + ", ".join(f"s.{f.column}" for f in Subject._meta.concrete_fields)
    + ", ARRAY(SELECT DISTINCT c.category FROM subjects_linkedrecord c WHERE c.subject_id = s.id), st.*,"
    " r.id, r.category, r.source, r.external_id, r.occurred_at, r.data_enc"
    " FROM (SELECT COALESCE(o.merged_into_id, o.id) AS sid FROM subjects_subject o WHERE o.id = %s) AS h"
    " JOIN subjects_subject s ON s.id = h.sid"
    " CROSS JOIN LATERAL ({state}) AS st"
    " LEFT JOIN subjects_linkedrecord r ON r.subject_id = s.id AND r.category = ANY(%s::text[])"
    " ORDER BY r.occurred_at, r.source, r.external_id"
)
_RecordRow = tuple[uuid.UUID, str, str, str, datetime, bytes]


def _subject_with_records(
    subject_id: uuid.UUID, purpose: str, wanted: list[str]
) -> tuple[Subject, SubjectState | None, set[str], list[_RecordRow]]:
    """The subject (404 when the id names none; an absorbed id reads the survivor), its policy state for the
    purpose (503 when it cannot be read: fail closed), the categories it holds records in, and its records in the
    wanted categories, still encrypted."""
    if connection.vendor != "postgresql":
        subject = subject_get_survivor(subject_id=subject_id)
        held = set(LinkedRecord.objects.filter(subject=subject).order_by().values_list("category", flat=True))
        found = LinkedRecord.objects.filter(subject=subject, category__in=wanted).order_by(
            "occurred_at", "source", "external_id"
        )
        records = [
            (pk, category, source, external_id, occurred_at, bytes(blob))
            for pk, category, source, external_id, occurred_at, blob in found.values_list(
                "pk", "category", "source", "external_id", "occurred_at", "data_enc"
            )
        ]
        try:
            state = subject_states_for_policy(subject_ids=[subject.id], purposes=[purpose]).get(subject.id)
        except Exception as exc:  # a state that cannot be read: fail closed, 503
            raise undecidable() from exc
        return subject, state, held, records
    state_sql, state_params = subject_state_lateral(purposes=[purpose])
    try:
        rows = prepared_rows(_SUBJECT_WITH_RECORDS.format(state=state_sql), [subject_id, *state_params, wanted])
    except DatabaseError as exc:  # the database gone: nothing can be decided
        raise undecidable() from exc
    if not rows:
        raise SubjectNotFoundError("no subject with this id")
    width = len(_SUBJECT_FIELDS)
    first = rows[0]
    subject = Subject.from_db(connection.alias, _SUBJECT_FIELDS, first[:width])
    held = set(first[width])
    try:
        state = subject_state_of_row(first[width + 1 : width + 1 + _STATE_WIDTH])
    except (KeyError, ValueError, TypeError) as exc:  # a corrupt state row: no decision may rest on it
        raise undecidable() from exc
    records = [
        (r[0], r[1], r[2], r[3], r[4], bytes(r[5]))
        for r in (row[width + 1 + _STATE_WIDTH :] for row in rows)
        if r[0] is not None
    ]
    return subject, state, held, records


def _declared_data(
    subject: Subject,
    profile_categories: set[str],
    info: PurposeInfo,
    record_categories: set[str],
    records: list[_RecordRow],
) -> tuple[dict[str, Any], set[str]]:
    """The subject's data in the categories the purpose declares (profile attributes, or the linked records), and
    every category the subject holds data in."""
    declared = set(info.data_categories)
    key = data_key(subject)
    profile = profile_read(subject, key)

    data: dict[str, Any] = {}
    for category in sorted(declared & profile_categories):
        data[category] = dict(profile)
    for category in sorted(declared - profile_categories):
        data[category] = []
    for pk, category, source, external_id, occurred_at, blob in records:
        data[category].append(
            {
                "source": source,
                "external_id": external_id,
                "occurred_at": occurred_at,
                "data": json.loads(decrypt_field(subject, key, RECORD_DATA, blob, row_id=pk)),
            }
        )
    held = record_categories | (profile_categories if profile else set())
    return data, held
