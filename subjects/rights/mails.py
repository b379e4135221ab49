"""Telling the person (Art. 12(3) extension, Art. 12(4) rejection, and every completion): mail to their e-mail
identifiers, decrypted in the task, never carried through the broker. A person nobody knows has no address: nothing
is sent.

An erasure destroys the addresses before it completes, so its completion mail cannot read them then. Its profile
part seals them first (`completion_address_seal`), in the transaction that deletes the identifiers, under a mail
vault key that is not the data key; the completion mail opens them, and once the server took it the sealed copy
and the key go (`completion_address_forget`). A mail the server does not take raises, and the task retries with
backoff; beat's safety net (`tells_stalled`) takes it up again after the retries ran out. One that still cannot be
sent after MAIL_KEEP_DAYS is given up: its key is destroyed all the same (`completion_addresses_abandon`), so no
address outlives an erasure by more than that."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import override

from subjects import crypto, ports
from subjects.columns import REQUEST_MAIL_TO
from subjects.keys import data_key
from subjects.models import Identifier, RightsRequest, RightsRequestEvent, Subject, VaultKey
from subjects.rights import texts
from subjects.rights.context import history_add
from subjects.rights.enqueue import COMPLETION_MAIL
from subjects.rights.vault import vault_key_destroy, vault_key_get_or_create, vault_key_open
from subjects.selectors import subject_identifiers

COMPLETION = COMPLETION_MAIL
TEMPLATES = {
    "extension": "subjects/mail/extension",
    "rejection": "subjects/mail/rejection",
    COMPLETION: "subjects/mail/completion",  # one template per language: completion.de.txt, completion.en.txt
}
# The history event that decides a notice, by notice: the safety net finds decisions whose notice was never sent.
DECIDED_BY = {"extension": "extended", "rejection": "rejected", COMPLETION: "completed"}
MAIL_KEEP_DAYS = 30  # an erasure's sealed addresses wait this long for the mail server at most


def request_tell(*, request_id: uuid.UUID, what: str) -> bool:
    if what not in TEMPLATES:
        raise ValueError(f"unknown notice {what!r}")
    if what == COMPLETION:
        return completion_tell(request_id=request_id)
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


def completion_tell(*, request_id: uuid.UUID) -> bool:
    """The mail that closes the loop: the request is done, in the language the person opened it in; an erasure's
    says what was kept, where, why and until when. Nothing personal beyond that: no name, no address, no data."""
    request = RightsRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.subject is None or request.status != RightsRequest.Status.COMPLETED:
        return False
    if _told(request_id, COMPLETION):
        return False
    if request.mail_to_enc is not None:
        emails = _sealed_open(request)
    elif request.subject.wrapped_key is not None:
        emails = subject_emails(request.subject)
    else:
        return False  # erased, and nothing sealed for this request (or given up): there is nobody to write to
    if not emails:
        return False
    language = request.language or settings.LANGUAGE_CODE
    context = completion_context(request, language)
    with override(language):  # the worker has no request: the mail speaks the language the person opened it in
        subject = render_to_string(f"{TEMPLATES[COMPLETION]}_subject.{language}.txt", context).strip()
        message = render_to_string(f"{TEMPLATES[COMPLETION]}.{language}.txt", context)
    send_mail(subject=subject, message=message, from_email=None, recipient_list=emails)
    with transaction.atomic(durable=True):
        history_add(request, "person_told", "system", timezone.now(), note=COMPLETION)
        completion_address_forget(request=request)
    return True


def completion_context(request: RightsRequest, language: str) -> dict[str, object]:
    """What the completion mail says, from the request's result (counts, names, laws and dates: no personal data)."""
    result = request.result or {}
    kept = texts.kept_for_person(result, ports.consent_rights.catalogue().categories, language)
    return {
        "controller": settings.ASSENT_CONTROLLER_NAME,
        "kind": texts.KIND_NAMES[language].get(request.kind, request.kind),
        "erasure": request.kind == RightsRequest.Kind.ERASURE,
        "download": request.kind in (RightsRequest.Kind.ACCESS, RightsRequest.Kind.PORTABILITY),
        "data_found": result.get("data_found", True),
        "received": texts.date_format(request.received_at, language),
        "completed": texts.date_format(request.completed_at, language),
        "kept": kept,
        "portal_url": f"{settings.ASSENT_BASE_URL}/portal/",
        "complaint": texts.COMPLAINT_TEXT[language],
        "reference": request.pk,
    }


def completion_address_seal(*, request_id: uuid.UUID, subject: Subject, now: datetime) -> bool:
    """Before an erasure deletes the identifiers (its profile part, in that part's transaction under the subject's
    lock): the person's addresses, sealed under the subject's mail vault key, for the completion mail. A rerun after
    the identifiers went finds none and keeps what it sealed before."""
    if subject.wrapped_key is None:
        return False
    emails = subject_emails(subject)
    if not emails:
        return False
    _vault, key = vault_key_get_or_create(purpose=VaultKey.Purpose.MAIL, subject_id=subject.id, now=now)
    sealed = crypto.seal(key, json.dumps(emails).encode(), _mail_aad(request_id))
    RightsRequest.objects.filter(pk=request_id).update(mail_to_enc=sealed)
    return True


def _mail_aad(request_id: uuid.UUID) -> bytes:
    return request_id.bytes + REQUEST_MAIL_TO.encode()


def _sealed_open(request: RightsRequest) -> list[str]:
    if request.subject_id is None or request.mail_to_enc is None:
        return []
    vault = VaultKey.objects.filter(purpose=VaultKey.Purpose.MAIL, subject_id=request.subject_id).first()
    if vault is None or vault.wrapped_key is None:
        return []
    plain = crypto.open_sealed(vault_key_open(vault), bytes(request.mail_to_enc), _mail_aad(request.pk))
    emails: list[str] = json.loads(plain)
    return emails


def completion_address_forget(*, request: RightsRequest) -> None:
    """The sealed copy goes, and with the last one of the person the mail key: after this, nothing readable of the
    address is left anywhere (a backup's copy of the sealed column included)."""
    RightsRequest.objects.filter(pk=request.pk).update(mail_to_enc=None)
    subject_id = request.subject_id
    if subject_id is None:
        return
    waiting = RightsRequest.objects.filter(subject_id=subject_id, mail_to_enc__isnull=False).exists()
    if not waiting:
        for vault_id in VaultKey.objects.filter(
            purpose=VaultKey.Purpose.MAIL, subject_id=subject_id, wrapped_key__isnull=False
        ).values_list("pk", flat=True):
            vault_key_destroy(vault_id=vault_id, now=timezone.now())


@transaction.atomic(durable=True)
def completion_addresses_forget(*, subject_ids: list[uuid.UUID], now: datetime) -> int:
    """Every sealed address of these subjects goes, with their mail keys, sent or not: replay_erasures after a backup
    restore, where a backup taken while an erasure's mail waited must not bring the address back readable."""
    RightsRequest.objects.filter(subject_id__in=subject_ids, mail_to_enc__isnull=False).update(mail_to_enc=None)
    keys = list(
        VaultKey.objects.filter(
            purpose=VaultKey.Purpose.MAIL, subject_id__in=subject_ids, wrapped_key__isnull=False
        ).values_list("pk", flat=True)
    )
    for vault_id in keys:
        vault_key_destroy(vault_id=vault_id, now=now)
    return len(keys)


def completion_addresses_abandon(*, now: datetime | None = None) -> int:
    """Mail keys older than MAIL_KEEP_DAYS are destroyed with whatever they sealed, sent or not (beat, daily)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=MAIL_KEEP_DAYS)
    old = list(
        VaultKey.objects.filter(
            purpose=VaultKey.Purpose.MAIL, wrapped_key__isnull=False, created_at__lt=cutoff
        ).values_list("pk", "subject_id")
    )
    with transaction.atomic(durable=True):
        for vault_id, subject_id in old:
            RightsRequest.objects.filter(subject_id=subject_id).update(mail_to_enc=None)
            vault_key_destroy(vault_id=vault_id, now=now)
    return len(old)


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
        reachable = Q(
            Exists(Identifier.objects.filter(subject_id=OuterRef("request__subject_id"), kind="email")),
            request__subject__wrapped_key__isnull=False,
        )
        if what == COMPLETION:  # an erasure's addresses are sealed on the request, its subject's key gone
            reachable |= Q(request__mail_to_enc__isnull=False)
        found += [
            (request_id, what)
            for request_id in RightsRequestEvent.objects.filter(
                event=event, at__lt=now - older_than, at__gte=now - within
            )
            .filter(~Exists(told), reachable)
            .order_by("at")
            .values_list("request_id", flat=True)[:500]
        ]
    return found
