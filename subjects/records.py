"""Linked records: ingesting a source's record, resolving who it belongs to, and the retention purge.

Identity rules (DESIGN.md, Subjects and linked records): only identifier kinds in the catalogue's
`merge_identifiers` (person-bound) fuse two subjects; shared kinds (a family's landline, a shared computer)
attach a record only when they point to exactly one subject, and never fuse two people, because a wrong merge
would put one person's data into another's access export."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from django.db import transaction
from django.utils import timezone

from subjects import crypto
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA
from subjects.errors import InvalidReferenceError
from subjects.keys import blind_index, data_key, encrypt_field, next_ids
from subjects.locks import advisory_locks, identifier_lock_names, lock_subjects
from subjects.merge import MergeConflictError, subject_merge
from subjects.merge_proposals import merge_conflict_kinds, merge_proposal_open
from subjects.models import Identifier, LinkedRecord, Subject
from subjects.ports import HoldingFacts
from subjects.profile import profile_update
from subjects.rights.calendar import BERLIN, hold_until
from subjects.services import subject_create_empty

PURCHASE_ADDRESS_KINDS = ("email", "phone")  # UWG §7(3): e-mail or SMS to an existing customer
RESOLVE_ATTEMPTS = 5  # resolutions after a merge or an erasure overtook one (each needs a commit of another writer)


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


@dataclass(frozen=True, slots=True)
class Target:
    """Where a record goes, decided from who holds its identifiers before anything is locked: `merge_of` (the
    subjects holding one of its person-bound identifiers: they are one person, merged or proposed once locked),
    else `subject_id` (attach there), else nobody (a new subject)."""

    subject_id: uuid.UUID | None = None
    merge_of: frozenset[uuid.UUID] = frozenset()


def choose_target(
    *,
    identifiers: Iterable[tuple[str, str]],
    merge_kinds: frozenset[str],
    owners: Mapping[tuple[str, str], Iterable[uuid.UUID]],
    existing_subject_id: uuid.UUID | None,
) -> Target:
    """Pure: which subject a record attaches to. `owners`: the surviving subjects holding each (kind, value);
    `existing_subject_id`: the subject of the record this one replaces (same source and external id)."""
    identifiers = list(identifiers)
    person_bound: set[uuid.UUID] = set()
    shared: set[uuid.UUID] = set()
    for kind, value in identifiers:
        (person_bound if kind in merge_kinds else shared).update(owners.get((kind, value), ()))
    if person_bound:
        return Target(merge_of=frozenset(person_bound))  # the oldest of them survives, chosen after locking
    carries_person_bound = any(kind in merge_kinds for kind, _ in identifiers)
    if len(shared) == 1 and not carries_person_bound:
        # A shared identifier decides only on its own: a record that names a new e-mail beside the family's
        # landline is another person at the same number.
        return Target(subject_id=next(iter(shared)))
    return Target(subject_id=existing_subject_id)


@transaction.atomic(durable=True)
def record_ingest(*, record: RecordInput) -> RecordIngested:
    return record_apply(record=record, now=timezone.now())


def record_apply(*, record: RecordInput, now: datetime) -> RecordIngested:
    """One record, inside the caller's transaction (record_ingest's, or a batch's savepoint after the batch's
    earlier items were written: it sees them). Takes its own locks; locks the caller already holds are re-entrant."""
    if not record.identifiers:
        raise InvalidReferenceError("a record needs at least one identifier", field="identifiers")
    index = blind_index()
    digests = {(kind, value): index.lookup(kind, value) for kind, value in record.identifiers}
    # Writers of the same person, or of the same record, queue here; then resolution sees committed rows.
    advisory_locks(identifier_lock_names(digests.values()) | {record_lock_name(record.source, record.external_id)})
    owners, existing, choice = _resolve(record, digests)
    locked = {s.id: s for s in lock_subjects(sorted(_to_lock(choice, existing)))}
    attempts = 0
    while any(s.merged_into_id is not None or s.erased_at is not None for s in locked.values()):
        # A merge absorbed one of them (or an erasure erased it) between resolution and its lock: those queue on
        # their own identifiers, not this record's. Resolve again now that it committed (the survivors hold what
        # was moved; an erased person holds nothing) and lock those; before, this record and its identifiers landed
        # on the absorbed subject (the soak found it).
        attempts += 1
        if attempts > RESOLVE_ATTEMPTS:
            raise MergeConflictError("the subjects of this record kept changing; send it again")
        owners, existing, choice = _resolve(record, digests)
        locked = {s.id: s for s in lock_subjects(sorted(_to_lock(choice, existing)))}
    proposal_id: uuid.UUID | None = None
    withheld: set[bytes] = set()  # identifiers of the other side of a proposal: never attached to this one
    if choice.merge_of:
        target, proposal_id, withheld = _merge_or_propose(record, digests, owners, choice.merge_of, locked, now)
    elif choice.subject_id is not None:
        target = locked[choice.subject_id]
    else:
        target = subject_create_empty(now=now)
    key = data_key(target)

    attach = {pair: d for pair, d in digests.items() if d not in withheld}
    _attach_identifiers(target, key, attach, now, purchase=record.purchase)
    row_id = _record_write(record, target, key, existing.pk if existing is not None else None, now)
    if record.profile:
        profile_update(target, key, record.data, now)
    return RecordIngested(row_id, target.id, existing is None, proposal_id)


def record_lock_name(source: str, external_id: str) -> str:
    """The advisory lock of one (source, external id): writers of the same record queue on it."""
    return f"record:{source}:{external_id}"


def _resolve(
    record: RecordInput, digests: dict[tuple[str, str], bytes]
) -> tuple[dict[bytes, set[uuid.UUID]], LinkedRecord | None, Target]:
    """Who holds the record's identifiers (surviving subjects), the record it replaces, and where it goes."""
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
    choice = choose_target(
        identifiers=record.identifiers,
        merge_kinds=record.merge_kinds,
        owners={pair: owners.get(digest, set()) for pair, digest in digests.items()},
        existing_subject_id=existing.subject_id if existing is not None else None,
    )
    return owners, existing, choice


def _to_lock(choice: Target, existing: LinkedRecord | None) -> set[uuid.UUID]:
    to_lock = set(choice.merge_of) | ({choice.subject_id} if choice.subject_id else set())
    if existing is not None:
        to_lock.add(existing.subject_id)
    return to_lock


def _merge_or_propose(
    record: RecordInput,
    digests: dict[tuple[str, str], bytes],
    owners: dict[bytes, set[uuid.UUID]],
    person_bound: frozenset[uuid.UUID],
    locked: dict[uuid.UUID, Subject],
    now: datetime,
) -> tuple[Subject, uuid.UUID | None, set[bytes]]:
    """Several subjects hold the record's person-bound identifiers: the oldest absorbs the others, unless their
    identifiers conflict (two values of a one-per-person kind), when the DPO gets a proposal and the record stays
    on its first owner's side. Returns (target, first proposal id, identifiers withheld from the target)."""
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
    if not conflict:
        for absorbed in ordered[1:]:
            subject_merge(
                survivor=target,
                absorbed=absorbed,
                reason=f"record {record.source}/{record.external_id} shares a person-bound identifier",
                now=now,
            )
        return target, None, set()
    target = locked[_first_owner(record, digests, owners, set(person_bound))]
    proposal_id: uuid.UUID | None = None
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
    return target, proposal_id, withheld


def _record_write(
    record: RecordInput, target: Subject, key: bytes, existing_id: uuid.UUID | None, now: datetime
) -> uuid.UUID:
    """Insert the record, or move and rewrite the one it replaces; returns its id."""
    row_id = uuid.uuid4() if existing_id is None else existing_id  # known before the insert: the data is bound to it
    sealed = crypto.seal_field(key, record_payload(record.data), target.id, RECORD_DATA, row_id)
    if existing_id is None:
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
    return row_id


def record_payload(data: Mapping[str, Any]) -> bytes:
    """A record's data as the JSON that is encrypted: compact, keys sorted (single records and batches alike)."""
    return orjson.dumps(data if type(data) is dict else dict(data), option=orjson.OPT_SORT_KEYS)


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
