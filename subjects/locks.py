"""Row locks, always taken in one order: the subject first, then its requests, then its records."""

from __future__ import annotations

import uuid

from subjects.models import Subject


def lock_subject(subject_id: uuid.UUID) -> Subject:
    """Lock one subject's row for the rest of the transaction. Serialises every state change of that person:
    the ledger's seq and hash chain depend on it."""
    return Subject.objects.select_for_update().get(pk=subject_id)


def lock_subjects(subject_ids: list[uuid.UUID]) -> list[Subject]:
    # Sorted by id so that two transactions locking the same pair never deadlock.
    return list(Subject.objects.select_for_update().filter(pk__in=subject_ids).order_by("pk"))
