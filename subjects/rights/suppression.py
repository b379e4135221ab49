"""The suppression list's read side (DESIGN.md, Rights requests, erasure): keyed hashes (the never-rotated
suppression sub-key of the blind index) of every identifier of an erased person. A marketing grant for one of them
from anyone but the person stays pending until the person confirms it; the consent side asks this selector."""

from __future__ import annotations

from collections.abc import Iterable

from subjects.keys import blind_index
from subjects.models import Suppression


def identifiers_suppressed(*, identifiers: Iterable[tuple[str, str]]) -> bool:
    """Whether any of these (kind, normalised value) identifiers belonged to an erased person. One query."""
    index = blind_index()
    digests = [index.suppression(kind, value) for kind, value in identifiers]
    return bool(digests) and Suppression.objects.filter(digest__in=digests).exists()
