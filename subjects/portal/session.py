"""The signed-in person, as the session remembers them.

The session (database-backed, so signing out really ends it) holds no personal data in plain text: the subject's
id when one exists, and the address the person proved to control, sealed (signin.email_seal). The address is
needed after sign-in for two things only: a double opt-in grant is confirmed by mail to exactly that address, and
a person nobody knew yet becomes a subject under it on their first save. Every request re-reads who the person
is: a merge is followed to the survivor, an erased subject is forgotten, and a subject created meanwhile (a save
in another tab) is found through the blind index.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from subjects.errors import AmbiguousSubjectError, SubjectNotFoundError
from subjects.identity import Reference
from subjects.keys import data_key
from subjects.models import IdentifierChange, Subject
from subjects.portal.signin import email_open, email_seal
from subjects.selectors import identifier_owners, subject_get_survivor, subject_identifiers, subject_resolve

SESSION_KEY = "assent.portal"
ERASED_KEY = "assent.portal.erased"  # the erased subject's id, until the page after the erasure is shown
MAX_AGE = timedelta(hours=12)  # a sign-in lasts at most this long, however active the person is


@dataclass(frozen=True, slots=True)
class Person:
    email: str
    subject_id: uuid.UUID | None  # None: nobody knows this address yet (created on the first save)
    signed_in_at: datetime
    ambiguous: bool = False  # the address names several subjects: shown nothing, changes nothing
    restricted: bool = False
    erasure_in_progress: bool = False


def _idle_seconds() -> int:
    return settings.ASSENT_PORTAL_SESSION_MINUTES * 60


def _resolve(email: str) -> tuple[uuid.UUID | None, bool]:
    try:
        return subject_resolve(reference=Reference(None, (("email", email),))), False
    except AmbiguousSubjectError:
        return None, True


def person_sign_in(request: HttpRequest, *, email: str) -> None:
    """Start the portal session: a new session key (no fixation), the subject if the address is known."""
    subject_id, _ = _resolve(email)
    request.session.cycle_key()
    request.session[SESSION_KEY] = {
        "v": 1,
        "email": email_seal(email),
        "subject": str(subject_id) if subject_id else None,
        "at": timezone.now().isoformat(),
    }
    request.session.set_expiry(_idle_seconds())


def person_sign_out(request: HttpRequest) -> None:
    """End the portal session: its data goes and the old session key is deleted from the store, so a copy of the
    old cookie is worth nothing. A staff member's admin session in the same browser stays signed in."""
    request.session.pop(SESSION_KEY, None)
    request.session.cycle_key()


def person_of(request: HttpRequest) -> Person | None:
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict) or data.get("v") != 1:
        return None
    email = email_open(data.get("email"))
    try:
        signed_in_at = datetime.fromisoformat(str(data.get("at")))
    except ValueError:
        email = None
    if email is None or timezone.now() - signed_in_at > MAX_AGE:
        request.session.pop(SESSION_KEY, None)
        return None
    if _erased(data.get("subject")):
        # The person's erasure completed: the session ends with it (nothing of theirs is left to show), and the
        # next page says what happened (`erasure_ended`). Only the subject's id is remembered for that page.
        person_sign_out(request)
        request.session[ERASED_KEY] = str(data.get("subject"))
        return None
    ambiguous = False
    subject = _live(data.get("subject"))
    if subject is not None and subject.id not in identifier_owners(identifiers=[("email", email)])[0]:
        if _changed_own_email_since(subject, signed_in_at):
            # The person confirmed a new address of their own (perhaps in another browser): the session follows,
            # so a double opt-in goes to an address that is the person's.
            email = _first_email(subject) or email
            data = {**data, "email": email_seal(email)}
            request.session[SESSION_KEY] = data
        else:
            # The address left that subject since sign-in (rectified by a client, split off): its ledger is no
            # longer this person's to change; who they are now is what the address resolves to.
            subject = None
    if subject is None:
        found, ambiguous = _resolve(email)
        subject = _live(found)
    subject_id = subject.id if subject is not None else None
    if data.get("subject") != (str(subject_id) if subject_id else None):
        _remember(request, data, subject_id)
    request.session.set_expiry(_idle_seconds())  # idle time counts from the last request
    return Person(
        email,
        subject_id,
        signed_in_at,
        ambiguous=ambiguous,
        restricted=subject is not None and subject.restricted_at is not None,
        erasure_in_progress=subject is not None and subject.erasure_started_at is not None,
    )


def _erased(value: object) -> bool:
    if not value:
        return False
    try:
        subject = subject_get_survivor(subject_id=uuid.UUID(str(value)))
    except (SubjectNotFoundError, ValueError):
        return False
    return subject.erased_at is not None


def erasure_ended(request: HttpRequest) -> uuid.UUID | None:
    """Once: the subject whose erasure ended this browser's portal session (for the page that says so)."""
    value = request.session.pop(ERASED_KEY, None)
    try:
        return subject_get_survivor(subject_id=uuid.UUID(str(value))).id if value else None
    except (SubjectNotFoundError, ValueError):
        return None


def _changed_own_email_since(subject: Subject, signed_in_at: datetime) -> bool:
    """Whether the person confirmed a new e-mail address of their own (link mailed to it) after this sign-in."""
    return IdentifierChange.objects.filter(
        subject=subject, kind="email", status=IdentifierChange.Status.CONFIRMED, settled_at__gte=signed_in_at
    ).exists()


def _first_email(subject: Subject) -> str | None:
    emails = subject_identifiers(subject=subject, key=data_key(subject), kinds=["email"])
    return emails[0][1] if emails else None


def _live(value: object) -> Subject | None:
    """The surviving subject an id names, unless it is gone or erased (its key destroyed)."""
    if not value:
        return None
    try:
        subject = subject_get_survivor(subject_id=uuid.UUID(str(value)))
    except (SubjectNotFoundError, ValueError):
        return None
    if subject.wrapped_key is None or subject.erased_at is not None or subject.status == Subject.Status.ERASED:
        return None
    return subject


def person_remember_subject(request: HttpRequest, subject_id: uuid.UUID) -> None:
    """After a first save created the person's subject."""
    data = request.session.get(SESSION_KEY)
    if isinstance(data, dict):
        _remember(request, data, subject_id)


def _remember(request: HttpRequest, data: dict[str, object], subject_id: uuid.UUID | None) -> None:
    request.session[SESSION_KEY] = {**data, "subject": str(subject_id) if subject_id else None}


def portal_subject_id(request: HttpRequest) -> uuid.UUID | None:
    """The subject of the portal session on this request, if any: for the export link, which API.md lets the same
    person's portal session open without a Bearer key."""
    person = person_of(request)
    return person.subject_id if person else None
