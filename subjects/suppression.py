"""The suppression list (DESIGN.md, Rights requests, erasure): keyed hashes (the never-rotated suppression sub-key
of the blind index) of every identifier of an erased person. Erasure adds to it; a marketing grant for one of them
from anyone but the person stays pending until the person confirms it (the consent side reads it here), and the
person's own act lifts it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from django.db import connection

from config.db import prepared_rows
from subjects.keys import blind_index
from subjects.models import Suppression

_ANY_SUPPRESSED = "SELECT EXISTS (SELECT 1 FROM subjects_suppression WHERE digest = ANY(%(digests)s::bytea[]))"


def suppression_digests(identifiers: Iterable[tuple[str, str]]) -> list[bytes]:
    """The keyed hashes the list holds for these (kind, normalised value) identifiers."""
    index = blind_index()
    return [index.suppression(kind, value) for kind, value in sorted(set(identifiers))]


def suppression_add(*, identifiers: Sequence[tuple[str, str]], now: datetime) -> int:
    """Put these (kind, value) identifiers of a person being erased on the list (inside the erasure's
    transaction); one already there stays as it is. Returns how many were offered."""
    index = blind_index()
    rows = [
        Suppression(digest=index.suppression(kind, value), kind=kind, created_at=now) for kind, value in identifiers
    ]
    Suppression.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def identifiers_suppressed(*, identifiers: Iterable[tuple[str, str]]) -> bool:
    """Whether any of these (kind, normalised value) identifiers belonged to an erased person. One query."""
    digests = suppression_digests(identifiers)
    if not digests:
        return False
    if connection.vendor == "postgresql":
        # Prepared: the list is read on most marketing grants (consent.ledger.recording).
        return bool(prepared_rows(_ANY_SUPPRESSED, {"digests": digests})[0][0])
    return Suppression.objects.filter(digest__in=digests).exists()


def suppression_lift(*, identifiers: Iterable[tuple[str, str]]) -> None:
    """The person's own act takes these identifiers off the list."""
    digests = suppression_digests(identifiers)
    if digests:
        Suppression.objects.filter(digest__in=digests).delete()
