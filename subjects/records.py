"""Linked records: ingesting a source's record, resolving who it belongs to, and the retention purge.

Identity rules (DESIGN.md, Subjects and linked records): only identifier kinds in the catalogue's
`merge_identifiers` (person-bound) fuse two subjects; shared kinds (a family's landline, a shared computer)
attach a record only when they point to exactly one subject, and never fuse two people, because a wrong merge
would put one person's data into another's access export."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA, SUBJECT_PROFILE
from subjects.errors import InvalidReferenceError
from subjects.keys import blind_index, data_key, decrypt_field, encrypt_field, next_ids
from subjects.locks import advisory_locks, lock_subjects
from subjects.merge_proposals import merge_conflict_kinds, merge_proposal_open
from subjects.models import Identifier, LinkedRecord, Subject
from subjects.ports import HoldingFacts
from subjects.rights.due import BERLIN, hold_until
from subjects.services import subject_create_empty

PROFILE = SUBJECT_PROFILE
CHILD_AGE = 16  # Art. 8 GDPR as applied in Germany
PURCHASE_ADDRESS_KINDS = ("email", "phone")  # UWG §7(3): e-mail or SMS to an existing customer


@dataclass(frozen=True, slots=True)
class RecordInput:
    source: str
    external_id: str
    category: str
    identifiers: tuple[tuple[str, str], ...]  # normalised (kind, value)
    occurred_at: datetime
    data: Mapping[str, Any]
    merge_kinds: frozenset[str]
    profile: bool = False  # the category updates the subject's profile attributes
    purchase: bool = False  # the category is a purchase: its e-mail and phone become existing-customer addresses
    one_per_person: frozenset[str] = frozenset()  # kinds of which a merge must not give the survivor two values
    merge_order: tuple[str, ...] = ()  # the catalogue's merge_identifiers in order: who keeps a proposed record


@dataclass(frozen=True, slots=True)
class RecordIngested:
    record_id: uuid.UUID
    subject_id: uuid.UUID
    created: bool
    merge_proposal: uuid.UUID | None = None  # set when the merge waits for the DPO (202)


@transaction.atomic(durable=True)
def record_ingest(*, record: RecordInput) -> RecordIngested:
    if not record.identifiers:
        raise InvalidReferenceError("a record needs at least one identifier", field="identifiers")
    now = timezone.now()
    index = blind_index()
    digests = {(kind, value): index.lookup(kind, value) for kind, value in record.identifiers}
    # Writers of the same person, or of the same record, queue here; then resolution sees committed rows.
    advisory_locks({d.hex() for d in digests.values()} | {f"record:{record.source}:{record.external_id}"})
    owners: dict[bytes, set[uuid.UUID]] = {}
    for digest, subject_id, survivor in Identifier.objects.filter(blind_index__in=list(digests.values())).values_list(
        "blind_index", "subject_id", "subject__merged_into_id"
    ):
        owners.setdefault(bytes(digest), set()).add(survivor or subject_id)
    existing = (
        LinkedRecord.objects.filter(source=record.source, external_id=record.external_id)
        .only("pk", "subject_id")
        .first()
    )

    person_bound: set[uuid.UUID] = set()
    shared: set[uuid.UUID] = set()
    for (kind, _value), digest in digests.items():
        (person_bound if kind in record.merge_kinds else shared).update(owners.get(digest, ()))

    carries_person_bound = any(kind in record.merge_kinds for kind, _ in record.identifiers)
    target_id: uuid.UUID | None
    if person_bound:
        target_id = None  # the oldest of them, chosen after locking
    elif len(shared) == 1 and not carries_person_bound:
        # A shared identifier decides only on its own: a record that names a new e-mail beside the family's
        # landline is another person at the same number.
        target_id = next(iter(shared))
    elif existing is not None:
        target_id = existing.subject_id
    else:
        target_id = None

    to_lock = set(person_bound) | ({target_id} if target_id else set())
    if existing is not None:
        to_lock.add(existing.subject_id)
    locked = {s.id: s for s in lock_subjects(sorted(to_lock))}
    proposal_id: uuid.UUID | None = None
    withheld: set[bytes] = set()  # identifiers of the other side of a proposal: never attached to this one
    if person_bound:
        ordered = sorted((locked[i] for i in person_bound), key=lambda s: (s.created_at, str(s.id)))
        target = ordered[0]
        conflict = (
            merge_conflict_kinds(
                subject_ids=[s.id for s in ordered],
                record_digests=[(kind, d) for (kind, _), d in digests.items()],
                one_per_person=record.one_per_person,
            )
            if len(ordered) > 1
            else []
        )
        if conflict:
            target = locked[_first_owner(record, digests, owners, person_bound)]
            for other in ordered:
                if other.id == target.id:
                    continue
                named = [d for d in digests.values() if owners.get(d, set()) & {target.id, other.id}]
                proposal = merge_proposal_open(
                    first=target,
                    second=other,
                    digests=named,
                    conflict_kinds=conflict,
                    source=record.source,
                    external_id=record.external_id,
                    now=now,
                )
                proposal_id = proposal_id or proposal.pk
            withheld = {d for d in digests.values() if owners.get(d, set()) - {target.id}}
        elif len(ordered) > 1:
            from subjects.merge import subject_merge  # merging is its own module: it is large

            for absorbed in ordered[1:]:
                subject_merge(
                    survivor=target,
                    absorbed=absorbed,
                    reason=f"record {record.source}/{record.external_id} shares a person-bound identifier",
                    now=now,
                )
    elif target_id is not None:
        target = locked[target_id]
    else:
        target = subject_create_empty(now=now)
    key = data_key(target)

    attach = {pair: d for pair, d in digests.items() if d not in withheld}
    _attach_identifiers(target, key, attach, now, purchase=record.purchase)
    payload = json.dumps(dict(record.data), separators=(",", ":"), sort_keys=True)
    created = existing is None
    row_id = uuid.uuid4() if existing is None else existing.pk  # known before the insert: the data is bound to it
    sealed = encrypt_field(target, key, RECORD_DATA, payload, row_id=row_id)
    if existing is None:
        LinkedRecord.objects.create(
            id=row_id,
            subject=target,
            source=record.source,
            external_id=record.external_id,
            category=record.category,
            data_enc=sealed,
            occurred_at=record.occurred_at,
            created_at=now,
            updated_at=now,
        )
    else:
        LinkedRecord.objects.filter(pk=row_id).update(
            subject=target, category=record.category, data_enc=sealed, occurred_at=record.occurred_at, updated_at=now
        )
    if record.profile:
        _update_profile(target, key, record.data, now)
    return RecordIngested(row_id, target.id, created, proposal_id)


def _first_owner(
    record: RecordInput,
    digests: dict[tuple[str, str], bytes],
    owners: dict[bytes, set[uuid.UUID]],
    person_bound: set[uuid.UUID],
) -> uuid.UUID:
    """API.md: a record whose merge waits is stored on the subject of its first identifier in `merge_identifiers`
    order (the catalogue's list), so the same call always lands on the same side."""
    order = {kind: i for i, kind in enumerate(record.merge_order)}
    for (_kind, _value), digest in sorted(
        digests.items(), key=lambda item: (order.get(item[0][0], len(order)), item[0])
    ):
        found = sorted(owners.get(digest, set()) & person_bound, key=str)
        if found:
            return found[0]
    return sorted(person_bound, key=str)[0]


def _attach_identifiers(
    subject: Subject, key: bytes, digests: dict[tuple[str, str], bytes], now: datetime, *, purchase: bool
) -> None:
    """Records are the one place identifiers are attached. A shared identifier may belong to several people."""
    have = {bytes(d) for d in Identifier.objects.filter(subject=subject).values_list("blind_index", flat=True)}
    missing = [(kind_value, digest) for kind_value, digest in digests.items() if digest not in have]
    # One sequence round trip for the whole batch: each value is bound to its row id before the insert.
    new = [
        Identifier(
            id=row_id,
            subject=subject,
            kind=kind,
            blind_index=digest,
            value_enc=encrypt_field(subject, key, IDENTIFIER_VALUE, value, row_id=row_id),
            created_at=now,
            purchase_at=now if purchase and kind in PURCHASE_ADDRESS_KINDS else None,
        )
        for row_id, ((kind, value), digest) in zip(next_ids(Identifier, len(missing)), missing, strict=True)
    ]
    Identifier.objects.bulk_create(new)
    if purchase:
        Identifier.objects.filter(
            subject=subject,
            kind__in=PURCHASE_ADDRESS_KINDS,
            blind_index__in=[d for (kind, _), d in digests.items() if kind in PURCHASE_ADDRESS_KINDS],
            purchase_at__isnull=True,
        ).update(purchase_at=now)


def profile_read(subject: Subject, key: bytes) -> dict[str, Any]:
    if not subject.profile_enc:
        return {}
    loaded: dict[str, Any] = json.loads(
        decrypt_field(subject, key, PROFILE, bytes(subject.profile_enc), row_id=subject.pk)
    )
    return loaded


def _update_profile(subject: Subject, key: bytes, data: Mapping[str, Any], now: datetime) -> None:
    profile = profile_read(subject, key)
    profile.update(data)
    is_child = _is_child(profile.get("birth_date"), now.date())
    Subject.objects.filter(pk=subject.pk).update(
        profile_enc=encrypt_field(subject, key, PROFILE, json.dumps(profile, sort_keys=True), row_id=subject.pk),
        is_child=is_child,
    )
    subject.is_child = is_child


def _is_child(birth_date: object, today: date) -> bool:
    if not isinstance(birth_date, str):
        return False
    try:
        born = date.fromisoformat(birth_date)
    except ValueError:
        return False
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years < CHILD_AGE


def records_purge(
    *, holdings: Mapping[tuple[str, str], HoldingFacts], now: datetime | None = None, batch: int = 5000
) -> int:
    """Art. 5(1)(e): delete records past their source category's `delete_after_days` (from the catalogue), but
    never one its legal hold still keeps (the hold's exact end, however the limit was set) nor one of a
    restricted person (Art. 18: the data is frozen, not deleted, until the restriction is lifted)."""
    now = now or timezone.now()
    today = now.astimezone(BERLIN).date()
    deleted = 0
    for (source, category), holding in holdings.items():
        cutoff = now - timedelta(days=holding.delete_after_days)
        if holding.hold_years is not None:
            # A hold lasts at least 365 days a year: a coarse bound for the query, the exact end is checked below.
            cutoff = min(cutoff, now - timedelta(days=365 * holding.hold_years))
        after: uuid.UUID | None = None
        while True:
            query = LinkedRecord.objects.filter(source=source, category=category, occurred_at__lt=cutoff)
            if after is not None:
                query = query.filter(pk__gt=after)  # keyset paging: held records stay and must not be read again
            rows = list(query.order_by("pk").values_list("pk", "subject_id", "occurred_at")[:batch])
            if not rows:
                break
            after = rows[-1][0]
            due = [(pk, subject_id) for pk, subject_id, occurred_at in rows if not _held(holding, occurred_at, today)]
            if due:
                deleted += _delete_unless_restricted(due)
    return deleted


def _held(holding: HoldingFacts, occurred_at: datetime, today: date) -> bool:
    if holding.hold_years is None:
        return False
    return hold_until(occurred_at, years=holding.hold_years, start=holding.hold_from) >= today


@transaction.atomic(durable=True)
def _delete_unless_restricted(rows: list[tuple[uuid.UUID, uuid.UUID]]) -> int:
    """The subjects are locked first (a restriction is set under that lock), then the records go by their own
    columns only, so a restriction or a merge that commits meanwhile cannot be missed."""
    free = [s.pk for s in lock_subjects(sorted({subject_id for _, subject_id in rows})) if s.restricted_at is None]
    deleted: int = LinkedRecord.objects.filter(pk__in=[pk for pk, _ in rows], subject_id__in=free).delete()[0]
    return deleted


def children_recheck(*, now: datetime | None = None) -> int:
    """Art. 8: a child turns 16. Re-read the birth date of every subject flagged as a child (few, and only those
    are decrypted) and clear the flag once they are 16; returns how many grew up."""
    today = (now or timezone.now()).date()
    grown = 0
    for subject in Subject.objects.filter(is_child=True, wrapped_key__isnull=False).iterator(chunk_size=500):
        if not _is_child(profile_read(subject, data_key(subject)).get("birth_date"), today):
            grown += Subject.objects.filter(pk=subject.pk, is_child=True).update(is_child=False)
    return grown
