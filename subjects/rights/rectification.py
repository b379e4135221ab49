"""Rectification (Art. 16): identifiers (all of a kind by the corrected value) and profile attributes (a null value
removes one) are replaced everywhere they are linked; the evidence stays with the request, encrypted. A corrected
person-bound identifier that belongs to someone else fails the part: rectification never merges two people."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from subjects import ports
from subjects.keys import blind_index, data_key
from subjects.models import RightsRequest, Subject
from subjects.profile import profile_read, profile_write
from subjects.rights import art19, texts
from subjects.rights.context import PROFILE, PartContext, part_outcomes, request_complete
from subjects.rights.details import request_details_private
from subjects.rights.errors import RectificationConflictError
from subjects.selectors import identifier_held_elsewhere
from subjects.services import identifier_replace


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
            # Art. 19: the kinds and fields that changed, never their values.
            outcome[art19.KEY] = art19.art19_tell(
                type="subject.rectified",
                subject_ids=context.subject_ids,
                data={
                    "subject": str(subject.id),
                    "changed": {"identifiers": outcome["identifiers"], "profile": outcome["profile"]},
                },
            )
        context.mark_done()


def _identifiers_replace(subject: Subject, key: bytes, corrected: dict[str, str], now: datetime) -> list[str]:
    """Rectification never takes another person's identifier, of any kind: a shared kind taken over would make the
    value name two people (it then resolves to nobody) and sends to it reach the wrong person."""
    index = blind_index()
    for kind, value in sorted(corrected.items()):
        if identifier_held_elsewhere(subject_id=subject.id, digest=index.lookup(kind, value)):
            raise RectificationConflictError(f"the corrected {kind} belongs to another subject")
    for kind, value in sorted(corrected.items()):
        identifier_replace(subject=subject, key=key, kind=kind, value=value, now=now)
    return sorted(corrected)


def _profile_correct(subject: Subject, key: bytes, corrected: dict[str, Any], now: datetime) -> list[str]:
    if not corrected:
        return []
    profile = profile_read(subject, key)
    for name, value in corrected.items():
        if value is None:
            profile.pop(name, None)
        else:
            profile[name] = value
    profile_write(subject, key, profile, now=now)
    return sorted(corrected)


def rectification_finish(context: PartContext) -> None:
    found = context.subject_id is not None
    done = part_outcomes(context.request.id).get(PROFILE, {})
    result: dict[str, Any] = {
        "data_found": found,
        "message": texts.RECTIFICATION_DONE if found else texts.NO_DATA_FOUND,
        "rectified": {"identifiers": done.get("identifiers", []), "profile": done.get("profile", [])},
        "recipients": ports.consent_rights.recipients(subject_ids=context.subject_ids) if found else [],
        art19.KEY: art19.art19_join(done.get(art19.KEY)),
    }
    with context.step():
        request_complete(context, result)
