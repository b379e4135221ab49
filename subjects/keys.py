"""The process's keys, built once from settings, and per-subject data keys."""

from __future__ import annotations

import functools
import uuid

from django.conf import settings
from django.db import connection, models

from subjects import crypto
from subjects.models import Subject


@functools.cache
def keyring() -> crypto.Keyring:
    return crypto.Keyring(tuple(settings.ASSENT_MASTER_KEYS))


@functools.cache
def blind_index() -> crypto.BlindIndex:
    return crypto.BlindIndex(settings.ASSENT_BLIND_INDEX_KEY)


def new_wrapped_key(subject_id: uuid.UUID) -> tuple[str, bytes, bytes]:
    """(kid, wrapped key, data key) for a new subject."""
    data_key = crypto.new_data_key()
    kid, wrapped = keyring().wrap(data_key, subject_id)
    return kid, wrapped, data_key


def data_key(subject: Subject) -> bytes:
    if subject.wrapped_key is None:
        raise crypto.DecryptionError("the subject's data key was destroyed")
    return keyring().unwrap(subject.key_kid, bytes(subject.wrapped_key), subject.id)


def encrypt_field(subject: Subject, key: bytes, column: str, value: str, *, row_id: crypto.RowId) -> bytes:
    """A value bound to its subject, column (subjects.columns) and row: allocate the row's id before encrypting."""
    return crypto.seal_field(key, value.encode(), subject.id, column, row_id)


def decrypt_field(subject: Subject, key: bytes, column: str, blob: bytes, *, row_id: crypto.RowId) -> str:
    """CiphertextIntegrityError if the value was written for another row, column or subject."""
    return open_field(key, blob, subject.id, column, row_id).decode()


def open_field(key: bytes, blob: bytes | memoryview, subject_id: uuid.UUID, column: str, row_id: crypto.RowId) -> bytes:
    """crypto.open_field under the ASSENT_READ_UNBOUND_VALUES setting: every reader of a subject's value uses it."""
    return crypto.open_field(
        key, bytes(blob), subject_id, column, row_id, read_unbound=settings.ASSENT_READ_UNBOUND_VALUES
    )


def next_ids(model: type[models.Model], count: int) -> list[int]:
    """Ids for rows about to be inserted, from the table's own sequence in one round trip, so their values can be
    bound to them before the insert."""
    if count <= 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # The demo's SQLite: Django's AUTOINCREMENT keeps the counter in sqlite_sequence, and the UPDATE holds
            # the database's write lock, so two connections never receive the same ids.
            cursor.execute(
                f'INSERT INTO sqlite_sequence (name, seq) SELECT %s, COALESCE((SELECT MAX(id) FROM "{table}"), 0) '
                "WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = %s)",
                [table, table],
            )
            cursor.execute("UPDATE sqlite_sequence SET seq = seq + %s WHERE name = %s RETURNING seq", [count, table])
            (last,) = cursor.fetchone()
            return list(range(last - count + 1, last + 1))
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
        return [row[0] for row in cursor.fetchall()]
