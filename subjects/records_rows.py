"""The rows a batch of records writes (subjects.records_batch): collected while its items are played, then sealed
with one AESGCM object per data key and written with one statement per kind, every value bound in binary."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from config.db import binary_cursor
from subjects import crypto
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA, SUBJECT_PROFILE
from subjects.keys import keyring, next_ids
from subjects.models import Identifier, Subject
from subjects.profile import is_child
from subjects.records import record_payload

RecordKey = tuple[str, str]  # (source, external id)


@dataclass(slots=True)
class NewSubject:
    created_at: datetime
    key: bytes  # its data key, wrapped when written
    profile: dict[str, Any] | None = None
    profile_at: datetime | None = None


@dataclass(slots=True)
class RecordRow:
    id: uuid.UUID
    subject_id: uuid.UUID
    category: str
    data: Mapping[str, Any]
    occurred_at: datetime
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class BatchRows:
    new_subjects: dict[uuid.UUID, NewSubject] = field(default_factory=dict)
    # (subject, blind index) -> [kind, value, created_at, purchase_at]
    identifiers: dict[tuple[uuid.UUID, bytes], list[Any]] = field(default_factory=dict)
    purchases: dict[tuple[uuid.UUID, bytes], datetime] = field(default_factory=dict)  # stored rows to mark
    inserts: dict[RecordKey, RecordRow] = field(default_factory=dict)
    updates: dict[RecordKey, RecordRow] = field(default_factory=dict)
    profiles: dict[uuid.UUID, tuple[dict[str, Any], datetime]] = field(default_factory=dict)  # existing subjects

    def subjects_written(self) -> set[uuid.UUID]:
        """The existing subjects whose data keys the rows need."""
        touched = (
            {s for s, _ in self.identifiers}
            | {r.subject_id for r in self.inserts.values()}
            | {r.subject_id for r in self.updates.values()}
            | set(self.profiles)
        )
        return touched - set(self.new_subjects)


_SUBJECTS_INSERT = (
    "INSERT INTO subjects_subject (id, created_at, status, key_kid, wrapped_key, is_child, profile_enc) "
    "SELECT t.id, t.created_at, %b, %b, t.wrapped_key, t.is_child, t.profile_enc "
    "FROM unnest(%b::uuid[], %b::timestamptz[], %b::bytea[], %b::boolean[], %b::bytea[]) "
    "AS t(id, created_at, wrapped_key, is_child, profile_enc)"
)
_IDENTIFIERS_INSERT = (
    "INSERT INTO subjects_identifier (id, subject_id, kind, blind_index, value_enc, created_at, purchase_at) "
    "SELECT * FROM unnest(%b::bigint[], %b::uuid[], %b::text[], %b::bytea[], %b::bytea[], %b::timestamptz[], "
    "%b::timestamptz[])"
)
_PURCHASES_MARK = (
    "UPDATE subjects_identifier AS i SET purchase_at = t.at "
    "FROM unnest(%b::uuid[], %b::bytea[], %b::timestamptz[]) AS t(subject_id, blind_index, at) "
    "WHERE i.subject_id = t.subject_id AND i.blind_index = t.blind_index AND i.purchase_at IS NULL"
)
_RECORDS_INSERT = (
    "INSERT INTO subjects_linkedrecord (id, subject_id, source, external_id, category, data_enc, occurred_at, "
    "created_at, updated_at) SELECT * FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::text[], %b::text[], "
    "%b::bytea[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[])"
)
_RECORDS_UPDATE = (
    "UPDATE subjects_linkedrecord AS r SET subject_id = t.subject_id, category = t.category, "
    "data_enc = t.data_enc, occurred_at = t.occurred_at, updated_at = t.updated_at "
    "FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::bytea[], %b::timestamptz[], %b::timestamptz[]) "
    "AS t(id, subject_id, category, data_enc, occurred_at, updated_at) WHERE r.id = t.id"
)
_PROFILES_UPDATE = (
    "UPDATE subjects_subject AS s SET profile_enc = t.profile_enc, is_child = t.is_child "
    "FROM unnest(%b::uuid[], %b::bytea[], %b::boolean[]) AS t(id, profile_enc, is_child) WHERE s.id = t.id"
)


def rows_write(rows: BatchRows, *, key_of: Callable[[uuid.UUID], bytes]) -> None:
    """Seal and write `rows` in the caller's transaction; `key_of` gives an existing subject's data key. Subjects
    first (the others refer to them), then identifiers, purchase marks, records and profiles."""
    sealer = _Sealer()
    statements = [
        (_SUBJECTS_INSERT, _subjects(rows, sealer)),
        (_IDENTIFIERS_INSERT, _identifiers(rows, sealer)),
        (_PURCHASES_MARK, _purchases(rows)),
        (_RECORDS_INSERT, _records(rows.inserts, sealer, with_keys=True)),
        (_RECORDS_UPDATE, _records(rows.updates, sealer, with_keys=False)),
        (_PROFILES_UPDATE, _profiles(rows, sealer)),
    ]
    sealer.seal(lambda s: rows.new_subjects[s].key if s in rows.new_subjects else key_of(s))
    with binary_cursor() as cursor:
        for statement, params in statements:
            if params is not None:
                cursor.execute(statement, params)


class _Sealer:
    """Collects values to encrypt per subject; `seal` encrypts each subject's with one AESGCM object and puts each
    ciphertext in its slot (a list and an index: the parameter column that carries it)."""

    def __init__(self) -> None:
        self.fields: dict[uuid.UUID, list[tuple[str, crypto.RowId, bytes]]] = {}
        self.slots: dict[uuid.UUID, list[tuple[list[Any], int]]] = {}

    def add(
        self, subject_id: uuid.UUID, column: str, row_id: crypto.RowId, plain: bytes, slot: tuple[list[Any], int]
    ) -> None:
        self.fields.setdefault(subject_id, []).append((column, row_id, plain))
        self.slots.setdefault(subject_id, []).append(slot)

    def seal(self, key_of: Callable[[uuid.UUID], bytes]) -> None:
        for subject_id, fields in self.fields.items():
            sealed = crypto.seal_fields(key_of(subject_id), subject_id, fields)
            for (out, i), value in zip(self.slots[subject_id], sealed, strict=True):
                out[i] = value


def _subjects(rows: BatchRows, sealer: _Sealer) -> list[Any] | None:
    new = rows.new_subjects
    if not new:
        return None
    ids = list(new)
    profiles: list[bytes | None] = [None] * len(ids)
    children = [False] * len(ids)
    for i, subject_id in enumerate(ids):
        subject = new[subject_id]
        if subject.profile is not None and subject.profile_at is not None:
            children[i] = is_child(subject.profile.get("birth_date"), subject.profile_at.date())
            sealer.add(subject_id, SUBJECT_PROFILE, subject_id, _profile_json(subject.profile), (profiles, i))
    kid, wrapped = keyring().wrap_many([(new[s].key, s) for s in ids])
    created = [new[s].created_at for s in ids]
    return [Subject.Status.ACTIVE.value, kid, ids, created, wrapped, children, profiles]


def _identifiers(rows: BatchRows, sealer: _Sealer) -> list[Any] | None:
    if not rows.identifiers:
        return None
    pairs = list(rows.identifiers.items())
    ids = next_ids(Identifier, len(pairs))  # each value is bound to its row id
    values: list[bytes] = [b""] * len(pairs)
    for i, ((subject_id, _digest), (_kind, value, _at, _purchase)) in enumerate(pairs):
        sealer.add(subject_id, IDENTIFIER_VALUE, ids[i], value.encode(), (values, i))
    return [
        ids,
        [s for (s, _), _ in pairs],
        [v[0] for _, v in pairs],
        [d for (_, d), _ in pairs],
        values,
        [v[2] for _, v in pairs],
        [v[3] for _, v in pairs],
    ]


def _purchases(rows: BatchRows) -> list[Any] | None:
    if not rows.purchases:
        return None
    marks = list(rows.purchases.items())
    return [[s for (s, _), _ in marks], [d for (_, d), _ in marks], [at for _, at in marks]]


def _records(by_key: dict[RecordKey, RecordRow], sealer: _Sealer, *, with_keys: bool) -> list[Any] | None:
    """The columns of an insert (`with_keys`: source and external id too) or of an update."""
    if not by_key:
        return None
    rows = list(by_key.values())
    data: list[bytes] = [b""] * len(rows)
    for i, row in enumerate(rows):
        sealer.add(row.subject_id, RECORD_DATA, row.id, record_payload(row.data), (data, i))
    ids, subjects = [r.id for r in rows], [r.subject_id for r in rows]
    categories, occurred = [r.category for r in rows], [r.occurred_at for r in rows]
    if with_keys:
        sources, external_ids = [k[0] for k in by_key], [k[1] for k in by_key]
        created, updated = [r.created_at for r in rows], [r.updated_at for r in rows]
        return [ids, subjects, sources, external_ids, categories, data, occurred, created, updated]
    return [ids, subjects, categories, data, occurred, [r.updated_at for r in rows]]


def _profiles(rows: BatchRows, sealer: _Sealer) -> list[Any] | None:
    if not rows.profiles:
        return None
    pairs = list(rows.profiles.items())
    values: list[bytes] = [b""] * len(pairs)
    for i, (subject_id, (profile, _at)) in enumerate(pairs):
        sealer.add(subject_id, SUBJECT_PROFILE, subject_id, _profile_json(profile), (values, i))
    children = [is_child(profile.get("birth_date"), at.date()) for _, (profile, at) in pairs]
    return [[s for s, _ in pairs], values, children]


def _profile_json(profile: Mapping[str, Any]) -> bytes:
    # subjects.profile writes json.dumps with sorted keys; readers parse it, so only the content has to agree.
    return orjson.dumps(dict(profile), option=orjson.OPT_SORT_KEYS)
