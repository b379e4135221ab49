"""Merge proposals (DESIGN.md, Subjects and linked records): a record naming two existing people merges them only
when the survivor would hold at most one value of each `one_per_person` kind. Otherwise the record stays on one
side and a proposal waits for the DPO; approving merges exactly as `subject_merge` does, rejecting is remembered
by a fingerprint of the pair and the identifiers that named them, so the same call never proposes it again."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from config.errors import ConflictError, NotFoundError
from subjects.locks import lock_subjects
from subjects.merge import subject_merge
from subjects.models import Identifier, MergeProposal, Subject


class MergeProposalNotFoundError(NotFoundError):
    code = "merge_proposal_unknown"
    title = "Unknown merge proposal"


class MergeProposalDecidedError(ConflictError):
    code = "merge_proposal_decided"
    title = "This merge proposal is already decided"


def merge_conflict_kinds(
    *, subject_ids: Iterable[uuid.UUID], record_digests: Iterable[tuple[str, bytes]], one_per_person: frozenset[str]
) -> list[str]:
    """The `one_per_person` kinds of which the merged subject would hold two or more values (compared by blind
    index, never decrypted)."""
    if not one_per_person:
        return []
    values: dict[str, set[bytes]] = {}
    for kind, digest in Identifier.objects.filter(
        subject_id__in=list(subject_ids), kind__in=one_per_person
    ).values_list("kind", "blind_index"):
        values.setdefault(kind, set()).add(bytes(digest))
    for kind, digest in record_digests:
        if kind in one_per_person:
            values.setdefault(kind, set()).add(bytes(digest))
    return sorted(kind for kind, digests in values.items() if len(digests) > 1)


def merge_proposal_open(
    *,
    first: Subject,
    second: Subject,
    digests: Iterable[bytes],
    conflict_kinds: list[str],
    source: str,
    external_id: str,
    now: datetime,
) -> MergeProposal:
    """Open (or find again) the proposal for this pair named by these identifiers. The caller holds the
    transaction and both row locks. An open or rejected proposal with the same fingerprint is returned as it is:
    a rejection is the DPO's answer for this pair and these identifiers."""
    older, newer = sorted((first, second), key=lambda s: (s.created_at, str(s.id)))
    named = sorted({bytes(d) for d in digests})
    fingerprint = _fingerprint(older.id, newer.id, named)
    found = MergeProposal.objects.filter(fingerprint=fingerprint).first()
    if found is not None:
        return found
    identifier_ids = list(
        Identifier.objects.filter(subject_id__in=[older.id, newer.id], blind_index__in=named)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return MergeProposal.objects.create(
        subject_a=older,
        subject_b=newer,
        fingerprint=fingerprint,
        conflict_kinds=conflict_kinds,
        identifier_ids=identifier_ids,
        source=source,
        external_id=external_id,
        created_at=now,
    )


def _fingerprint(a: uuid.UUID, b: uuid.UUID, digests: list[bytes]) -> bytes:
    h = hashlib.sha256(b"merge-proposal\x00" + a.bytes + b.bytes)
    for digest in digests:
        h.update(digest)
    return h.digest()


@transaction.atomic(durable=True)
def merge_proposal_approve(*, proposal_id: uuid.UUID, decided_by: str, now: datetime | None = None) -> MergeProposal:
    """The DPO confirms the two are one person: merge exactly as a record would have (the older survives)."""
    now = now or timezone.now()
    proposal = _lock_open(proposal_id)
    pair = Subject.objects.filter(pk__in=[proposal.subject_a_id, proposal.subject_b_id]).values_list(
        "pk", "merged_into_id"
    )
    current = sorted({survivor or pk for pk, survivor in pair})
    locked = sorted(lock_subjects(current), key=lambda s: (s.created_at, str(s.id)))
    if len(locked) > 1:
        for absorbed in locked[1:]:
            subject_merge(
                survivor=locked[0], absorbed=absorbed, reason=f"merge proposal {proposal.pk} approved", now=now
            )
    proposal.status = MergeProposal.Status.APPROVED
    proposal.survivor = locked[0]
    proposal.decided_at, proposal.decided_by = now, decided_by
    proposal.save(update_fields=["status", "survivor", "decided_at", "decided_by"])
    return proposal


@transaction.atomic(durable=True)
def merge_proposal_reject(*, proposal_id: uuid.UUID, decided_by: str, now: datetime | None = None) -> MergeProposal:
    """The DPO finds two people: nothing merges, and the decision is kept so the pair is not proposed again."""
    proposal = _lock_open(proposal_id)
    proposal.status = MergeProposal.Status.REJECTED
    proposal.decided_at, proposal.decided_by = now or timezone.now(), decided_by
    proposal.save(update_fields=["status", "decided_at", "decided_by"])
    return proposal


def _lock_open(proposal_id: uuid.UUID) -> MergeProposal:
    proposal = MergeProposal.objects.select_for_update().filter(pk=proposal_id).first()
    if proposal is None:
        raise MergeProposalNotFoundError(f"no merge proposal {proposal_id}")
    if proposal.status != MergeProposal.Status.OPEN:
        raise MergeProposalDecidedError(f"merge proposal {proposal_id} is already {proposal.status}")
    return proposal


def merge_proposal_get(*, proposal_id: uuid.UUID) -> MergeProposal:
    proposal = MergeProposal.objects.filter(pk=proposal_id).first()
    if proposal is None:
        raise MergeProposalNotFoundError(f"no merge proposal {proposal_id}")
    return proposal
