"""A new e-mail address or phone number, entered in the portal, takes effect only once its owner confirms it.

- Asking: the value must be nobody else's (else `AddressRefusedError`, whose it is never said); a pending change of
  the same kind is superseded; a link (e-mail) or a six-digit code (SMS) is sent after the commit. Every attempt,
  refused ones too, counts against ASSENT_ADDRESS_CHANGES_PER_HOUR, so the form cannot be used to probe addresses.
- Confirming: under the identifier's lock and then the subject's (the order every writer of identifiers keeps), the
  value is checked again (it may have been taken meanwhile), then it replaces the subject's identifiers of its kind.
  A wrong code counts; after ASSENT_PHONE_CODE_ATTEMPTS the change is void. A rectification request, verified and
  already applied, then records the change (Art. 16) and tells the recipients (Art. 19).
- Stored: the value encrypted under the subject's data key, and a keyed hash of the token or code; both are wiped
  when the change settles."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from config.errors import ConflictError, DomainError, UnavailableError
from subjects import ports
from subjects.columns import IDENTIFIER_CHANGE_VALUE
from subjects.identity import Reference
from subjects.keys import blind_index, data_key, decrypt_field, encrypt_field
from subjects.locks import lock_identifiers, lock_subject
from subjects.models import IdentifierChange, Subject
from subjects.portal.services import SOURCE, VERIFIER
from subjects.rights.details import details_parse
from subjects.rights.errors import RequestOpenError
from subjects.rights.requests import request_open
from subjects.selectors import identifier_held_elsewhere
from subjects.services import identifier_replace
from subjects.sms import SmsError, sms_send

log = logging.getLogger(__name__)

EMAIL, PHONE = "email", "phone"
KINDS = (EMAIL, PHONE)
VALUE_COLUMN = IDENTIFIER_CHANGE_VALUE
Status = IdentifierChange.Status


class AddressRefusedError(ConflictError):
    code = "address_refused"
    title = "This address cannot be used"


class AddressRateLimitedError(DomainError):
    code = "address_rate_limited"
    status = 429
    title = "Too many address changes"


class AddressSendError(UnavailableError):
    code = "address_send_failed"
    title = "The confirmation could not be sent"


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    WRONG = "wrong"  # a wrong code or token; tries are left
    FAILED = "failed"  # too many wrong tries, or expired
    REFUSED = "refused"  # the value is someone else's by now
    GONE = "gone"  # unknown, superseded or settled already


@dataclass(frozen=True, slots=True)
class Confirmation:
    outcome: Outcome
    subject_id: uuid.UUID | None = None
    kind: str = ""
    value: str = ""  # the confirmed value, for the session of the person who confirmed
    tries_left: int = 0


def _hash(change_id: uuid.UUID, secret: str) -> str:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"assent/portal/address/v1").derive(
        settings.SECRET_KEY.encode()
    )
    return hmac.new(key, change_id.bytes + secret.encode(), "sha256").hexdigest()


def _minutes(kind: str) -> int:
    return int(settings.ASSENT_ADDRESS_LINK_MINUTES if kind == EMAIL else settings.ASSENT_PHONE_CODE_MINUTES)


def address_url(change_id: uuid.UUID, token: str) -> str:
    return f"{settings.ASSENT_BASE_URL}/portal/address/{change_id}/{token}"


# ---------------------------------------------------------------------------------------------------------
# Asking
# ---------------------------------------------------------------------------------------------------------
def address_change_request(*, subject_id: uuid.UUID, kind: str, value: str) -> uuid.UUID:
    """Start a change to a normalised value and send the link or code. AddressRefusedError, AddressRateLimitedError,
    AddressSendError."""
    if kind not in KINDS:
        raise ValueError(f"{kind} is not confirmed by the portal")
    secret = secrets.token_urlsafe(32) if kind == EMAIL else f"{secrets.randbelow(10**6):06d}"
    change_id = _start(subject_id, kind, value, secret)
    if change_id is None:
        raise AddressRefusedError("this address cannot be used")
    try:
        _send(kind, value, change_id, secret)
    except (OSError, SmsError) as exc:
        log.warning("address confirmation not sent: %s", type(exc).__name__)
        _settle(change_id, Status.FAILED)
        raise AddressSendError("the confirmation could not be sent; please try again later") from None
    return change_id


@transaction.atomic(durable=True)
def _start(subject_id: uuid.UUID, kind: str, value: str, secret: str) -> uuid.UUID | None:
    """The new change's id, or None when the value is someone else's (the refusal is recorded: it counts)."""
    digest = blind_index().lookup(kind, value)
    lock_identifiers([digest])
    subject = lock_subject(subject_id)
    now = timezone.now()
    recent = IdentifierChange.objects.filter(subject=subject, requested_at__gt=now - timedelta(hours=1)).count()
    if recent >= settings.ASSENT_ADDRESS_CHANGES_PER_HOUR:
        raise AddressRateLimitedError("too many address changes; please try again later")
    if identifier_held_elsewhere(subject_id=subject.id, digest=digest):
        IdentifierChange.objects.create(
            subject=subject, kind=kind, status=Status.REFUSED, requested_at=now, expires_at=now, settled_at=now
        )
        return None
    IdentifierChange.objects.filter(subject=subject, kind=kind, status=Status.PENDING).update(
        status=Status.SUPERSEDED, value_enc=None, secret_hash="", settled_at=now
    )
    change_id = uuid.uuid4()
    IdentifierChange.objects.create(
        id=change_id,
        subject=subject,
        kind=kind,
        blind_index=digest,
        value_enc=encrypt_field(subject, data_key(subject), VALUE_COLUMN, value, row_id=change_id),
        secret_hash=_hash(change_id, secret),
        requested_at=now,
        expires_at=now + timedelta(minutes=_minutes(kind)),
    )
    return change_id


def _send(kind: str, value: str, change_id: uuid.UUID, secret: str) -> None:
    minutes = _minutes(kind)
    if kind == PHONE:
        text = _("Your code for the privacy centre: %(code)s. It is valid for %(minutes)s minutes.") % {
            "code": secret,
            "minutes": minutes,
        }
        sms_send(to=value, text=text)
        return
    context = {"url": address_url(change_id, secret), "minutes": minutes}
    send_mail(
        subject=render_to_string("portal/mail/address_subject.txt", context).strip(),
        message=render_to_string("portal/mail/address.txt", context),
        from_email=None,
        recipient_list=[value],
    )


@transaction.atomic(durable=True)
def _settle(change_id: uuid.UUID, status: str) -> None:
    IdentifierChange.objects.filter(pk=change_id, status=Status.PENDING).update(
        status=status, value_enc=None, secret_hash="", settled_at=timezone.now()
    )


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pending:
    id: uuid.UUID
    kind: str
    value: str
    expires_at: datetime


def address_change_pending(*, subject_id: uuid.UUID, kind: str) -> Pending | None:
    """The subject's open change of a kind, decrypted for them."""
    now = timezone.now()
    change = IdentifierChange.objects.filter(
        subject_id=subject_id, kind=kind, status=Status.PENDING, expires_at__gt=now
    ).first()
    if change is None or change.value_enc is None:
        return None
    subject = Subject.objects.get(pk=subject_id)
    value = decrypt_field(subject, data_key(subject), VALUE_COLUMN, bytes(change.value_enc), row_id=change.pk)
    return Pending(change.pk, change.kind, value, change.expires_at)


def address_link_open(*, change_id: uuid.UUID, token: str) -> Pending | None:
    """What a link would confirm, if it is right and still open; reads only (a mail scanner's GET changes nothing)."""
    change = IdentifierChange.objects.filter(pk=change_id, kind=EMAIL, status=Status.PENDING).first()
    if change is None or change.expires_at <= timezone.now():
        return None
    if not hmac.compare_digest(change.secret_hash, _hash(change.pk, token)):
        return None
    return address_change_pending(subject_id=change.subject_id, kind=EMAIL)


# ---------------------------------------------------------------------------------------------------------
# Confirming
# ---------------------------------------------------------------------------------------------------------
def address_change_confirm(*, change_id: uuid.UUID, secret: str) -> Confirmation:
    """Confirm with the link's token or the SMS code. On success the value is the subject's, and a verified
    rectification request records it."""
    done = _confirm(change_id, secret)
    if done.outcome == Outcome.CONFIRMED and done.subject_id is not None:
        try:
            request_open(
                kind="rectification",
                reference=Reference(done.subject_id, ()),
                channel=SOURCE,
                verified=True,
                details=details_parse(
                    kind="rectification",
                    raw={"identifiers": {done.kind: done.value}, "evidence": {"confirmed_by": done.kind}},
                ),
                actor=VERIFIER,
            )
        except (RequestOpenError, ConflictError) as exc:
            # The change is in force already; the request only records it.
            log.warning("rectification record of a confirmed address change not opened: %s", exc.code)
    return done


@transaction.atomic(durable=True)
def _confirm(change_id: uuid.UUID, secret: str) -> Confirmation:
    row = IdentifierChange.objects.filter(pk=change_id).values_list("subject_id", "blind_index", "status").first()
    if row is None or row[2] != Status.PENDING or row[1] is None:
        return Confirmation(Outcome.GONE)
    subject_id, digest = row[0], bytes(row[1])
    lock_identifiers([digest])
    subject = lock_subject(subject_id)
    change = IdentifierChange.objects.select_for_update().get(pk=change_id)
    now = timezone.now()
    wipe = {"value_enc": None, "secret_hash": "", "settled_at": now}
    if change.status != Status.PENDING or change.value_enc is None:
        return Confirmation(Outcome.GONE)
    if subject.wrapped_key is None or subject.merged_into_id is not None:
        IdentifierChange.objects.filter(pk=change.pk).update(status=Status.SUPERSEDED, **wipe)
        return Confirmation(Outcome.GONE)
    if change.expires_at <= now:
        IdentifierChange.objects.filter(pk=change.pk).update(status=Status.FAILED, **wipe)
        return Confirmation(Outcome.FAILED)
    if not hmac.compare_digest(change.secret_hash, _hash(change.pk, secret.strip())):
        attempts = change.attempts + 1
        left = settings.ASSENT_PHONE_CODE_ATTEMPTS - attempts
        if left <= 0:
            IdentifierChange.objects.filter(pk=change.pk).update(attempts=attempts, status=Status.FAILED, **wipe)
            return Confirmation(Outcome.FAILED)
        IdentifierChange.objects.filter(pk=change.pk).update(attempts=attempts)
        return Confirmation(Outcome.WRONG, tries_left=left)
    if identifier_held_elsewhere(subject_id=subject.id, digest=digest):
        IdentifierChange.objects.filter(pk=change.pk).update(status=Status.REFUSED, **wipe)
        return Confirmation(Outcome.REFUSED)
    key = data_key(subject)
    value = decrypt_field(subject, key, VALUE_COLUMN, bytes(change.value_enc), row_id=change.pk)
    identifier_replace(subject=subject, key=key, kind=change.kind, value=value, now=now)
    IdentifierChange.objects.filter(pk=change.pk).update(status=Status.CONFIRMED, **wipe)
    # The person's own rectification (Art. 16) reaches connected systems as the DPO's does (Art. 19).
    ports.outbox.record(
        type="subject.rectified",
        subject_id=subject.id,
        data={"subject": str(subject.id), "changed": {"identifiers": [change.kind], "profile": []}},
    )
    return Confirmation(Outcome.CONFIRMED, subject.id, change.kind, value)
