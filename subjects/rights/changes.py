"""Rectification (Art. 16), restriction (Art. 18) and objection (Art. 21): the parts and their finish.

- Rectification replaces identifiers (all of a kind by the corrected value) and profile attributes (a null value
  removes one) everywhere they are linked; the evidence stays with the request, encrypted. A corrected
  person-bound identifier that belongs to someone else fails the part: rectification never merges two people.
- Restriction sets Subject.restricted_at; the policy then denies every use but storage. Lifting tells the person
  first (Art. 18(3)): see lift_restriction_run.
- Objection: `{"scope": "direct_marketing"}` is absolute for every marketing purpose on every channel (Art. 21(3));
  `{"purpose": KEY}` one purpose. It is recorded in the consent ledger through the port, already when the
  request is opened; the part confirms it idempotently."""

from __future__ import annotations

import json
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from subjects import ports
from subjects.keys import blind_index, data_key, encrypt_field
from subjects.locks import lock_subject
from subjects.models import RightsRequest, Subject
from subjects.records import PROFILE, _is_child, profile_read
from subjects.rights import texts
from subjects.rights.errors import NoEmailError, RectificationConflictError
from subjects.rights.requests import request_details_private
from subjects.rights.workflow import CONSENT, PartContext, history_add, part_outcomes, request_complete
from subjects.rights.workflow import PROFILE as PROFILE_PART
from subjects.selectors import identifier_held_elsewhere, subject_identifiers
from subjects.services import identifier_replace

Kind = RightsRequest.Kind


# ---------------------------------------------------------------------------------------------------------
# Rectification
# ---------------------------------------------------------------------------------------------------------
def rectification_profile(context: PartContext) -> None:
    request = RightsRequest.objects.select_related("subject").get(pk=context.request.pk)
    corrected: dict[str, str] = request_details_private(request).get("identifiers", {}) if context.subject_id else {}
    index = blind_index()
    # The identifiers' locks before the subject's: two rectifications (or a record) attaching one value queue here,
    # and the second sees the first's identifier.
    with context.step(identifiers=[index.lookup(k, v) for k, v in corrected.items()]) as outcome:
        if context.subject_id is not None:
            subject = Subject.objects.get(pk=context.subject_id)
            details = request_details_private(request)
            key = data_key(subject)
            now = timezone.now()
            outcome["identifiers"] = _identifiers_replace(subject, key, corrected, now)
            outcome["profile"] = _profile_correct(subject, key, details.get("profile", {}), now)
        context.mark_done()


def _identifiers_replace(subject: Subject, key: bytes, corrected: dict[str, str], now: Any) -> list[str]:
    """Rectification never takes another person's identifier, of any kind: a shared kind taken over would make the
    value name two people (it then resolves to nobody) and sends to it reach the wrong person."""
    index = blind_index()
    for kind, value in sorted(corrected.items()):
        if identifier_held_elsewhere(subject_id=subject.id, digest=index.lookup(kind, value)):
            raise RectificationConflictError(f"the corrected {kind} belongs to another subject")
    for kind, value in sorted(corrected.items()):
        identifier_replace(subject=subject, key=key, kind=kind, value=value, now=now)
    return sorted(corrected)


def _profile_correct(subject: Subject, key: bytes, corrected: dict[str, Any], now: Any) -> list[str]:
    if not corrected:
        return []
    profile = profile_read(subject, key)
    for name, value in corrected.items():
        if value is None:
            profile.pop(name, None)
        else:
            profile[name] = value
    Subject.objects.filter(pk=subject.pk).update(
        profile_enc=encrypt_field(subject, key, PROFILE, json.dumps(profile, sort_keys=True), row_id=subject.pk),
        is_child=_is_child(profile.get("birth_date"), now.date()),
    )
    return sorted(corrected)


# ---------------------------------------------------------------------------------------------------------
# Restriction
# ---------------------------------------------------------------------------------------------------------
def restriction_profile(context: PartContext) -> None:
    with context.step() as outcome:
        if context.subject_id is not None:
            now = timezone.now()
            Subject.objects.filter(pk=context.subject_id, restricted_at__isnull=True).update(restricted_at=now)
            outcome["restricted"] = True
        context.mark_done()


def lift_restriction_run(*, request_id: Any) -> str:
    """Art. 18(3): tell the person, then lift. Mail first, outside any transaction; the lift commits after it.
    Returns what happened ("lifted", "no_email", "nothing")."""
    request = RightsRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.lifted_at is not None or request.lift_requested_at is None:
        return "nothing"
    if request.subject is not None and request.subject.wrapped_key is not None:
        emails = subject_emails(request.subject)
        if not emails:
            _lift_blocked(request.pk)
            return "no_email"
        context = {"request": request, "received_at": request.received_at}
        send_mail(
            subject=render_to_string("subjects/mail/lift_subject.txt", context).strip(),
            message=render_to_string("subjects/mail/lift.txt", context),
            from_email=None,
            recipient_list=emails,
        )
    _lift(request.pk)
    return "lifted"


@transaction.atomic(durable=True)
def _lift(request_id: Any) -> None:
    subject_id = RightsRequest.objects.filter(pk=request_id).values_list("subject_id", flat=True).first()
    if subject_id is not None:
        lock_subject(subject_id)
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    if request.lifted_at is not None:
        return
    now = timezone.now()
    RightsRequest.objects.filter(pk=request.pk).update(lifted_at=now)
    history_add(request, "person_told", "system", now, note="lifting of the restriction (Art. 18(3))")
    if subject_id is not None:
        still = (
            RightsRequest.objects.filter(
                subject_id=subject_id,
                kind=Kind.RESTRICTION,
                status=RightsRequest.Status.COMPLETED,
                lifted_at__isnull=True,
            )
            .exclude(pk=request.pk)
            .exists()
        )
        if not still:
            Subject.objects.filter(pk=subject_id).update(restricted_at=None)
    history_add(request, "lifted", "system", now)


@transaction.atomic(durable=True)
def _lift_blocked(request_id: Any) -> None:
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    now = timezone.now()
    RightsRequest.objects.filter(pk=request.pk).update(lift_requested_at=None)
    history_add(
        request,
        "lift_blocked",
        "system",
        now,
        note=NoEmailError.title + ": tell the person another way, then lift again",
    )


def subject_emails(subject: Subject) -> list[str]:
    """The person's e-mail addresses, decrypted here (in the task), never carried through the broker."""
    return [value for _kind, value in subject_identifiers(subject=subject, key=data_key(subject), kinds=["email"])]


# ---------------------------------------------------------------------------------------------------------
# Objection
# ---------------------------------------------------------------------------------------------------------
def objection_consent(context: PartContext) -> None:
    with context.step() as outcome:
        if context.subject_id is not None:
            purpose = context.request.details.get("purpose", "")
            recorded = ports.consent_rights.objection_record(
                subject_id=context.subject_id, purpose=purpose, request_id=context.request.id, now=timezone.now()
            )
            outcome["in_force"] = True
            outcome["recorded_by_part"] = recorded
        context.mark_done()


# ---------------------------------------------------------------------------------------------------------
# Finish of the three
# ---------------------------------------------------------------------------------------------------------
def changes_finish(context: PartContext) -> None:
    request = context.request
    outcomes = part_outcomes(request.id)
    found = context.subject_id is not None
    result: dict[str, Any] = {"data_found": found}
    if request.kind == Kind.RECTIFICATION:
        done = outcomes.get(PROFILE_PART, {})
        result.update(
            message=texts.RECTIFICATION_DONE,
            rectified={"identifiers": done.get("identifiers", []), "profile": done.get("profile", [])},
            recipients=ports.consent_rights.recipients(subject_ids=context.subject_ids) if found else [],
        )
    elif request.kind == Kind.RESTRICTION:
        result.update(message=texts.RESTRICTION_DONE, ground=request.details.get("ground"), restricted=found)
    else:
        result.update(
            message=texts.OBJECTION_DONE,
            objection=request.details,
            in_force=bool(outcomes.get(CONSENT, {}).get("in_force")),
        )
    if not found:
        result["message"] = texts.NO_DATA_FOUND
    with context.step():
        request_complete(context, result)
