"""A subject's profile attributes (encrypted under the subject's data key) and the child flag they decide (Art. 8
GDPR): reading, writing, and the daily re-check of those who were children."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.utils import timezone

from subjects.columns import SUBJECT_PROFILE
from subjects.keys import data_key, decrypt_field, encrypt_field
from subjects.models import Subject

CHILD_AGE = 16  # Art. 8 GDPR as applied in Germany


def is_child(birth_date: object, today: date) -> bool:
    """Whether a profile's birth date (ISO text) makes the person younger than CHILD_AGE; False when unknown."""
    if not isinstance(birth_date, str):
        return False
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return False
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years < CHILD_AGE


def profile_read(subject: Subject, key: bytes) -> dict[str, Any]:
    if not subject.profile_enc:
        return {}
    loaded: dict[str, Any] = json.loads(
        decrypt_field(subject, key, SUBJECT_PROFILE, bytes(subject.profile_enc), row_id=subject.pk)
    )
    return loaded


def profile_write(subject: Subject, key: bytes, profile: Mapping[str, Any], *, now: datetime) -> bool:
    """Store the whole profile and the child flag its birth date decides (inside the caller's transaction, under
    the subject's lock); returns the flag."""
    child = is_child(profile.get("birth_date"), now.date())
    Subject.objects.filter(pk=subject.pk).update(
        profile_enc=encrypt_field(
            subject, key, SUBJECT_PROFILE, json.dumps(dict(profile), sort_keys=True), row_id=subject.pk
        ),
        is_child=child,
    )
    return child


def profile_update(subject: Subject, key: bytes, data: Mapping[str, Any], now: datetime) -> None:
    """A record of a profile category: its attributes overwrite the profile's."""
    profile = profile_read(subject, key)
    profile.update(data)
    subject.is_child = profile_write(subject, key, profile, now=now)


def children_recheck(*, now: datetime | None = None) -> int:
    """Art. 8: a child turns 16. Re-read the birth date of every subject flagged as a child (few, and only those
    are decrypted) and clear the flag once they are 16; returns how many grew up."""
    today = (now or timezone.now()).date()
    grown = 0
    for subject in Subject.objects.filter(is_child=True, wrapped_key__isnull=False).iterator(chunk_size=500):
        if not is_child(profile_read(subject, data_key(subject)).get("birth_date"), today):
            grown += Subject.objects.filter(pk=subject.pk, is_child=True).update(is_child=False)
    return grown
