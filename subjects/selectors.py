"""Reads of subjects: resolving references to the one subject they name, in a fixed number of queries."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection

from subjects.columns import IDENTIFIER_VALUE
from subjects.errors import AmbiguousSubjectError, InvalidIdentifierError, SubjectNotFoundError
from subjects.identity import KINDS, Reference, normalise, plain_email
from subjects.keys import blind_index, decrypt_field
from subjects.models import Identifier, Subject


@dataclass(frozen=True, slots=True)
class Resolution:
    subject_id: uuid.UUID | None  # the surviving subject, or None when nothing is known
    ambiguous: bool = False


UNKNOWN = Resolution(None)
AMBIGUOUS = Resolution(None, ambiguous=True)


def reference_digests(references: Sequence[Reference]) -> list[list[bytes]]:
    index = blind_index()
    return [[index.lookup(kind, value) for kind, value in ref.identifiers] for ref in references]


def plain_reference_digests(items: Sequence[object]) -> list[bytes] | None:
    """The blind index of each raw reference when every one is `{"email": <a plain ASCII address>}` (nearly every
    bulk check): the digests straight from the request's items, without a Reference per item. None when any item is
    something else; then each is parsed by `parse_reference`, which gives the same digest for these (tested)."""
    lookup = blind_index().lookup
    digests = []
    for item in items:
        if type(item) is not dict or len(item) != 1:
            return None
        address = plain_email(item.get(_EMAIL))
        if address is None:
            return None
        digests.append(lookup(_EMAIL, address))
    return digests


def single_identifier_digests(references: Sequence[Reference]) -> list[bytes] | None:
    """The blind index of each reference when every one names a single identifier and no id, else None."""
    if any(ref.subject_id is not None or len(ref.identifiers) != 1 for ref in references):
        return None
    lookup = blind_index().lookup
    return [lookup(*ref.identifiers[0]) for ref in references]


_EMAIL = Identifier.Kind.EMAIL.value


def subject_resolve_many(*, references: Sequence[Reference]) -> list[Resolution]:
    """Resolve every reference: the id and every *known* identifier must name the same subject (unknown
    identifiers are ignored); an absorbed id acts as its survivor. Two queries, whatever the count."""
    digests = reference_digests(references)
    wanted = list({d for ds in digests for d in ds})
    owners: dict[bytes, set[uuid.UUID]] = {}
    for digest, survivor in _owner_rows(wanted):
        owners.setdefault(bytes(digest), set()).add(survivor)
    ids = list({ref.subject_id for ref in references if ref.subject_id is not None})
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    if ids:
        for subject_id, survivor in Subject.objects.filter(pk__in=ids).values_list("pk", "merged_into_id"):
            survivors[subject_id] = survivor or subject_id
    return resolve_with(references, digests, owners, survivors)


def _owner_rows(digests: list[bytes]) -> list[tuple[bytes, uuid.UUID]]:
    """(digest, surviving subject) for every identifier with one of these blind indexes."""
    if not digests:
        return []
    if connection.vendor == "postgresql":
        # One array parameter: an IN list of 10,000 values costs more to build and to plan than to run.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.blind_index, COALESCE(s.merged_into_id, s.id) FROM subjects_identifier i "
                "JOIN subjects_subject s ON s.id = i.subject_id WHERE i.blind_index = ANY(%s::bytea[])",
                [digests],
            )
            return [(bytes(d), sid) for d, sid in cursor.fetchall()]
    rows = Identifier.objects.filter(blind_index__in=digests).values_list(
        "blind_index", "subject_id", "subject__merged_into_id"
    )
    return [(bytes(d), survivor or sid) for d, sid, survivor in rows]


def identifier_owners(*, identifiers: Sequence[tuple[str, str]]) -> list[set[uuid.UUID]]:
    """For each (kind, normalised value), the surviving subjects that hold it (empty: nobody), in one query.
    An identifier from a request may select a subject; only one this names as the subject's may be mailed,
    linked or lifted for it."""
    if not identifiers:
        return []
    index = blind_index()
    digests = [index.lookup(kind, value) for kind, value in identifiers]
    owners: dict[bytes, set[uuid.UUID]] = {}
    for digest, survivor in _owner_rows(list(set(digests))):
        owners.setdefault(digest, set()).add(survivor)
    return [owners.get(digest, set()) for digest in digests]


def resolve_with(
    references: Sequence[Reference],
    digests: Sequence[list[bytes]],
    owners: dict[bytes, set[uuid.UUID]],
    survivors: dict[uuid.UUID, uuid.UUID],
) -> list[Resolution]:
    """Apply the resolution rules to looked-up owners (digest -> subjects) and survivors (id -> survivor)."""
    return [_resolve_one(ref, ds, owners, survivors) for ref, ds in zip(references, digests, strict=True)]


def _resolve_one(
    ref: Reference, digests: list[bytes], owners: dict[bytes, set[uuid.UUID]], survivors: dict[uuid.UUID, uuid.UUID]
) -> Resolution:
    if ref.subject_id is None and len(digests) == 1:  # nearly every reference of a bulk check or a send
        known = owners.get(digests[0])
        if not known:
            return UNKNOWN
        return Resolution(next(iter(known))) if len(known) == 1 else AMBIGUOUS
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


def subject_identifiers(*, subject: Subject, key: bytes, kinds: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """(kind, value) of the subject's identifiers, decrypted, in the order they were attached."""
    rows = Identifier.objects.filter(subject=subject)
    if kinds is not None:
        rows = rows.filter(kind__in=list(kinds))
    return [
        (kind, decrypt_field(subject, key, IDENTIFIER_VALUE, bytes(blob), row_id=pk))
        for pk, kind, blob in rows.order_by("created_at", "pk").values_list("pk", "kind", "value_enc")
    ]


def identifier_held_elsewhere(*, subject_id: uuid.UUID, digest: bytes) -> bool:
    """Whether an identifier (by blind index) belongs to any subject but this one (merges followed)."""
    return any(owner != subject_id for _digest, owner in _owner_rows([digest]))


def subject_with_absorbed(*, subject_id: uuid.UUID) -> list[uuid.UUID]:
    """This subject, then the subjects merged into it (oldest id first): one person's closed chains and logs. A
    merge always points at the final survivor, so one hop finds them all."""
    absorbed = Subject.objects.filter(merged_into_id=subject_id).order_by("pk").values_list("pk", flat=True)
    return [subject_id, *absorbed]


def subject_group(subject_id: uuid.UUID | None) -> list[uuid.UUID]:
    """The request's subject followed to its survivor, then the subjects merged into it (their closed chains and
    logs are the same person's). Empty when nobody matched, or the person is erased already."""
    if subject_id is None:
        return []
    row = Subject.objects.filter(pk=subject_id).values_list("merged_into_id", "erased_at").first()
    if row is None or (row[0] is None and row[1] is not None):
        return []
    survivor = row[0] or subject_id
    if row[0] is not None and not Subject.objects.filter(pk=survivor, erased_at__isnull=True).exists():
        return []
    return subject_with_absorbed(subject_id=survivor)


def subject_ids_for_term(term: str) -> set[uuid.UUID]:
    """Subjects a search term names exactly: a subject id, or an identifier of any kind whose normalised value
    equals the term's (e-mail, phone, customer number ...), looked up by blind index. A substring finds nothing."""
    term = term.strip()
    ids: set[uuid.UUID] = set()
    with contextlib.suppress(ValueError):
        ids.add(uuid.UUID(term))
    index = blind_index()
    digests = []
    for kind in sorted(KINDS):
        try:
            digests.append(index.lookup(kind, normalise(kind, term)))
        except InvalidIdentifierError:
            continue
    if digests:
        ids.update(Identifier.objects.filter(blind_index__in=digests).values_list("subject_id", flat=True))
    return ids
