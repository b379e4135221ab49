"""Reads of subjects: resolving references to the one subject they name, in a fixed number of queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from subjects.errors import AmbiguousSubjectError, SubjectNotFoundError
from subjects.identity import Reference
from subjects.keys import blind_index
from subjects.models import Identifier, Subject


@dataclass(frozen=True, slots=True)
class Resolution:
    subject_id: uuid.UUID | None  # the surviving subject, or None when nothing is known
    ambiguous: bool = False


UNKNOWN = Resolution(None)
AMBIGUOUS = Resolution(None, ambiguous=True)


def subject_resolve_many(*, references: Sequence[Reference]) -> list[Resolution]:
    """Resolve every reference: the id and every *known* identifier must name the same subject (unknown
    identifiers are ignored); an absorbed id acts as its survivor. Two queries, whatever the count."""
    index = blind_index()
    digests: list[list[bytes]] = [[index.lookup(kind, value) for kind, value in ref.identifiers] for ref in references]
    owners: dict[bytes, set[uuid.UUID]] = {}
    wanted = {d for ds in digests for d in ds}
    if wanted:
        rows = Identifier.objects.filter(blind_index__in=list(wanted)).values_list(
            "blind_index", "subject_id", "subject__merged_into_id"
        )
        for digest, subject_id, survivor in rows:
            owners.setdefault(bytes(digest), set()).add(survivor or subject_id)
    ids = {ref.subject_id for ref in references if ref.subject_id is not None}
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    if ids:
        for subject_id, survivor in Subject.objects.filter(pk__in=ids).values_list("pk", "merged_into_id"):
            survivors[subject_id] = survivor or subject_id
    return [_resolve_one(ref, ds, owners, survivors) for ref, ds in zip(references, digests, strict=True)]


def _resolve_one(
    ref: Reference, digests: list[bytes], owners: dict[bytes, set[uuid.UUID]], survivors: dict[uuid.UUID, uuid.UUID]
) -> Resolution:
    candidates: set[uuid.UUID] | None = None
    if ref.subject_id is not None:
        survivor = survivors.get(ref.subject_id)
        if survivor is None:
            return UNKNOWN
        candidates = {survivor}
    for digest in digests:
        known = owners.get(digest)
        if not known:
            continue  # an unknown identifier beside known ones is ignored, never attached
        candidates = set(known) if candidates is None else candidates & known
        if not candidates:
            return AMBIGUOUS
    if candidates is None:
        return UNKNOWN
    if len(candidates) != 1:
        # A shared identifier (a family's landline) that still names several people.
        return AMBIGUOUS
    return Resolution(next(iter(candidates)))


def subject_resolve(*, reference: Reference) -> uuid.UUID | None:
    """The subject a reference names, None if unknown; AmbiguousSubjectError if it names several."""
    resolution = subject_resolve_many(references=[reference])[0]
    if resolution.ambiguous:
        raise AmbiguousSubjectError("the id and identifiers name different subjects", field="subject")
    return resolution.subject_id


def subject_get_survivor(*, subject_id: uuid.UUID) -> Subject:
    """The subject an id names, following a merge to the survivor."""
    subject = Subject.objects.filter(pk=subject_id).first()
    if subject is None:
        raise SubjectNotFoundError("no subject with this id")
    if subject.merged_into_id is not None:
        subject = Subject.objects.get(pk=subject.merged_into_id)
    return subject
