"""Batch ingestion (API.md, `POST /api/v1/records/batch`): up to 10,000 records applied in order under the rules of
a single record (subjects.records), written set-based.

The items are cut into chunks of CHUNK, each one durable transaction. A chunk takes every advisory lock its items
need at once (identifiers and records, sorted, one statement: as record_ingest does for one record, so batches and
single writers queue on the same names and never deadlock), reads who holds its blind indexes and which of its
(source, external id) exist in one query each, and locks those subjects. Then it plays the items in order against
that picture in memory, with the same pure decision as a single record (choose_target), and collects the rows to
write: new subjects, identifiers, records, updates of records, profiles, purchase flags. Each kind is written by one
INSERT or UPDATE ... FROM unnest, the values sealed with one AESGCM object per data key.

An item that would merge subjects (or propose a merge) is not played in memory: the rows collected so far are
written first, then the item goes through record_apply (the single-record path) in a savepoint, which sees them,
and the picture is read again. So a later item always sees an earlier item's subject, identifiers and merges, and
an item that fails (a merge refused) is reported alone: its savepoint rolls back, the rest apply.

Each item gets its own moment (the chunk's start plus its position in microseconds): the older of two subjects a
later item merges is the one an earlier item created, exactly as when the records arrive one by one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.db import connection, transaction
from django.utils import timezone

from config.db import binary_cursor
from config.errors import DomainError
from subjects import crypto
from subjects.columns import SUBJECT_PROFILE
from subjects.keys import blind_index, keyring, open_field
from subjects.locks import LockedSubject, advisory_locks, identifier_lock_names, lock_subjects_lean
from subjects.records import (
    PURCHASE_ADDRESS_KINDS,
    RESOLVE_ATTEMPTS,
    RecordIngested,
    RecordInput,
    choose_target,
    record_apply,
    record_ingest,
    record_lock_name,
)
from subjects.records_rows import BatchRows, NewSubject, RecordKey, RecordRow, rows_write

# Items per transaction. Bounds the advisory locks one transaction holds (about 2.5 per record): PostgreSQL keeps
# them in one shared table of max_locks_per_transaction x max_connections slots (6,400 by default), shared by every
# session, so two clients with 10,000-record transactions would exhaust it ("out of shared memory").
CHUNK = 500

Outcome = RecordIngested | DomainError


def records_ingest_batch(*, records: Sequence[RecordInput]) -> list[Outcome]:
    """Each record's result in input order: what record_ingest would have answered had the records come one by
    one, or the DomainError it would have raised (a 4xx: the item's fault). A 5xx error ends the call; the chunks
    before it stay committed, and a retry is idempotent per record."""
    if connection.vendor != "postgresql":
        # The demo's SQLite: one transaction per record, as the single endpoint (no arrays, no advisory locks).
        return [_caught(lambda r=r: record_ingest(record=r)) for r in records]  # type: ignore[misc]
    outcomes: list[Outcome] = []
    last: datetime | None = None
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        now = timezone.now()
        if last is not None and now <= last:
            now = last + timedelta(microseconds=1)  # the next chunk's items stay later than this one's
        outcomes += _chunk_ingest(chunk, now)
        last = now + timedelta(microseconds=len(chunk))
    return outcomes


def _caught(apply: Callable[[], RecordIngested]) -> Outcome:
    try:
        return apply()
    except DomainError as exc:
        if exc.status >= 500:
            raise  # not the item's fault: the whole call answers the problem
        return exc


@transaction.atomic(durable=True)
def _chunk_ingest(records: Sequence[RecordInput], now: datetime) -> list[Outcome]:
    index = blind_index()
    digests = [{(kind, value): index.lookup(kind, value) for kind, value in r.identifiers} for r in records]
    advisory_locks(
        identifier_lock_names(d for named in digests for d in named.values())
        | {record_lock_name(r.source, r.external_id) for r in records}
    )
    outcomes: list[Outcome | None] = [None] * len(records)
    keys: dict[uuid.UUID, bytes] = {}  # data keys unwrapped so far (they do not change within the transaction)
    position = 0
    while position < len(records):
        picture = _picture(records[position:], digests[position:], keys)
        position = _play(records, digests, position, picture, now, outcomes)
        if position < len(records):
            # A merge or a proposal (or a subject that kept changing under the picture): the single-record path,
            # after the rows before it were written; a refusal rolls back this item alone.
            record, at = records[position], now + timedelta(microseconds=position)

            def apply(record: RecordInput = record, at: datetime = at) -> RecordIngested:
                with transaction.atomic():
                    return record_apply(record=record, now=at)

            outcomes[position] = _caught(apply)
            position += 1
    return [o for o in outcomes if o is not None]


# ---------------------------------------------------------------------------------------------------------
# The picture: what the database holds for the items' identifiers and records, and what the items added
# ---------------------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Picture:
    owners: dict[bytes, set[uuid.UUID]]  # blind index -> the surviving subjects holding it
    held: dict[uuid.UUID, set[bytes]]  # subject -> the blind indexes (of these items) it holds
    unmarked: set[tuple[uuid.UUID, bytes]]  # held identifiers without a purchase mark yet
    records: dict[RecordKey, tuple[uuid.UUID, uuid.UUID]]  # -> (record id, its subject)
    subjects: dict[uuid.UUID, LockedSubject]  # the locked existing subjects
    keys: dict[uuid.UUID, bytes]
    stale: set[uuid.UUID]  # locked, but merged or erased meanwhile (see _picture)

    def key(self, subject_id: uuid.UUID) -> bytes:
        if subject_id not in self.keys:
            self.unwrap([subject_id])
        return self.keys[subject_id]

    def unwrap(self, subject_ids: Sequence[uuid.UUID]) -> None:
        subjects = [self.subjects[s] for s in subject_ids if s not in self.keys]
        for subject in subjects:
            if subject.wrapped_key is None:
                raise crypto.DecryptionError("the subject's data key was destroyed")
        unwrapped = keyring().unwrap_many([(s.key_kid, bytes(s.wrapped_key or b""), s.id) for s in subjects])
        self.keys.update(zip((s.id for s in subjects), unwrapped, strict=True))


def _picture(
    records: Sequence[RecordInput], digests: Sequence[dict[tuple[str, str], bytes]], keys: dict[uuid.UUID, bytes]
) -> _Picture:
    """Resolve and lock, as record_apply does for one record: read again while a locked subject turns out merged or
    erased meanwhile (its merge or erasure committed between the reads and the lock). Subjects still so after
    RESOLVE_ATTEMPTS are `stale`: the items that touch them go through record_apply one by one, which retries (and
    reports) on its own, and the others are not held up."""
    wanted = list({d for named in digests for d in named.values()})
    sources, external_ids = zip(*{(r.source, r.external_id) for r in records}, strict=True)
    for attempt in range(RESOLVE_ATTEMPTS + 1):
        with binary_cursor() as cursor:
            # One index probe per value, whatever the statistics say: `OFFSET 0` keeps each LATERAL subquery a
            # subquery, so the planner cannot turn it into a hash join over the whole table (which it chose while
            # the tables grew faster than ANALYZE saw: 30 ms instead of 2 ms per chunk).
            cursor.execute(
                "SELECT i.blind_index, i.subject_id, i.survivor, i.unmarked FROM unnest(%b::bytea[]) AS d(blind_index) "
                "CROSS JOIN LATERAL (SELECT i.blind_index, i.subject_id, COALESCE(s.merged_into_id, s.id) AS survivor, "
                "i.purchase_at IS NULL AS unmarked "
                "FROM subjects_identifier i JOIN subjects_subject s ON s.id = i.subject_id "
                "WHERE i.blind_index = d.blind_index OFFSET 0) AS i",
                [wanted],
            )
            holders = cursor.fetchall()
            cursor.execute(
                "SELECT k.source, k.external_id, r.id, r.subject_id "
                "FROM unnest(%b::text[], %b::text[]) AS k(source, external_id) "
                "CROSS JOIN LATERAL (SELECT r.id, r.subject_id FROM subjects_linkedrecord r "
                "WHERE r.source = k.source AND r.external_id = k.external_id OFFSET 0) AS r",
                [list(sources), list(external_ids)],
            )
            found = cursor.fetchall()
        owners: dict[bytes, set[uuid.UUID]] = {}
        held: dict[uuid.UUID, set[bytes]] = {}
        unmarked = {(subject_id, bytes(digest)) for digest, subject_id, _, flag in holders if flag}
        for digest, subject_id, survivor, _ in holders:
            owners.setdefault(bytes(digest), set()).add(survivor)
            held.setdefault(subject_id, set()).add(bytes(digest))
        existing = {(source, external_id): (row_id, subject_id) for source, external_id, row_id, subject_id in found}
        to_lock = {s for subjects in owners.values() for s in subjects} | {s for _, s in existing.values()}
        locked = lock_subjects_lean(sorted(to_lock))
        stale = {s.id for s in locked.values() if not s.current}
        if not stale or attempt == RESOLVE_ATTEMPTS:
            return _Picture(owners, held, unmarked, existing, locked, keys, stale)
    raise AssertionError("unreachable: the last attempt returns")


# ---------------------------------------------------------------------------------------------------------
# Playing the items in memory, collecting the rows
# ---------------------------------------------------------------------------------------------------------
def _play(
    records: Sequence[RecordInput],
    digests: Sequence[dict[tuple[str, str], bytes]],
    position: int,
    picture: _Picture,
    now: datetime,
    outcomes: list[Outcome | None],
) -> int:
    """Play the items from `position` until one needs a merge decision (or the end), write their rows, and
    return that item's position."""
    rows = BatchRows()
    while position < len(records):
        record, named = records[position], digests[position]
        at = now + timedelta(microseconds=position)
        key = (record.source, record.external_id)
        existing = picture.records.get(key)
        choice = choose_target(
            identifiers=record.identifiers,
            merge_kinds=record.merge_kinds,
            owners={pair: picture.owners.get(d, ()) for pair, d in named.items()},
            existing_subject_id=existing[1] if existing is not None else None,
        )
        touched = set(choice.merge_of) | {choice.subject_id} | ({existing[1]} if existing is not None else set())
        if len(choice.merge_of) > 1 or (picture.stale and touched & picture.stale):
            break
        if choice.merge_of:
            target = next(iter(choice.merge_of))  # one person holds them: no merge, as record_apply decides
        elif choice.subject_id is not None:
            target = choice.subject_id
        else:
            target = uuid.uuid4()
            rows.new_subjects[target] = NewSubject(created_at=at, key=crypto.new_data_key())
        _attach(rows, picture, target, named, at, purchase=record.purchase)
        record_id = _record(rows, picture, record, target, existing, at)
        if record.profile:
            _profile(rows, picture, target, record.data, at)
        outcomes[position] = RecordIngested(record_id, target, existing is None)
        position += 1
    _flush(rows, picture)
    return position


def _attach(
    rows: BatchRows,
    picture: _Picture,
    target: uuid.UUID,
    named: dict[tuple[str, str], bytes],
    at: datetime,
    *,
    purchase: bool,
) -> None:
    """As subjects.records attaches identifiers: every one the target lacks; a purchase marks its e-mail and phone
    as an existing customer's (the earliest purchase counts: a stored mark is kept)."""
    have = picture.held.setdefault(target, set())
    for (kind, value), digest in named.items():
        purchase_address = purchase and kind in PURCHASE_ADDRESS_KINDS
        if digest not in have:
            rows.identifiers[(target, digest)] = [kind, value, at, at if purchase_address else None]
            have.add(digest)
            picture.owners.setdefault(digest, set()).add(target)
        elif purchase_address:
            pending = rows.identifiers.get((target, digest))
            if pending is not None:
                if pending[3] is None:
                    pending[3] = at
            elif (target, digest) in picture.unmarked:
                # Stored without a mark: marked now. One already marked is left (the first purchase counts) and costs
                # no statement.
                picture.unmarked.discard((target, digest))
                rows.purchases[(target, digest)] = at


def _record(
    rows: BatchRows,
    picture: _Picture,
    record: RecordInput,
    target: uuid.UUID,
    existing: tuple[uuid.UUID, uuid.UUID] | None,
    at: datetime,
) -> uuid.UUID:
    key = (record.source, record.external_id)
    if existing is None:
        row = RecordRow(uuid.uuid4(), target, record.category, record.data, record.occurred_at, at, at)
        rows.inserts[key] = row
    else:
        pending = rows.inserts.get(key)  # created earlier in this batch and not yet written: one insert
        created_at = pending.created_at if pending is not None else at
        row = RecordRow(existing[0], target, record.category, record.data, record.occurred_at, created_at, at)
        (rows.inserts if pending is not None else rows.updates)[key] = row
    picture.records[key] = (row.id, target)
    return row.id


def _profile(rows: BatchRows, picture: _Picture, target: uuid.UUID, data: Mapping[str, Any], at: datetime) -> None:
    """A record of a profile category: its attributes overwrite the profile's (subjects.profile.profile_update)."""
    new = rows.new_subjects.get(target)
    if new is not None:
        new.profile = {**(new.profile or {}), **data}
        new.profile_at = at
        return
    current = rows.profiles.get(target)
    if current is not None:
        profile = current[0]
    else:
        blob = picture.subjects[target].profile_enc
        profile = orjson.loads(open_field(picture.key(target), blob, target, SUBJECT_PROFILE, target)) if blob else {}
    profile.update(data)
    rows.profiles[target] = (profile, at)


def _flush(rows: BatchRows, picture: _Picture) -> None:
    picture.unwrap(sorted(rows.subjects_written()))
    rows_write(rows, key_of=picture.key)
