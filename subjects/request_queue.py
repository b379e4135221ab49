"""Queue work on rights requests by the staff: who handles a request, the team's internal notes, and the masked
label by which the queue names a person. None of it reaches the person, the portal or the API."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from subjects.columns import IDENTIFIER_VALUE
from subjects.crypto import DecryptionError
from subjects.keys import data_key, decrypt_field
from subjects.models import Identifier, RequestNote, RightsRequest, Subject

NOTE_MAX = 4000  # characters: a note is a working remark, not a file


class RequestNotFoundError(DomainError):
    code = "request_not_found"
    status = 404
    title = "No such rights request."


class AssigneeInvalidError(DomainError):
    code = "assignee_invalid"
    status = 400
    title = "Requests are assigned to active staff members only."


class NoteInvalidError(DomainError):
    code = "note_invalid"
    status = 400
    title = f"A note needs some text, at most {NOTE_MAX} characters."


def staff_assignable() -> list[AbstractBaseUser]:
    """The staff members a request can be assigned to, by username."""
    users = get_user_model().objects.filter(is_staff=True, is_active=True)
    return list(users.order_by(get_user_model().USERNAME_FIELD))


@transaction.atomic(durable=True)
def request_assign(*, request_id: uuid.UUID, assignee_id: int | None) -> RightsRequest:
    """Give the request to a staff member (None: to nobody). The row is locked, so two staff assigning at once
    end with the later one's choice and both see it on reload."""
    request = RightsRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise RequestNotFoundError()
    if assignee_id is not None:
        users = get_user_model().objects.filter(pk=assignee_id, is_staff=True, is_active=True)
        if not users.exists():
            raise AssigneeInvalidError()
    RightsRequest.objects.filter(pk=request.pk).update(assigned_to_id=assignee_id)
    request.assigned_to_id = assignee_id
    return request


@transaction.atomic(durable=True)
def request_note_add(*, request_id: uuid.UUID, author: AbstractBaseUser, text: str) -> RequestNote:
    """An internal note on the request, by a staff member; staff only."""
    text = text.strip()
    if not text or len(text) > NOTE_MAX:
        raise NoteInvalidError()
    if not RightsRequest.objects.filter(pk=request_id).exists():
        raise RequestNotFoundError()
    return RequestNote.objects.create(
        request_id=request_id,
        author_id=author.pk,
        author_name=author.get_username(),
        text=text,
        created_at=timezone.now(),
    )


def request_notes(*, request_id: uuid.UUID) -> list[RequestNote]:
    return list(RequestNote.objects.filter(request_id=request_id).order_by("created_at", "pk"))


def email_masked(address: str) -> str:
    """An address shown so that staff can tell people apart without reading it: `a•••@example.org`."""
    local, at, domain = address.partition("@")
    if not at:
        return "•••"
    return f"{local[:1]}•••@{domain}"


def subjects_masked(*, subject_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """A masked e-mail address per subject (its first one), in two queries whatever the number of subjects. A
    subject without an e-mail address, or whose key was destroyed (erased), is left out."""
    wanted = set(subject_ids)
    if not wanted:
        return {}
    subjects = {s.pk: s for s in Subject.objects.filter(pk__in=wanted, wrapped_key__isnull=False)}
    rows = (
        Identifier.objects.filter(subject_id__in=list(subjects), kind=Identifier.Kind.EMAIL)
        .order_by("subject_id", "created_at", "pk")
        .values_list("subject_id", "pk", "value_enc")
    )
    masked: dict[uuid.UUID, str] = {}
    for subject_id, pk, blob in rows:
        if subject_id in masked:
            continue
        subject = subjects[subject_id]
        try:
            address = decrypt_field(subject, data_key(subject), IDENTIFIER_VALUE, bytes(blob), row_id=pk)
        except DecryptionError:
            continue
        masked[subject_id] = email_masked(address)
    return masked
