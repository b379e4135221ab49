"""Double opt-in (UWG §7(2) Nr. 2): the mail with the link, and the person's confirmation."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import get_language, override

from consent.catalogue.snapshot import catalogue_snapshot, channel_display_name, notice_text, purpose_get
from consent.errors import ConfirmationInvalidError
from consent.ledger import projection
from consent.ledger.recording import ConsentCommand, consent_event_record
from consent.models import Confirmation, ConsentState
from subjects.columns import CONFIRMATION_EMAIL
from subjects.identity import Reference
from subjects.keys import data_key, decrypt_field
from subjects.locks import lock_subject
from subjects.mail_delivery import MailNotSentError, mail_delivered, mail_error_describe, mail_undelivered_record
from subjects.models import UndeliveredMail
from subjects.selectors import identifier_owners

SALT = "assent.confirmation"
MAIL_KIND = UndeliveredMail.Kind.CONFIRMATION
SEND_LEASE = timedelta(seconds=60)  # longer than a mail server takes to answer (EMAIL_TIMEOUT)


class ConfirmationBusyError(OSError):
    """Another task holds a live claim on mailing this link. An OSError, so that the task retries it with backoff:
    by then the other has sent it (and the retry does nothing) or died (and its claim has run out)."""


def confirmation_token(confirmation_id: uuid.UUID) -> str:
    return signing.dumps(str(confirmation_id), salt=SALT, compress=False)


def confirmation_url(confirmation_id: uuid.UUID) -> str:
    return f"{settings.ASSENT_BASE_URL}/confirm/{confirmation_token(confirmation_id)}"


@dataclass(frozen=True, slots=True)
class ConfirmationView:
    id: uuid.UUID
    purpose_key: str
    purpose_name: str
    channel: str
    channel_name: str  # in the reader's language, like the purpose's name and the notice
    notice: str
    state: str  # "open", "used", "expired"


def confirmation_from_token(*, token: str) -> ConfirmationView:
    """What a confirmation link names; ConfirmationInvalidError for a forged or unknown link."""
    try:
        confirmation_id = uuid.UUID(signing.loads(token, salt=SALT))
    except (signing.BadSignature, ValueError, TypeError):
        raise ConfirmationInvalidError("this link is not valid") from None
    row = Confirmation.objects.filter(pk=confirmation_id).select_related("grant").first()
    if row is None:
        raise ConfirmationInvalidError("this link is not valid")
    info = catalogue_snapshot().purposes.get(row.purpose)
    state = "used" if row.used_at else "expired" if row.expires_at <= timezone.now() else "open"
    language = get_language()
    return ConfirmationView(
        id=row.id,
        purpose_key=row.purpose,
        purpose_name=info.display_name(language) if info else row.purpose,
        channel=row.channel,
        channel_name=channel_display_name(row.channel, language),
        notice=notice_text(info.texts, language) if info else "",
        state=state,
    )


def confirmation_confirm(*, token: str, evidence: dict[str, Any]) -> ConfirmationView:
    """The person's own act: records a `confirm` event (source double-opt-in) with the click's evidence.
    Single use; a link whose grant was withdrawn meanwhile confirms nothing."""
    view = confirmation_from_token(token=token)
    if view.state != "open":
        raise ConfirmationInvalidError(f"this link is {view.state}")
    with transaction.atomic(durable=True):
        row = Confirmation.objects.select_related("grant").get(pk=view.id)
        subject = lock_subject(row.subject_id)
        row = Confirmation.objects.select_for_update().select_related("grant").get(pk=view.id)
        if row.used_at is not None:
            raise ConfirmationInvalidError("this link is used")
        pending = ConsentState.objects.filter(
            subject=subject, purpose=row.purpose, channel=row.channel, status=projection.PENDING
        ).exists()
        if not pending:
            raise ConfirmationInvalidError("there is nothing left to confirm")
        # The address may have been detached (rectified, split off) since the mail: only its owner confirms.
        email = decrypt_field(subject, data_key(subject), CONFIRMATION_EMAIL, bytes(row.email_enc), row_id=row.pk)
        if subject.id not in identifier_owners(identifiers=[("email", email)])[0]:
            raise ConfirmationInvalidError("this link's address is no longer the person's")
        now = timezone.now()
        _, info = purpose_get(catalogue_snapshot(), row.purpose)
        consent_event_record(
            ConsentCommand(
                reference=Reference(subject.id, ()),
                purpose=row.purpose,
                channel=row.channel,
                action="confirm",
                notice_version=row.grant.notice_version,
                source="double-opt-in",
                actor="subject",
                evidence={**evidence, "confirmation": str(row.id), "grant_event": str(row.grant_id)},
            ),
            info,
            now,
        )
        Confirmation.objects.filter(pk=row.pk).update(used_at=now)
    return dataclasses.replace(view, state="used")


def confirmation_send(*, confirmation_id: uuid.UUID) -> bool:
    """Mail the link; at least once, and never by two tasks at a time (a claim with a lease). Slow I/O stays outside
    any transaction. A mail the server does not take is recorded for the DPO and raised as MailNotSentError (the
    task retries it with backoff; beat's resend_unsent_confirmations takes up one whose retries ran out);
    `mailed_at` is set only once the server took it."""
    row = Confirmation.objects.select_related("subject").filter(pk=confirmation_id).first()
    if row is None or row.mailed_at is not None or row.used_at is not None:
        return False
    email = decrypt_field(row.subject, data_key(row.subject), CONFIRMATION_EMAIL, bytes(row.email_enc), row_id=row.pk)
    if row.subject_id not in identifier_owners(identifiers=[("email", email)])[0]:
        return False  # detached since the grant: the link goes to the subject's own address or nowhere
    now = timezone.now()
    lease_until = now + SEND_LEASE
    claimed = (
        Confirmation.objects.filter(pk=row.pk, mailed_at__isnull=True, used_at__isnull=True)
        .filter(Q(send_claimed_until__isnull=True) | Q(send_claimed_until__lt=now))
        .update(send_claimed_until=lease_until)
    )
    if not claimed:
        if Confirmation.objects.filter(pk=row.pk, mailed_at__isnull=True, used_at__isnull=True).exists():
            raise ConfirmationBusyError("another task is mailing this link")  # retried: it may have died
        return False
    info = catalogue_snapshot().purposes.get(row.purpose)
    language = row.language or settings.LANGUAGE_CODE
    context = {
        "purpose_name": info.display_name(language) if info else row.purpose,
        "url": confirmation_url(row.id),
        "days": settings.ASSENT_CONFIRMATION_DAYS,
    }
    with override(language):  # the worker has no request: the mail speaks the language the person chose in
        subject = render_to_string("consent/confirm_subject.txt", context).strip()
        message = render_to_string("consent/confirm_email.txt", context)
    try:
        send_mail(subject=subject, message=message, from_email=None, recipient_list=[email])
    except OSError as exc:  # refused or unreachable (SMTPException is an OSError): the task retries with backoff
        error = mail_error_describe(exc)
        # Our claim ends now (if it is still ours): the next retry may claim it at once.
        Confirmation.objects.filter(pk=row.pk, send_claimed_until=lease_until).update(send_claimed_until=None)
        mail_undelivered_record(kind=MAIL_KIND, reference=str(row.pk), subject_id=row.subject_id, error=error)
        raise MailNotSentError(error) from None  # the server's text may hold the address: keep it out of logs
    Confirmation.objects.filter(pk=row.pk, mailed_at__isnull=True).update(
        mailed_at=timezone.now(), send_claimed_until=None
    )
    mail_delivered(kind=MAIL_KIND, reference=str(row.pk))
    return True


def confirmations_unsent() -> list[uuid.UUID]:
    cutoff = timezone.now() - timedelta(minutes=5)
    return list(
        Confirmation.objects.filter(
            mailed_at__isnull=True, used_at__isnull=True, created_at__lt=cutoff, expires_at__gt=timezone.now()
        ).values_list("pk", flat=True)[:500]
    )
