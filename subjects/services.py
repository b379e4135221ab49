"""Writes of subjects and identifiers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from subjects.columns import IDENTIFIER_VALUE
from subjects.identity import Reference
from subjects.keys import blind_index, encrypt_field, keyring, new_wrapped_key, next_ids
from subjects.models import Identifier, Subject


def subject_create_empty(*, now: datetime) -> Subject:
    subject_id = uuid.uuid4()
    kid, wrapped, _key = new_wrapped_key(subject_id)
    return Subject.objects.create(id=subject_id, created_at=now, key_kid=kid, wrapped_key=wrapped)


def subject_create(*, reference: Reference, now: datetime) -> Subject:
    """A new subject holding the reference's identifiers. The caller holds the transaction and has checked
    that nothing resolves (a consent write creates a subject only then)."""
    subject_id = uuid.uuid4()
    kid, wrapped, key = new_wrapped_key(subject_id)
    subject = Subject.objects.create(id=subject_id, created_at=now, key_kid=kid, wrapped_key=wrapped)
    index = blind_index()
    identifiers = dict(reference.identifiers).items()
    Identifier.objects.bulk_create(
        [
            Identifier(
                id=row_id,
                subject=subject,
                kind=kind,
                blind_index=index.lookup(kind, value),
                value_enc=encrypt_field(subject, key, IDENTIFIER_VALUE, value, row_id=row_id),
                created_at=now,
            )
            for row_id, (kind, value) in zip(next_ids(Identifier, len(identifiers)), identifiers, strict=True)
        ]
    )
    return subject


def master_key_rotate(*, batch: int = 500, progress: Callable[[int], None] | None = None) -> int:
    """Re-wrap every data key under the first master key; the data itself is untouched. Each batch commits on
    its own and every update is conditional on the old kid, so an interrupted run simply resumes."""
    ring = keyring()
    current = ring.current_kid
    done = 0
    while True:
        rows = list(
            Subject.objects.exclude(key_kid=current)
            .filter(wrapped_key__isnull=False)
            .order_by("pk")
            .values_list("pk", "key_kid", "wrapped_key")[:batch]
        )
        if not rows:
            return done
        with transaction.atomic(durable=True):
            for subject_id, kid, wrapped in rows:
                key = ring.unwrap(kid, bytes(wrapped or b""), subject_id)
                new_kid, new_wrapped = ring.wrap(key, subject_id)
                done += Subject.objects.filter(pk=subject_id, key_kid=kid).update(
                    key_kid=new_kid, wrapped_key=new_wrapped
                )
        if progress:
            progress(done)


def identifier_replace(*, subject: Subject, key: bytes, kind: str, value: str, now: datetime) -> None:
    """Make `value` the subject's only identifier of its kind (rectification, a confirmed new address). The caller
    holds the identifier's lock and the subject's, and has checked that the value is nobody else's."""
    digest = blind_index().lookup(kind, value)
    mine = Identifier.objects.filter(subject=subject, kind=kind)
    purchase_at = max((p for p in mine.values_list("purchase_at", flat=True) if p), default=None)
    mine.exclude(blind_index=digest).delete()
    if not Identifier.objects.filter(subject=subject, blind_index=digest).exists():
        [row_id] = next_ids(Identifier, 1)
        Identifier.objects.create(
            id=row_id,
            subject=subject,
            kind=kind,
            blind_index=digest,
            value_enc=encrypt_field(subject, key, IDENTIFIER_VALUE, value, row_id=row_id),
            created_at=now,
            purchase_at=purchase_at,  # a corrected address of a purchase is still that purchase's address
        )
