"""Rights requests: opening, verifying, approving, rejecting, extending, lifting, retrying (services). Their
details are parsed in details.py; reading a request is in selectors.py.

States (DESIGN.md, Rights requests): received -> verified -> (awaiting_approval: erasure only) -> processing ->
completed | rejected | failed; each transition is recorded with who and when. Objection takes effect without
verification (it only reduces processing, Art. 21); every other kind starts when verified (Art. 12(6)); only
erasure waits for approval. A request never creates a subject: for a person nobody knows it runs the same
workflow over nothing and completes with the same "no data found" words as any other."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.errors import InvalidInputError
from subjects import ports
from subjects.columns import REQUEST_DETAILS
from subjects.identity import Reference
from subjects.keys import blind_index, data_key, encrypt_field
from subjects.locks import advisory_lock, lock_identifiers, lock_subject, lock_survivor
from subjects.models import LinkedRecord, RightsRequest, RightsRequestPart, Subject
from subjects.rights import calendar, texts, vault
from subjects.rights.connector import connector_requests
from subjects.rights.context import history_add, status_set
from subjects.rights.details import Details
from subjects.rights.enqueue import LIFT_RESTRICTION, TELL_PERSON, enqueue_on_commit
from subjects.rights.errors import (
    RectificationConflictError,
    RequestForbiddenError,
    RequestKindError,
    RequestNotFoundError,
    RequestOpenError,
    RequestStateError,
)
from subjects.rights.texts import COMPLAINT
from subjects.rights.workflow import parts_create, parts_enqueue, parts_plan
from subjects.selectors import identifier_held_elsewhere, subject_group, subject_resolve

Kind = RightsRequest.Kind
Status = RightsRequest.Status
MAX_REASON = 2000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: an API client (`client:<name>`), a staff member (`staff:<username>`), the person, or the system."""

    label: str
    client_id: int | None = None
    client_purposes: frozenset[str] = frozenset()  # empty: every purpose


def _fingerprint(kind: str, reference: Reference, subject_id: uuid.UUID | None, details: Details) -> str:
    if subject_id is not None:
        who = subject_id.bytes
    else:
        index = blind_index()
        digests = sorted(index.lookup(k, v) for k, v in reference.identifiers)
        who = b"".join(digests) or (reference.subject_id.bytes if reference.subject_id else b"")
    canonical = json.dumps([details.public, details.private], sort_keys=True, separators=(",", ":")).encode()
    return vault.fingerprint([kind.encode(), who, canonical])


# ---------------------------------------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------------------------------------
def _language(language: str) -> str:
    """One of settings.LANGUAGES ("de-AT" is "de"), or "" (the mail then speaks settings.LANGUAGE_CODE)."""
    code = language.strip().lower().split("-")[0]
    return code if code in dict(settings.LANGUAGES) else ""


def _check_client(kind: str, details: Details, actor: Actor) -> None:
    """A client created with --purpose acts only for those purposes: it may object to one of them, nothing else."""
    if not actor.client_purposes:
        return
    purpose = details.public.get("purpose")
    if kind != Kind.OBJECTION or purpose not in actor.client_purposes:
        raise RequestForbiddenError("this API client may act only for its purposes (an objection to one of them)")


def request_open(
    *,
    kind: str,
    reference: Reference,
    channel: str,
    verified: bool,
    details: Details,
    actor: Actor,
    now: datetime | None = None,
    language: str = "",
) -> RightsRequest:
    """Open a request. 409 with the existing id when an identical one is open. Never creates a subject.
    `language`: the one the person used (the portal's, the API's Accept-Language); their mails speak it."""
    if kind not in Kind.values:
        raise RequestKindError(f"'{kind}' is not one of {', '.join(Kind.values)}", field="kind")
    _check_client(kind, details, actor)
    now = now or timezone.now()
    subject_id = subject_resolve(reference=reference)  # 409 ambiguous_subject when it names several
    fingerprint = _fingerprint(kind, reference, subject_id, details)
    try:
        return _open(kind, subject_id, fingerprint, channel, verified, details, actor, now, _language(language))
    except IntegrityError:
        # Only the partial unique index on open fingerprints can fail here: a racing twin won.
        existing = RightsRequest.objects.open().filter(fingerprint=fingerprint)
        raise RequestOpenError(
            "an identical request is open", id=str(existing.values_list("pk", flat=True).first())
        ) from None


@transaction.atomic(durable=True)
def _open(
    kind: str,
    subject_id: uuid.UUID | None,
    fingerprint: str,
    channel: str,
    verified: bool,
    details: Details,
    actor: Actor,
    now: datetime,
    language: str,
) -> RightsRequest:
    advisory_lock(f"rights-request:{fingerprint}")
    corrected: dict[str, str] = (details.private or {}).get("identifiers", {}) if subject_id else {}
    index = blind_index()
    digests = {name: index.lookup(name, value) for name, value in corrected.items()}
    lock_identifiers(digests.values())  # before the subject's lock, as every writer of identifiers
    # Resolved before this transaction: a merge may have absorbed the subject since (its chain is closed, the
    # survivor takes the request), or an erasure erased it (nothing of theirs is left: the request runs over
    # nothing, as for a person nobody knows). Before, an objection then wrote onto the closed or erased chain.
    subject = lock_survivor(subject_id) if subject_id else None
    if subject is not None and subject.erased_at is not None:
        subject = None
    for name, digest in sorted(digests.items()):
        # The client vouches for the person, not for a value that is someone else's: 409, whose is not said. The
        # part checks again when it applies the correction, under the same locks.
        if subject is not None and identifier_held_elsewhere(subject_id=subject.id, digest=digest):
            raise RectificationConflictError(
                f"the corrected {name} belongs to another subject", field=f"details.identifiers.{name}"
            )
    existing = RightsRequest.objects.open().filter(fingerprint=fingerprint).values_list("pk", flat=True).first()
    if existing is not None:
        raise RequestOpenError("an identical request is open", id=str(existing))
    request = RightsRequest(
        kind=kind,
        subject=subject,
        fingerprint=fingerprint,
        channel=channel,
        details=details.public,
        opened_by=actor.label,
        opened_by_client=actor.client_id,
        received_at=now,
        due_at=calendar.due_at(now),
        language=language,
    )
    if details.private is not None and subject is not None:
        request.details_enc = encrypt_field(
            subject, data_key(subject), REQUEST_DETAILS, json.dumps(details.private, sort_keys=True), row_id=request.pk
        )
    request.save(force_insert=True)
    history_add(request, "received", actor.label, now, note=f"channel {channel}")
    if kind == Kind.OBJECTION:
        # Art. 21: the objection is in force before this returns, for the very next check; the workflow then
        # confirms it (idempotently) and completes the request.
        if subject is not None:
            ports.consent_rights.objection_record(
                subject_id=subject.id, purpose=details.public.get("purpose", ""), request_id=request.id, now=now
            )
        if verified:
            _mark_verified(request, actor, now)
        _start(request, actor.label, now)
    elif verified:
        _verify(request, actor, now)
    return request


def _mark_verified(request: RightsRequest, actor: Actor, now: datetime) -> None:
    request.verified_at, request.verified_by = now, actor.label
    RightsRequest.objects.filter(pk=request.pk).update(verified_at=now, verified_by=actor.label)


def _verify(request: RightsRequest, actor: Actor, now: datetime) -> None:
    """Art. 12(6): the caller states it checked the identity; it is recorded as the verifier."""
    status_set(request, Status.VERIFIED, by=actor.label, at=now, verified_at=now, verified_by=actor.label)
    if request.kind == Kind.ERASURE:
        status_set(request, Status.AWAITING_APPROVAL, by="system", at=now, note=texts.NOTE_WAITS_FOR_APPROVAL)
    else:
        _start(request, "system", now)


def _start(request: RightsRequest, by: str, now: datetime) -> None:
    catalogue = ports.consent_rights.catalogue()
    sources: list[str] = list(catalogue.sources)
    if request.subject_id is not None:
        sources += (
            LinkedRecord.objects.filter(subject_id=request.subject_id).values_list("source", flat=True).distinct()
        )
    # Connected systems are asked what they hold by the identifiers as they are now (an erasure's parts delete
    # them): their requests are taken here, sealed.
    connectors, outcomes = connector_requests(
        request=request, subject_ids=subject_group(request.subject_id), catalogue=catalogue
    )
    status_set(request, Status.PROCESSING, by=by, at=now)
    parts_create(request, parts_plan(kind=request.kind, sources=sources, connectors=connectors), now, outcomes)


def _locked(request_id: uuid.UUID) -> RightsRequest:
    """Lock order: the subject first, then its request."""
    subject_id = RightsRequest.objects.filter(pk=request_id).values_list("subject_id", flat=True).first()
    if subject_id is None and not RightsRequest.objects.filter(pk=request_id).exists():
        raise RequestNotFoundError("no rights request with this id")
    if subject_id is not None:
        lock_subject(subject_id)
    return RightsRequest.objects.select_for_update().get(pk=request_id)


@transaction.atomic(durable=True)
def request_verify(*, request_id: uuid.UUID, actor: Actor) -> RightsRequest:
    request = _locked(request_id)
    if request.status != Status.RECEIVED:
        raise RequestStateError(f"the request is {request.status}, not received")
    _verify(request, actor, timezone.now())
    return request


@transaction.atomic(durable=True)
def request_approve(*, request_id: uuid.UUID, actor: Actor) -> RightsRequest:
    """Approve an erasure (the DPO, in admin or through the API). From now on the policy denies every use."""
    request = _locked(request_id)
    if request.status != Status.AWAITING_APPROVAL:
        raise RequestStateError(f"the request is {request.status}, not awaiting_approval")
    now = timezone.now()
    request.approved_at, request.approved_by = now, actor.label
    RightsRequest.objects.filter(pk=request.pk).update(approved_at=now, approved_by=actor.label)
    if request.subject_id is not None:
        Subject.objects.filter(pk=request.subject_id, erasure_started_at__isnull=True).update(erasure_started_at=now)
    history_add(request, "approved", actor.label, now)
    _start(request, actor.label, now)
    return request


@transaction.atomic(durable=True)
def request_reject(*, request_id: uuid.UUID, reason: str, actor: Actor) -> RightsRequest:
    """Art. 12(4)/(5): refuse with a reason; the answer names the right to complain. The person is told."""
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("a rejection needs a reason (Art. 12(4))", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"longer than {MAX_REASON} characters", field="reason")
    request = _locked(request_id)
    if request.status not in (Status.RECEIVED, Status.VERIFIED, Status.AWAITING_APPROVAL):
        raise RequestStateError(f"a {request.status} request cannot be rejected")
    now = timezone.now()
    result = {"message": texts.REJECTED, "reason": reason, "right_to_complain": COMPLAINT}
    status_set(
        request, Status.REJECTED, by=actor.label, at=now, rejection_reason=reason, completed_at=now, result=result
    )
    _tell(request, "rejection")
    return request


@transaction.atomic(durable=True)
def request_extend(
    *, request_id: uuid.UUID, months: int, reason: str, actor: Actor, now: datetime | None = None
) -> RightsRequest:
    """Art. 12(3): extend by up to two further months, with a reason, decided before the due date; the person
    is told (by mail, after commit)."""
    now = now or timezone.now()
    reason = reason.strip()
    if months not in range(1, calendar.MAX_EXTENSION_MONTHS + 1):
        raise InvalidInputError(f"an extension is 1 to {calendar.MAX_EXTENSION_MONTHS} months", field="months")
    if not reason:
        raise InvalidInputError("an extension needs a reason (Art. 12(3))", field="reason")
    if len(reason) > MAX_REASON:
        raise InvalidInputError(f"longer than {MAX_REASON} characters", field="reason")
    request = _locked(request_id)
    if request.status not in RightsRequest.OPEN_STATUSES:
        raise RequestStateError(f"a {request.status} request cannot be extended")
    if request.extended_until is not None:
        raise RequestStateError("the request was extended already")
    if now > request.due_at:
        raise RequestStateError("an extension must be decided before the due date")
    until = calendar.due_at(request.received_at, months=1 + months)
    request.extended_until, request.extension_reason = until, reason
    RightsRequest.objects.filter(pk=request.pk).update(extended_until=until, extension_reason=reason)
    history_add(request, "extended", actor.label, now, note=f"by {months} month(s) to {until.date().isoformat()}")
    _tell(request, "extension")
    return request


@transaction.atomic(durable=True)
def request_lift(*, request_id: uuid.UUID, actor: Actor) -> RightsRequest:
    """End a restriction. Art. 18(3): the person is told before it is lifted, so this only asks; the task mails
    the person and then lifts."""
    request = _locked(request_id)
    if request.kind != Kind.RESTRICTION or request.status != Status.COMPLETED:
        raise RequestStateError("only a completed restriction can be lifted")
    if request.lifted_at is not None or request.lift_requested_at is not None:
        raise RequestStateError("this restriction is lifted already, or being lifted")
    now = timezone.now()
    request.lift_requested_at = now
    RightsRequest.objects.filter(pk=request.pk).update(lift_requested_at=now)
    history_add(request, "lift_requested", actor.label, now, note=texts.NOTE_LIFT_REQUESTED)
    enqueue_on_commit(LIFT_RESTRICTION, str(request.pk))
    return request


@transaction.atomic(durable=True)
def request_retry(*, request_id: uuid.UUID, actor: Actor) -> RightsRequest:
    """Run a failed request's failed parts again (the DPO, after fixing the cause)."""
    request = _locked(request_id)
    if request.status != Status.FAILED:
        raise RequestStateError(f"the request is {request.status}, not failed")
    now = timezone.now()
    parts = RightsRequestPart.objects.filter(
        request=request, status__in=(RightsRequestPart.Status.FAILED, RightsRequestPart.Status.SKIPPED)
    )
    ids = list(parts.values_list("pk", flat=True))
    parts.update(status=RightsRequestPart.Status.PENDING, error="", finished_at=None, enqueued_at=now)
    result = {k: v for k, v in request.result.items() if k != "errors"}
    status_set(
        request, Status.PROCESSING, by=actor.label, at=now, note=texts.NOTE_RETRY, completed_at=None, result=result
    )
    parts_enqueue(ids)
    return request


def _tell(request: RightsRequest, what: str) -> None:
    enqueue_on_commit(TELL_PERSON, str(request.pk), what)
