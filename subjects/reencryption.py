"""Re-encrypting values written before row binding (ciphertext version 1) as version 2, column by column of
subjects.columns.COLUMNS, in batches that commit on their own.

Resumable without a progress table: a batch selects only rows still on version 1, so a run killed at any point
starts again where it stopped. Rows whose subject's key was destroyed (erased) are skipped: nothing can read them.
Run by `reencrypt_fields` and at the end of `rotate_master_key`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models, transaction

from subjects import crypto
from subjects.columns import COLUMNS, EncryptedColumn
from subjects.keys import data_key
from subjects.models import Subject

_SETTING = re.compile(r"^[a-z_]+\.[a-z_]+$")


@dataclass(frozen=True, slots=True)
class ColumnProgress:
    column: str
    converted: int  # rows re-encrypted so far in this run


def _sql_parts(spec: EncryptedColumn) -> tuple[type[models.Model], str, str, str, str]:
    model = apps.get_model(spec.model)
    meta = model._meta
    field = meta.get_field(spec.field).column
    subject = next(f.column for f in meta.concrete_fields if f.attname == spec.subject_field)
    return model, meta.db_table, meta.pk.column, field, subject


def _old_rows(spec: EncryptedColumn, limit: int | None) -> str:
    _, table, pk, field, subject = _sql_parts(spec)
    # Version 1 is the first byte 0x01; anything else not version 2 is left to fail loudly on read.
    sql = (
        f'SELECT t."{pk}" FROM "{table}" t JOIN "subjects_subject" s ON s.id = t."{subject}" '
        f'WHERE t."{field}" IS NOT NULL AND substring(t."{field}" from 1 for 1) = \'\\x01\'::bytea '
        f"AND s.wrapped_key IS NOT NULL"
    )
    return sql + (f' ORDER BY t."{pk}" LIMIT {int(limit)}' if limit is not None else "")


def fields_pending() -> dict[str, int]:
    """How many readable values of each column are still on version 1 (empty: none)."""
    pending: dict[str, int] = {}
    with connection.cursor() as cursor:
        for spec in COLUMNS:
            cursor.execute(f"SELECT count(*) FROM ({_old_rows(spec, None)}) AS old")
            count = cursor.fetchone()[0]
            if count:
                pending[f"{spec.model}.{spec.field}"] = count
    return pending


def fields_reencrypt(*, batch: int = 500, progress: Callable[[ColumnProgress], None] | None = None) -> int:
    """Re-encrypt every version 1 value as version 2; returns how many. A value that does not authenticate stops
    the run (CiphertextIntegrityError naming nothing personal): an operator must look at it first."""
    total = 0
    for spec in COLUMNS:
        converted = 0
        while True:
            with transaction.atomic(durable=True):
                selected, done = _batch(spec, batch)
            if not selected:
                break
            converted += done
            total += done
            if progress:
                progress(ColumnProgress(spec.column, converted))
    return total


def _batch(spec: EncryptedColumn, size: int) -> tuple[int, int]:
    """(rows selected, rows converted): a row a merge converted meanwhile is selected but not converted, and
    not selected again, so the loop ends."""
    model, *_ = _sql_parts(spec)
    if spec.update_guard:
        # An append-only table's trigger lets this transaction rewrite the ciphertext (the clear evidence, which
        # the ledger's hash covers, does not change).
        if not _SETTING.match(spec.update_guard):
            raise ValueError(f"bad setting name {spec.update_guard!r}")
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL {spec.update_guard} = 'on'")
    with connection.cursor() as cursor:
        cursor.execute(_old_rows(spec, size))
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return 0, 0
    # Locked, and re-read: a merge may have moved (and already re-encrypted) a row since the select.
    rows = list(model._default_manager.select_for_update().filter(pk__in=ids).order_by("pk"))
    subjects = {
        s.pk: s
        for s in Subject.objects.filter(
            pk__in={getattr(r, spec.subject_field) for r in rows}, wrapped_key__isnull=False
        )
    }
    keys: dict[object, bytes] = {}
    changed = []
    for row in rows:
        blob = getattr(row, spec.field)
        subject = subjects.get(getattr(row, spec.subject_field))
        if blob is None or subject is None or crypto.is_row_bound(bytes(blob)):
            continue
        key = keys.get(subject.pk) or keys.setdefault(subject.pk, data_key(subject))
        try:
            plain = crypto.open_field(key, bytes(blob), subject.pk, spec.column, row.pk)
        except crypto.CiphertextIntegrityError:
            raise crypto.CiphertextIntegrityError(
                f"{spec.model}.{spec.field} row {row.pk} does not authenticate; nothing after it was converted"
            ) from None
        setattr(row, spec.field, crypto.seal_field(key, plain, subject.pk, spec.column, row.pk))
        changed.append(row)
    model._default_manager.bulk_update(changed, [spec.field])
    return len(ids), len(changed)
