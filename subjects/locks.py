"""Row locks, always taken in one order: the subject first, then its requests, then its records."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.db import connection

from config.db import binary_cursor, prepared_rows
from subjects.models import Subject


def lock_subject(subject_id: uuid.UUID) -> Subject:
    """Lock one subject's row for the rest of the transaction. Serialises every state change of that person:
    the ledger's seq and hash chain depend on it."""
    return Subject.objects.select_for_update().get(pk=subject_id)


def lock_survivor(subject_id: uuid.UUID) -> Subject:
    """Lock the subject an id names now: the id's own row, then, if a merge absorbed it between a caller's
    resolution and this lock, the survivor's (merged_into names the final survivor once the merge committed)."""
    subject = lock_subject(subject_id)
    while subject.merged_into_id is not None:
        subject = lock_subject(subject.merged_into_id)
    return subject


_SUBJECT_COLUMNS = ", ".join(f"s.{f.column}" for f in Subject._meta.concrete_fields)
_SUBJECT_NAMES = [f.attname for f in Subject._meta.concrete_fields]
# The subject's identifiers (id, kind, value_enc) in the order they were attached, beside the locked row.
_IDENTIFIERS = "".join(
    f", ARRAY(SELECT i.{column} FROM subjects_identifier i WHERE i.subject_id = s.id ORDER BY i.created_at, i.id)"
    for column in ("id", "kind", "value_enc")
)
# The surviving subject one identifier (by blind index) or one id names, locked. One prepared statement (an equality
# each, so that PostgreSQL keeps one generic plan): the hot path of a consent write, where resolving and then
# locking cost two round trips and two plans.
_LOCK_BY = (
    f"SELECT {_SUBJECT_COLUMNS}{_IDENTIFIERS} FROM subjects_subject s WHERE s.id IN ("
    " SELECT COALESCE(o.merged_into_id, o.id) FROM subjects_identifier i"
    "   JOIN subjects_subject o ON o.id = i.subject_id WHERE i.blind_index = %(digest)s"
    ") ORDER BY s.id FOR UPDATE OF s"
)
_LOCK_BY_ID = (
    f"SELECT {_SUBJECT_COLUMNS}{_IDENTIFIERS} FROM subjects_subject s WHERE s.id = ("
    " SELECT COALESCE(o.merged_into_id, o.id) FROM subjects_subject o WHERE o.id = %(id)s"
    ") FOR UPDATE OF s"
)


class NamedSubject(NamedTuple):
    """A subject lock_subjects_named locked, with its identifiers."""

    subject: Subject
    # (id, kind, value_enc) in attach order, as the locking statement's snapshot saw them: when the lock had to wait,
    # that snapshot is older than the lock, so a caller that relies on them checks the ids again under the lock.
    identifiers: list[tuple[int, str, bytes]]


def lock_subjects_named(
    *, digest: bytes | None = None, subject_id: uuid.UUID | None = None
) -> list[NamedSubject] | None:
    """Lock every surviving subject that one identifier (its blind index) or one id names, resolved and locked in
    one statement, in id order (no deadlock between two such writers), with its identifiers. None where the vendor
    cannot (SQLite: the caller resolves, then locks). The subquery reads the statement's snapshot: a merge that
    committed while this waited shows as a locked row whose merged_into is now set, which the caller follows with
    lock_survivor."""
    if connection.vendor != "postgresql":
        return None
    if digest is not None:
        rows = prepared_rows(_LOCK_BY, {"digest": digest})
    else:
        rows = prepared_rows(_LOCK_BY_ID, {"id": subject_id})
    width = len(_SUBJECT_NAMES)
    return [
        NamedSubject(
            Subject.from_db(connection.alias, _SUBJECT_NAMES, row[:width]),
            list(zip(row[width], row[width + 1], [bytes(b) for b in row[width + 2]], strict=True)),
        )
        for row in rows
    ]


def lock_subjects(subject_ids: list[uuid.UUID]) -> list[Subject]:
    # Sorted by id so that two transactions locking the same pair never deadlock.
    return list(Subject.objects.select_for_update().filter(pk__in=subject_ids).order_by("pk"))


@dataclass(frozen=True, slots=True)
class LockedSubject:
    """What batch ingestion reads of a subject it locked."""

    id: uuid.UUID
    current: bool  # neither merged into another nor erased
    key_kid: str
    wrapped_key: bytes | None
    profile_enc: bytes | None


def lock_subjects_lean(subject_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, LockedSubject]:
    """lock_subjects for thousands of subjects at once: the same order (rows are locked as the sort returns them,
    by id), in one statement with binary parameters, only the columns ingestion reads and no model instances."""
    if not subject_ids:
        return {}
    with binary_cursor() as cursor:
        cursor.execute(
            "SELECT id, merged_into_id IS NULL AND erased_at IS NULL, key_kid, wrapped_key, profile_enc "
            "FROM subjects_subject WHERE id = ANY(%b::uuid[]) ORDER BY id FOR UPDATE",
            [list(subject_ids)],
        )
        return {row[0]: LockedSubject(*row) for row in cursor.fetchall()}


def _lock_number(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def advisory_lock(name: str) -> None:
    """Serialise writers on a name (a new person's identifier, a record, an idempotency key) until the
    transaction ends. SQLite needs none: its IMMEDIATE transactions already serialise every writer."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_number(name)])


def advisory_locks(names: set[str]) -> None:
    """Several advisory locks in one round trip, taken in a fixed (sorted) order so writers never deadlock."""
    if connection.vendor == "postgresql":
        numbers = sorted(_lock_number(n) for n in names)
        with binary_cursor() as cursor:  # a batch takes thousands: sent as one binary array, not quoted SQL text
            cursor.execute(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(%b::bigint[]) WITH ORDINALITY AS t(k, o) ORDER BY o",
                [numbers],
            )


def identifier_lock_names(digests: Iterable[bytes]) -> set[str]:
    """The advisory lock names of identifiers (by blind index): one name per identifier for every writer that may
    attach it (records, consent writes that create a subject, the portal, rectification). With two names a record
    and a first consent write for the same new address both saw nobody and made two subjects (the soak found it)."""
    return {"ident:" + bytes(d).hex() for d in digests}


def lock_identifiers(digests: Iterable[bytes]) -> None:
    """Serialise every writer that attaches one of these identifiers, until the transaction ends. Taken before the
    subject's row lock."""
    names = identifier_lock_names(digests)
    if names:
        advisory_locks(names)
