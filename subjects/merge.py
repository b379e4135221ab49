"""Merging two subjects found to be one person, and splitting a wrong merge (DESIGN.md, Subjects and linked records).

A merge keeps the older subject, moves the absorbed side's identifiers and records to it, re-encrypted under the
survivor's data key, and writes a MergeAudit of what came from which side (ids, kinds, flags; profiles encrypted,
never identifier values), so a split can give each person back exactly their own data. The consent side (the
chains, the states, the read and send logs) is moved through `subjects.ports.consent`: subjects core never imports
`consent`.

The absorbed subject keeps its wrapped data key: its closed consent chain's evidence stays readable under it, and
a split re-encrypts the absorbed person's data back under it.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction

from config.errors import ConflictError, NotFoundError
from subjects import ports
from subjects.columns import (
    AUDIT_ABSORBED_PROFILE,
    AUDIT_SURVIVOR_PROFILE,
    IDENTIFIER_VALUE,
    RECORD_DATA,
    SUBJECT_PROFILE,
)
from subjects.crypto import RowId
from subjects.keys import data_key, decrypt_field, encrypt_field, next_ids
from subjects.locks import lock_subjects
from subjects.models import Identifier, LinkedRecord, MergeAudit, Subject
from subjects.profile import is_child, profile_read

BATCH = 500


class MergeConflictError(ConflictError):
    code = "merge_conflict"
    title = "These subjects cannot be merged now"


class SplitConflictError(ConflictError):
    code = "split_conflict"
    title = "This merge cannot be split"


class MergeNotFoundError(NotFoundError):
    code = "merge_unknown"
    title = "Unknown merge"


# ---------------------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------------------
def subject_merge(*, survivor: Subject, absorbed: Subject, reason: str, now: datetime) -> MergeAudit:
    """Fuse `absorbed` into `survivor`. The caller holds the transaction and both row locks (sorted by id, see
    subjects.locks), and passes the older subject as the survivor. Updates `survivor` in memory too: the caller
    goes on writing to it."""
    _check_mergeable(survivor, absorbed)
    survivor_key, absorbed_key = data_key(survivor), data_key(absorbed)

    identifier_ids, identifier_kinds, duplicates = _identifiers_merge(survivor, survivor_key, absorbed, absorbed_key)
    record_ids = list(LinkedRecord.objects.filter(subject=absorbed).order_by("pk").values_list("pk", flat=True))
    _records_move(record_ids, source=absorbed, source_key=absorbed_key, target=survivor, target_key=survivor_key)

    survivor_profile = profile_read(survivor, survivor_key)
    absorbed_profile = profile_read(absorbed, absorbed_key)
    merged_profile = {**absorbed_profile, **survivor_profile}  # the survivor's attributes win on conflict
    flags = {"is_child": survivor.is_child, "restricted_at": _iso(survivor.restricted_at)}
    survivor.profile_enc = _profile_seal(survivor, survivor_key, SUBJECT_PROFILE, merged_profile, row_id=survivor.pk)
    # Art. 8 and Art. 18 follow the person, whichever record said so: the more protective value wins.
    survivor.is_child = survivor.is_child or absorbed.is_child
    survivor.restricted_at = survivor.restricted_at or absorbed.restricted_at
    Subject.objects.filter(pk=survivor.pk).update(
        profile_enc=survivor.profile_enc, is_child=survivor.is_child, restricted_at=survivor.restricted_at
    )

    # merged_into always names the final survivor, so resolving an old id stays one hop.
    repointed = [str(pk) for pk in Subject.objects.filter(merged_into=absorbed).values_list("pk", flat=True)]
    Subject.objects.filter(merged_into=absorbed).update(merged_into=survivor)
    Subject.objects.filter(pk=absorbed.pk).update(
        status=Subject.Status.MERGED, merged_into=survivor, merged_at=now, profile_enc=None
    )
    absorbed.status = Subject.Status.MERGED
    absorbed.merged_into = survivor
    absorbed.merged_at = now
    absorbed.profile_enc = None

    [audit_id] = next_ids(MergeAudit, 1)  # the profiles below are bound to the audit row
    audit = MergeAudit.objects.create(
        id=audit_id,
        survivor=survivor,
        absorbed=absorbed,
        merged_at=now,
        reason=reason[:200],
        identifier_ids=identifier_ids,
        identifier_kinds=identifier_kinds,
        record_ids=[str(pk) for pk in record_ids],
        absorbed_profile_enc=_profile_seal(
            survivor, survivor_key, AUDIT_ABSORBED_PROFILE, absorbed_profile, row_id=audit_id
        ),
        survivor_profile_enc=_profile_seal(
            survivor, survivor_key, AUDIT_SURVIVOR_PROFILE, survivor_profile, row_id=audit_id
        ),
        duplicate_identifiers=duplicates,
        repointed_ids=repointed,
        survivor_flags=flags,
    )
    ports.consent.on_merge(survivor_id=survivor.id, absorbed_id=absorbed.id, now=now)
    return audit


def _check_mergeable(survivor: Subject, absorbed: Subject) -> None:
    assert transaction.get_connection().in_atomic_block, "the caller holds the transaction and both row locks"
    assert survivor.pk != absorbed.pk, "a subject cannot absorb itself"
    assert (survivor.created_at, str(survivor.id)) < (absorbed.created_at, str(absorbed.id)), "the older survives"
    for subject in (survivor, absorbed):
        # Resolution happens before the row locks: another writer may have merged or started erasing one of them.
        if subject.status != Subject.Status.ACTIVE or subject.merged_into_id is not None:
            raise MergeConflictError("one of the subjects was merged or erased meanwhile; send the record again")
        if subject.erasure_started_at is not None or subject.erased_at is not None:
            raise MergeConflictError("one of the subjects is being erased; it cannot take part in a merge")


def _identifiers_merge(
    survivor: Subject, survivor_key: bytes, absorbed: Subject, absorbed_key: bytes
) -> tuple[list[int], list[str], list[dict[str, Any]]]:
    """Move the absorbed side's identifiers to the survivor. One the survivor already has (same blind index) is
    deleted from the absorbed side, and remembered (row id of the survivor's copy, kind, timestamps) for a split."""
    have = {
        bytes(digest): (pk, purchase_at)
        for pk, digest, purchase_at in Identifier.objects.filter(subject=survivor).values_list(
            "pk", "blind_index", "purchase_at"
        )
    }
    moved: list[Identifier] = []
    duplicates: list[dict[str, Any]] = []
    for identifier in Identifier.objects.filter(subject=absorbed).order_by("pk"):
        digest = bytes(identifier.blind_index)
        if digest in have:
            survivor_identifier, survivor_purchase_at = have[digest]
            duplicates.append(
                {
                    "id": identifier.pk,
                    "survivor_identifier": survivor_identifier,
                    "kind": identifier.kind,
                    "created_at": _iso(identifier.created_at),
                    "purchase_at": _iso(identifier.purchase_at),
                    "survivor_purchase_at": _iso(survivor_purchase_at),
                }
            )
            # UWG §7(3): the person bought with this address on either side; the earlier purchase counts.
            earliest = _earliest(identifier.purchase_at, survivor_purchase_at)
            if earliest != survivor_purchase_at:
                Identifier.objects.filter(pk=survivor_identifier).update(purchase_at=earliest)
            continue
        identifier.value_enc = _reencrypt(
            identifier.value_enc,
            IDENTIFIER_VALUE,
            row_id=identifier.pk,
            source=absorbed,
            source_key=absorbed_key,
            target=survivor,
            target_key=survivor_key,
        )
        identifier.subject = survivor
        moved.append(identifier)
    Identifier.objects.filter(pk__in=[d["id"] for d in duplicates]).delete()
    Identifier.objects.bulk_update(moved, ["subject", "value_enc"], batch_size=BATCH)
    return [i.pk for i in moved], [i.kind for i in moved], duplicates


def _records_move(
    record_ids: list[uuid.UUID], *, source: Subject, source_key: bytes, target: Subject, target_key: bytes
) -> None:
    """Re-encrypt records under the target's key and hand them over, in batches (a subject may have thousands)."""
    for start in range(0, len(record_ids), BATCH):
        rows = list(LinkedRecord.objects.filter(pk__in=record_ids[start : start + BATCH], subject=source))
        for row in rows:
            plain = decrypt_field(source, source_key, RECORD_DATA, bytes(row.data_enc), row_id=row.pk)
            row.data_enc = encrypt_field(target, target_key, RECORD_DATA, plain, row_id=row.pk)
            row.subject = target
        LinkedRecord.objects.bulk_update(rows, ["subject", "data_enc"])


# ---------------------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------------------
@transaction.atomic(durable=True)
def subject_split(*, audit_id: int, now: datetime) -> tuple[Subject, Subject]:
    """Undo a wrong merge: the absorbed person is active again with their identifiers, records, profile and
    consents; the survivor keeps its own and whatever reached it after the merge. Returns (survivor, restored).
    Refused (409) when already split, or when either side was erased or merged again since."""
    pair = MergeAudit.objects.filter(pk=audit_id).values_list("survivor_id", "absorbed_id").first()
    if pair is None:
        raise MergeNotFoundError("no merge with this id")
    # Lock order: the subjects first (sorted), then the audit row.
    locked = {s.id: s for s in lock_subjects(sorted(pair))}
    survivor, absorbed = locked[pair[0]], locked[pair[1]]
    audit = MergeAudit.objects.select_for_update().get(pk=audit_id)
    if audit.split_at is not None:
        raise SplitConflictError("this merge was already split")
    if (
        survivor.status != Subject.Status.ACTIVE
        or survivor.merged_into_id is not None
        or survivor.erasure_started_at is not None
    ):
        raise SplitConflictError("the surviving subject was merged again or erased since; split that first")
    if absorbed.status != Subject.Status.MERGED or absorbed.merged_into_id != survivor.id or not absorbed.wrapped_key:
        raise SplitConflictError("the absorbed subject was erased since")
    survivor_key, absorbed_key = data_key(survivor), data_key(absorbed)

    _identifiers_split(audit, survivor, survivor_key, absorbed, absorbed_key)
    record_ids = list(
        LinkedRecord.objects.filter(pk__in=audit.record_ids, subject=survivor).values_list("pk", flat=True)
    )
    _records_move(record_ids, source=survivor, source_key=survivor_key, target=absorbed, target_key=absorbed_key)

    absorbed_profile = _profile_open(
        survivor, survivor_key, AUDIT_ABSORBED_PROFILE, audit.absorbed_profile_enc, row_id=audit.pk
    )
    survivor_before = _profile_open(
        survivor, survivor_key, AUDIT_SURVIVOR_PROFILE, audit.survivor_profile_enc, row_id=audit.pk
    )
    survivor_now = _profile_unmerged(profile_read(survivor, survivor_key), absorbed_profile, survivor_before)
    values: dict[str, Any] = {
        "profile_enc": _profile_seal(survivor, survivor_key, SUBJECT_PROFILE, survivor_now, row_id=survivor.pk)
    }
    values.update(_flags_unmerged(audit, survivor, absorbed, survivor_now, now))
    Subject.objects.filter(pk=survivor.pk).update(**values)
    Subject.objects.filter(pk=absorbed.pk).update(
        status=Subject.Status.ACTIVE,
        merged_into=None,
        merged_at=None,
        profile_enc=_profile_seal(absorbed, absorbed_key, SUBJECT_PROFILE, absorbed_profile, row_id=absorbed.pk),
    )
    Subject.objects.filter(pk__in=audit.repointed_ids, merged_into=survivor).update(merged_into=absorbed)
    audit.split_at = now
    audit.save(update_fields=["split_at"])
    # After the audit is marked: the consent side rebuilds each side's states without this merge.
    ports.consent.on_split(survivor_id=survivor.id, restored_id=absorbed.id, now=now)
    survivor.refresh_from_db()
    absorbed.refresh_from_db()
    return survivor, absorbed


def _flags_unmerged(
    audit: MergeAudit, survivor: Subject, absorbed: Subject, survivor_now: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """Flags go back only where they still hold the value the merge gave them."""
    values: dict[str, Any] = {}
    flags = audit.survivor_flags or {}
    if not flags.get("is_child", True) and absorbed.is_child and survivor.is_child:
        values["is_child"] = is_child(survivor_now.get("birth_date"), now.date())
    inherited = absorbed.restricted_at is not None and survivor.restricted_at == absorbed.restricted_at
    if flags.get("restricted_at") is None and inherited:
        values["restricted_at"] = None
    return values


def _profile_unmerged(
    current: dict[str, Any], absorbed_profile: dict[str, Any], survivor_before: dict[str, Any]
) -> dict[str, Any]:
    """Keep every attribute the survivor had, or that changed after the merge; drop those that came only from the
    absorbed side and are still as the merge left them."""
    merged_then = {**absorbed_profile, **survivor_before}
    return {k: v for k, v in current.items() if k in survivor_before or k not in merged_then or merged_then[k] != v}


def _identifiers_split(
    audit: MergeAudit, survivor: Subject, survivor_key: bytes, absorbed: Subject, absorbed_key: bytes
) -> None:
    back = list(Identifier.objects.filter(pk__in=audit.identifier_ids, subject=survivor))
    for identifier in back:
        identifier.value_enc = _reencrypt(
            identifier.value_enc,
            IDENTIFIER_VALUE,
            row_id=identifier.pk,
            source=survivor,
            source_key=survivor_key,
            target=absorbed,
            target_key=absorbed_key,
        )
        identifier.subject = absorbed
    Identifier.objects.bulk_update(back, ["subject", "value_enc"], batch_size=BATCH)
    # The absorbed side's copies of identifiers both had: recreated from the survivor's copy, which stays.
    originals = {
        i.pk: i
        for i in Identifier.objects.filter(
            pk__in=[d["survivor_identifier"] for d in audit.duplicate_identifiers], subject=survivor
        )
    }
    wanted = [d for d in audit.duplicate_identifiers if d["survivor_identifier"] in originals]
    new_ids = iter(next_ids(Identifier, len(wanted)))  # the copies' values are bound to their new rows
    copies: list[Identifier] = []
    for duplicate in audit.duplicate_identifiers:
        original = originals.get(duplicate["survivor_identifier"])
        if original is None:
            continue  # rectified or erased since: there is nothing to copy back
        copy_id = next(new_ids)
        copies.append(
            Identifier(
                id=copy_id,
                subject=absorbed,
                kind=duplicate["kind"],
                blind_index=bytes(original.blind_index),
                value_enc=_reencrypt(
                    original.value_enc,
                    IDENTIFIER_VALUE,
                    row_id=original.pk,
                    new_row_id=copy_id,
                    source=survivor,
                    source_key=survivor_key,
                    target=absorbed,
                    target_key=absorbed_key,
                ),
                created_at=datetime.fromisoformat(duplicate["created_at"]),
                purchase_at=_parse(duplicate["purchase_at"]),
            )
        )
        survivor_purchase_at = _parse(duplicate["survivor_purchase_at"])
        merged_purchase_at = _earliest(_parse(duplicate["purchase_at"]), survivor_purchase_at)
        if original.purchase_at == merged_purchase_at != survivor_purchase_at:
            Identifier.objects.filter(pk=original.pk).update(purchase_at=survivor_purchase_at)
    Identifier.objects.bulk_create(copies)


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
def _reencrypt(
    blob: bytes | memoryview,
    column: str,
    *,
    row_id: RowId,
    new_row_id: RowId | None = None,
    source: Subject,
    source_key: bytes,
    target: Subject,
    target_key: bytes,
) -> bytes:
    # The associated data names the subject and the row, so a value cannot simply be re-pointed or copied: it is
    # opened and sealed again (for a copy, bound to the new row).
    plain = decrypt_field(source, source_key, column, bytes(blob), row_id=row_id)
    return encrypt_field(target, target_key, column, plain, row_id=row_id if new_row_id is None else new_row_id)


def _profile_seal(subject: Subject, key: bytes, column: str, profile: dict[str, Any], *, row_id: RowId) -> bytes | None:
    return encrypt_field(subject, key, column, json.dumps(profile, sort_keys=True), row_id=row_id) if profile else None


def _profile_open(
    subject: Subject, key: bytes, column: str, blob: bytes | memoryview | None, *, row_id: RowId
) -> dict[str, Any]:
    if not blob:
        return {}
    loaded: dict[str, Any] = json.loads(decrypt_field(subject, key, column, bytes(blob), row_id=row_id))
    return loaded


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((m for m in (a, b) if m is not None), default=None)
