"""Writes of subjects and identifiers."""

from __future__ import annotations

import uuid
from datetime import datetime

from subjects.identity import Reference
from subjects.keys import blind_index, encrypt_field, new_wrapped_key
from subjects.models import Identifier, Subject


def subject_create(*, reference: Reference, now: datetime) -> Subject:
    """A new subject holding the reference's identifiers. The caller holds the transaction and has checked
    that nothing resolves (a consent write creates a subject only then)."""
    subject_id = uuid.uuid4()
    kid, wrapped, key = new_wrapped_key(subject_id)
    subject = Subject.objects.create(id=subject_id, created_at=now, key_kid=kid, wrapped_key=wrapped)
    index = blind_index()
    Identifier.objects.bulk_create(
        [
            Identifier(
                subject=subject,
                kind=kind,
                blind_index=index.lookup(kind, value),
                value_enc=encrypt_field(subject, key, "identifier.value", value),
                created_at=now,
            )
            for kind, value in dict(reference.identifiers).items()
        ]
    )
    return subject
