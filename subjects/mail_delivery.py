"""Mails to people that the mail server did not take (refused, or unreachable): recorded for the DPO, who sees them
on the admin dashboard, until a retry delivers them. Never the address: the caller names the mail by a reference
(a confirmation's id, or a keyed hash of the address), and the error by its type and SMTP code only."""

from __future__ import annotations

import smtplib
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from subjects.models import UndeliveredMail


class MailNotSentError(OSError):
    """A mail the server did not take, described without the address. An OSError, as the error it stands for, so
    that a task retrying on OSError retries it; raised `from None` so that no log shows the server's message."""


def mail_error_describe(exc: BaseException) -> str:
    """`SMTPRecipientsRefused 550`, `ConnectionRefusedError`: what went wrong, never what the server said (a
    refusal's text often repeats the recipient's address)."""
    code: object = getattr(exc, "smtp_code", None)
    if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
        code = min(refusal[0] for refusal in exc.recipients.values())
    name = type(exc).__name__
    return f"{name} {code}" if isinstance(code, int) else name


@transaction.atomic(durable=True)
def mail_undelivered_record(
    *, kind: str, reference: str, error: str, subject_id: uuid.UUID | None = None
) -> UndeliveredMail:
    """One more failed attempt of the open (undelivered) mail `kind`/`reference`, created on its first failure."""
    now = timezone.now()
    for _ in range(2):  # a concurrent first failure may create the row between our update and our insert
        updated = UndeliveredMail.objects.filter(kind=kind, reference=reference, delivered_at=None).update(
            attempts=F("attempts") + 1, last_error=error[:120], last_failed_at=now
        )
        if updated:
            return UndeliveredMail.objects.get(kind=kind, reference=reference, delivered_at=None)
        try:
            with transaction.atomic():
                return UndeliveredMail.objects.create(
                    kind=kind,
                    reference=reference,
                    subject_id=subject_id,
                    attempts=1,
                    last_error=error[:120],
                    first_failed_at=now,
                    last_failed_at=now,
                )
        except IntegrityError:
            continue
    raise RuntimeError("undelivered mail neither updated nor created")  # the loop cannot end here


def mail_delivered(*, kind: str, reference: str) -> int:
    """A retry delivered the mail: it leaves the DPO's list of undelivered mails (the row stays, as its history)."""
    return UndeliveredMail.objects.filter(kind=kind, reference=reference, delivered_at=None).update(
        delivered_at=timezone.now()
    )
