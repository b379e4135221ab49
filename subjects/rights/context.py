"""What a part's handler works with: the part names, the leased batch (`PartContext.step`), the request's history
and its completion. The workflow engine (`workflow.py`) runs handlers; handlers import this module, never the
engine, so the engine needs no knowledge of them (it is given a handler lookup by its caller)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from subjects import ports
from subjects.keys import data_key
from subjects.locks import lock_identifiers, lock_subjects
from subjects.models import RightsRequest, RightsRequestEvent, RightsRequestPart, Subject
from subjects.rights.enqueue import COMPLETION_MAIL, TELL_PERSON, enqueue_on_commit

Part = RightsRequestPart
Status = RightsRequest.Status
FINISH = "finish"
PROFILE = "profile"
CONSENT = "consent"
SOURCE = "source:"
CONNECTOR_PART = "connector:"  # a source's external system, reached through its connector (API.md, Connectors)
TRANSIENT = (OperationalError, InterfaceError, OSError)
SYSTEM = "system"


def lease() -> timedelta:
    return timedelta(seconds=settings.ASSENT_RIGHTS_LEASE_SECONDS)


class PartWaitError(Exception):
    """The part cannot finish now (an external system answered 202, or failed and is retried later): the engine
    keeps it running without a lease holder until `until`, when it can be claimed again, with `outcome` saved."""

    def __init__(self, until: datetime, outcome: dict[str, Any]) -> None:
        super().__init__(f"waiting until {until.isoformat()}")
        self.until = until
        self.outcome = outcome


class LeaseLostError(Exception):
    """Our lease ran out and another worker claimed the part: stop without writing."""


# ---------------------------------------------------------------------------------------------------------
# History and status
# ---------------------------------------------------------------------------------------------------------
def history_add(request: RightsRequest, event: str, by: str, at: datetime, note: str = "") -> None:
    RightsRequestEvent.objects.create(request=request, event=event, status=request.status, at=at, by=by, note=note)


def status_set(request: RightsRequest, status: str, *, by: str, at: datetime, note: str = "", **fields: Any) -> None:
    """Move a request (locked by the caller) to `status` and record who did it and when."""
    request.status = status
    for name, value in fields.items():
        setattr(request, name, value)
    RightsRequest.objects.filter(pk=request.pk).update(status=status, **fields)
    history_add(request, status, by, at, note)
    if status in (Status.COMPLETED, Status.REJECTED, Status.FAILED):
        # Connected systems hear that a request ended (API.md, Webhooks), with the change, in its transaction.
        ports.outbox.record(
            type="request.completed",
            subject_id=request.subject_id,
            data={"request": str(request.pk), "kind": request.kind, "status": status},
        )


@dataclass
class PartContext:
    """What a part's handler works with. `step()` is one batch: a durable transaction under the locks, with the
    part's progress (`outcome`) saved and the lease renewed at its end, both only if the lease is still ours."""

    part_id: int
    token: uuid.UUID
    name: str
    request: RightsRequest
    subject_ids: list[uuid.UUID]  # the subject (merges followed to the survivor) and those merged into it
    outcome: dict[str, Any]
    shared: dict[str, Any] = field(default_factory=dict, repr=False)  # what the parts of one task run share
    done: bool = False
    _final: bool = field(default=False, repr=False)

    @property
    def subject_id(self) -> uuid.UUID | None:
        return self.subject_ids[0] if self.subject_ids else None

    def subject(self) -> Subject | None:
        if "subject" not in self.shared:
            self.shared["subject"] = Subject.objects.filter(pk=self.subject_id).first() if self.subject_id else None
        subject: Subject | None = self.shared["subject"]
        return subject

    def data_key(self) -> bytes:
        if "key" not in self.shared:
            subject = self.subject()
            assert subject is not None, "a part about nobody has no data key"
            self.shared["key"] = data_key(subject)
        key: bytes = self.shared["key"]
        return key

    def mark_done(self) -> None:
        self._final = True

    @contextmanager
    def step(self, *, read_only: bool = False, identifiers: Collection[bytes] = ()) -> Iterator[dict[str, Any]]:
        """`read_only`: the batch wrote nothing but its piece file and records only the part's outcome, a single
        conditional UPDATE that needs neither the subject's lock nor a transaction of its own. `identifiers`: blind
        indexes the batch attaches; their locks come first, before the subject's (the order every writer keeps)."""
        working = copy.deepcopy(self.outcome)
        self._final = False
        if read_only:
            yield working
            self._save(working)
        else:
            with transaction.atomic(durable=True):
                lock_identifiers(identifiers)
                if self.subject_ids:
                    lock_subjects(sorted(self.subject_ids))
                yield working
                self._save(working)
        self.outcome = working
        self.done = self.done or self._final

    def _save(self, outcome: dict[str, Any]) -> None:
        now = timezone.now()
        values: dict[str, Any] = {"outcome": outcome, "claimed_until": now + lease()}
        if self._final:
            values.update(status=Part.Status.DONE, finished_at=now, lease_token=None, error="")
        # The lease is checked where the batch commits: if another worker took the part over meanwhile, this
        # UPDATE finds no row and the whole batch rolls back. (That worker waited for our subject lock, so it
        # cannot have written anything of this batch.)
        if not Part.objects.filter(pk=self.part_id, lease_token=self.token, status=Part.Status.RUNNING).update(
            **values
        ):
            raise LeaseLostError

    def renew(self) -> None:
        """Extend the lease during long work outside a batch (writing an export); stop if it was lost."""
        if not Part.objects.filter(pk=self.part_id, lease_token=self.token, status=Part.Status.RUNNING).update(
            claimed_until=timezone.now() + lease()
        ):
            raise LeaseLostError


Handler = Callable[[PartContext], None]
# Which handler runs a part of a request of a kind: the registry (`registry.handler_for`), given to the engine.
HandlerLookup = Callable[[str, str], Handler]


def request_complete(context: PartContext, result: dict[str, Any], *, note: str = "") -> None:
    """Complete the request from its finish step, inside that step's transaction."""
    request = RightsRequest.objects.select_for_update().get(pk=context.request.pk)
    now = timezone.now()
    status_set(request, Status.COMPLETED, by=SYSTEM, at=now, note=note, completed_at=now, result=result)
    # The loop closes: the person hears that it is done, once this commits (mails.completion_tell).
    enqueue_on_commit(TELL_PERSON, str(request.pk), COMPLETION_MAIL)
    context.mark_done()


def part_outcomes(request_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    return dict(Part.objects.filter(request_id=request_id).values_list("name", "outcome"))
