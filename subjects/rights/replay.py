"""Re-applying a logged erasure to a database restored from a backup (`manage.py replay_erasures`): the same
erasure steps as a request's parts, run here in durable batches under the subjects' locks, without leases."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from subjects import ports
from subjects.locks import lock_subjects
from subjects.models import Identifier, LinkedRecord, RightsRequest, Subject
from subjects.rights import texts
from subjects.rights.context import status_set
from subjects.rights.erasure import erase_consent, erase_profile, erase_source, erasure_seal
from subjects.rights.mails import completion_addresses_forget
from subjects.selectors import subject_with_absorbed


class _LocalSteps:
    """Batches for a replay: durable transactions under the subjects' locks, no lease."""

    def __init__(self, subject_ids: list[uuid.UUID]) -> None:
        self.subject_ids = subject_ids
        self.outcome: dict[str, Any] = {}

    def mark_done(self) -> None:
        pass

    @contextmanager
    def step(self) -> Iterator[dict[str, Any]]:
        working = copy.deepcopy(self.outcome)
        with transaction.atomic(durable=True):
            lock_subjects(sorted(self.subject_ids))
            yield working
        self.outcome = working


def erasure_replay(*, subject_id: uuid.UUID, request_id: uuid.UUID) -> str:
    """Re-apply one logged erasure to a database restored from a backup. Idempotent."""
    subject = Subject.objects.filter(pk=subject_id).first()
    if subject is None:
        return "not in this database"
    group = subject_with_absorbed(subject_id=subject_id)
    # Whether or not its mail went out before the backup was taken, the address sealed for it goes now.
    completion_addresses_forget(subject_ids=group, now=timezone.now())
    leftovers = (
        LinkedRecord.objects.filter(subject_id__in=group).exists()
        or Identifier.objects.filter(subject_id__in=group).exists()
        or Subject.objects.filter(pk__in=group, wrapped_key__isnull=False).exists()
    )
    if not leftovers:
        return "already erased"
    now = timezone.now()
    catalogue = ports.consent_rights.catalogue()
    sources = set(catalogue.sources) | set(
        LinkedRecord.objects.filter(subject_id__in=group).values_list("source", flat=True)
    )
    for source in sorted(sources):
        erase_source(_LocalSteps(group), source=source, catalogue=catalogue, now=now)
    erase_profile(_LocalSteps(group), now=now)
    erase_consent(_LocalSteps(group), request_id=request_id, now=now)
    with transaction.atomic(durable=True):
        lock_subjects(sorted(group))
        erasure_seal(group, request_id, catalogue, now)
        open_request = RightsRequest.objects.open().select_for_update().filter(pk=request_id)
        if open_request.exists():
            request = open_request.get()
            status_set(
                request,
                RightsRequest.Status.COMPLETED,
                by="replay_erasures",
                at=now,
                note=texts.NOTE_REPLAYED,
                completed_at=now,
            )
    return "re-applied"
