"""Telling the person (Art. 12(3) extension, Art. 12(4) rejection): mail to their e-mail identifiers, decrypted
in the task, never carried through the broker. A person nobody knows has no address: nothing is sent."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone

from subjects.keys import data_key
from subjects.models import Identifier, RightsRequest, RightsRequestEvent, Subject
from subjects.rights import texts
from subjects.rights.context import history_add
from subjects.selectors import subject_identifiers

TEMPLATES = {"extension": "subjects/mail/extension", "rejection": "subjects/mail/rejection"}
# The history event that decides a notice, by notice: the safety net finds decisions whose notice was never sent.
DECIDED_BY = {"extension": "extended", "rejection": "rejected"}


def request_tell(*, request_id: uuid.UUID, what: str) -> bool:
    if what not in TEMPLATES:
        raise ValueError(f"unknown notice {what!r}")
    request = RightsRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.subject is None or request.subject.wrapped_key is None:
        return False
    if _told(request_id, what):
        return False  # the safety net queued it again while the first message still waited: once is enough
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


def _told(request_id: uuid.UUID, what: str) -> bool:
    return RightsRequestEvent.objects.filter(request_id=request_id, event="person_told", note=what).exists()


def tells_stalled(
    *, older_than: timedelta = timedelta(minutes=2), within: timedelta = timedelta(days=30)
) -> list[tuple[uuid.UUID, str]]:
    """Notices decided that long ago (and within `within`) and never sent: their message was lost (a broker
    restarted without persistence) or their retries ran out. Only those `request_tell` can send: a person with a
    data key and an e-mail identifier."""
    now = timezone.now()
    found: list[tuple[uuid.UUID, str]] = []
    for what, event in DECIDED_BY.items():
        told = RightsRequestEvent.objects.filter(request_id=OuterRef("request_id"), event="person_told", note=what)
        reachable = Identifier.objects.filter(subject_id=OuterRef("request__subject_id"), kind="email")
        found += [
            (request_id, what)
            for request_id in RightsRequestEvent.objects.filter(
                event=event,
                at__lt=now - older_than,
                at__gte=now - within,
                request__subject__wrapped_key__isnull=False,
            )
            .filter(~Exists(told), Exists(reachable))
            .order_by("at")
            .values_list("request_id", flat=True)[:500]
        ]
    return found
