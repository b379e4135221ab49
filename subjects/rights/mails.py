"""Telling the person (Art. 12(3) extension, Art. 12(4) rejection): mail to their e-mail identifiers, decrypted
in the task, never carried through the broker. A person nobody knows has no address: nothing is sent."""

from __future__ import annotations

import uuid

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from subjects.keys import data_key
from subjects.models import RightsRequest, Subject
from subjects.rights import texts
from subjects.rights.context import history_add
from subjects.selectors import subject_identifiers

TEMPLATES = {"extension": "subjects/mail/extension", "rejection": "subjects/mail/rejection"}


def request_tell(*, request_id: uuid.UUID, what: str) -> bool:
    if what not in TEMPLATES:
        raise ValueError(f"unknown notice {what!r}")
    request = RightsRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.subject is None or request.subject.wrapped_key is None:
        return False
    emails = subject_emails(request.subject)
    if not emails:
        return False
    context = {"request": request, "complaint_de": texts.COMPLAINT_TEXT["de"], "complaint_en": texts.COMPLAINT}
    send_mail(
        subject=render_to_string(TEMPLATES[what] + "_subject.txt", context).strip(),
        message=render_to_string(TEMPLATES[what] + ".txt", context),
        from_email=None,
        recipient_list=emails,
    )
    with transaction.atomic(durable=True):
        history_add(request, "person_told", "system", timezone.now(), note=what)
    return True


def subject_emails(subject: Subject) -> list[str]:
    """The person's e-mail addresses, decrypted here (in the task), never carried through the broker."""
    return [value for _kind, value in subject_identifiers(subject=subject, key=data_key(subject), kinds=["email"])]
