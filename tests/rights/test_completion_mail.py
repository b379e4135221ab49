"""The loop closes (issue 14, item 4): a completed request is told to the person, in the language they opened it
in; an erasure's mail goes out although the addresses are gone by then, says what was kept and why, and leaves
nothing readable of the address once it is sent (or given up)."""

from __future__ import annotations

import smtplib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from subjects.models import Identifier, RightsRequest, RightsRequestEvent, Subject, VaultKey
from subjects.rights import texts
from subjects.rights.mails import (
    MAIL_KEEP_DAYS,
    completion_addresses_abandon,
    request_tell,
    tells_stalled,
)
from subjects.rights.replay import erasure_replay
from tests.api import Api
from tests.rights.erasure_checks import busy_person
from tests.rights.helpers import drain, seed_person

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def open_request(
    api: Api, kind: str, email: str, language: str | None = None, details: dict[str, Any] | None = None
) -> str:
    headers = {"Accept-Language": language} if language else None
    request = {"kind": kind, "subject": {"email": email}, "channel": "portal", "verified": True}
    body = api.post(REQUESTS, {**request, "details": details or {}}, headers).json()
    if body["status"] == "awaiting_approval":
        assert api.post(f"{REQUESTS}/{body['id']}/approve", {}).status_code == 202
    request_id: str = body["id"]
    return request_id


def told(request_id: str) -> bool:
    return RightsRequestEvent.objects.filter(request_id=request_id, event="person_told", note="completion").exists()


class RefusingBackend:
    """A mail server that is down: every send raises, as smtplib does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")


def test_a_completed_access_request_is_told_in_the_language_it_was_opened_in(rapi: Api) -> None:
    # given a person who asked for a copy in English
    person = seed_person("done-en", records_per_source=1)
    request_id = open_request(rapi, "access", person.email, "en-GB,en;q=0.8")
    assert RightsRequest.objects.get(pk=request_id).language == "en"

    # when it completes, and the task that closes the loop runs
    request = drain(request_id)
    assert request.status == "completed"
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is True

    # then one English mail says it is done, with the dates as the reader writes them and where to download
    (message,) = mail.outbox
    assert message.to == [person.email]
    assert "your request is complete" in message.subject
    assert texts.KIND_NAMES["en"]["access"] in message.subject
    assert texts.date_format(request.completed_at, "en") in message.body
    assert "/portal/" in message.body
    assert "Art. 77" in message.body
    # and nothing personal beyond the address it goes to
    for secret in person.secrets:
        assert secret not in message.body
        assert secret not in message.subject
    assert told(request_id)
    # once is enough: a second run of the task (a retry, the safety net) sends nothing
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is False
    assert len(mail.outbox) == 1


def test_a_request_opened_without_a_language_is_told_in_the_default_one(rapi: Api, settings: Any) -> None:
    settings.LANGUAGE_CODE = "de"
    person = seed_person("done-de", records_per_source=0)
    request_id = open_request(rapi, "restriction", person.email, details={"ground": "18(1)(a)"})
    assert RightsRequest.objects.get(pk=request_id).language == ""
    request = drain(request_id)
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is True
    (message,) = mail.outbox
    assert "Ihr Antrag ist erledigt" in message.subject
    assert texts.date_format(request.completed_at, "de") in message.body  # 29.11.2026, not 2026-11-29
    assert request.completed_at is not None
    assert request.completed_at.date().isoformat() not in message.body


def test_an_erasure_is_told_after_the_address_is_gone_and_says_what_was_kept_and_why(rapi: Api) -> None:
    # given a person with held records, who asked in German for erasure
    person = busy_person(rapi, "done-era")
    request_id = open_request(rapi, "erasure", person.email, "de")

    # when the erasure runs to its end
    request = drain(request_id)
    assert request.status == "completed"
    subject = Subject.objects.get(pk=person.subject_id)
    assert subject.wrapped_key is None  # the data key is destroyed
    assert not Identifier.objects.filter(subject_id=person.subject_id).exists()
    # the address waits for its mail sealed under a key of its own, not in clear anywhere
    assert request.mail_to_enc is not None
    assert person.email.encode() not in bytes(request.mail_to_enc)
    mail_key = VaultKey.objects.get(purpose=VaultKey.Purpose.MAIL, subject_id=person.subject_id)
    assert mail_key.wrapped_key is not None

    # then the mail still reaches the person, in German, naming what the law keeps, why and until when
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is True
    (message,) = mail.outbox
    assert message.to == [person.email]
    assert "Löschung Ihrer Daten" in message.subject
    assert "Wir haben Ihre Daten gelöscht" in message.body
    assert "§147 AO, §257 HGB" in message.body
    assert f"31.12.{timezone.now().year + 8}" in message.body
    assert "bei uns, gesperrt" in message.body
    assert "Store tills (das liefernde System)" in message.body
    assert texts.CONSENT_PROOF["de"] in message.body
    assert texts.KEPT_WHY["de"][texts.EVIDENCE_WHY] in message.body
    assert "consent proof while" not in message.body  # one language per mail
    for secret in person.secrets:
        assert secret not in message.body

    # and afterwards nothing readable of the address is left: the sealed copy and its key are gone
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is None
    mail_key.refresh_from_db()
    assert mail_key.wrapped_key is None
    assert mail_key.destroyed_at is not None


def test_an_erasure_mail_the_server_refuses_waits_sealed_and_is_sent_by_the_safety_net(
    rapi: Api, settings: Any
) -> None:
    # given an erasure completed while the mail server is down
    person = seed_person("done-down", records_per_source=1)
    request_id = open_request(rapi, "erasure", person.email, "en")
    drain(request_id)
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    with pytest.raises(OSError):  # the task retries OSError with backoff
        request_tell(request_id=uuid.UUID(request_id), what="completion")
    assert not told(request_id)
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is not None

    # when the task's retries ran out, beat's safety net finds it (the subject's key is gone, its address sealed)
    stalled = tells_stalled(older_than=timedelta(0))
    assert (uuid.UUID(request_id), "completion") in stalled

    # then, the server back, it is sent once and the address forgotten
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is True
    assert [m.to for m in mail.outbox] == [[person.email]]
    assert (uuid.UUID(request_id), "completion") not in tells_stalled(older_than=timedelta(0))
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is None


def test_an_erasure_mail_that_never_gets_through_is_given_up_with_its_key(rapi: Api) -> None:
    person = seed_person("done-never", records_per_source=0)
    request_id = open_request(rapi, "erasure", person.email, "en")
    drain(request_id)
    assert completion_addresses_abandon() == 0  # a fresh one waits
    later = timezone.now() + timedelta(days=MAIL_KEEP_DAYS + 1)
    assert completion_addresses_abandon(now=later) == 1
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is None
    assert VaultKey.objects.get(purpose=VaultKey.Purpose.MAIL, subject_id=person.subject_id).wrapped_key is None
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is False
    assert mail.outbox == []


def test_a_request_about_nobody_mails_nobody(rapi: Api) -> None:
    request_id = open_request(rapi, "access", "nobody-known@example.de", "en")
    assert drain(request_id).status == "completed"
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is False
    assert mail.outbox == []


def test_a_replay_after_a_backup_restore_leaves_no_sealed_address_readable(rapi: Api) -> None:
    # given an erasure whose mail still waited when the backup was taken (its address sealed, the data key gone)
    person = seed_person("done-replay", records_per_source=0)
    request_id = open_request(rapi, "erasure", person.email, "en")
    drain(request_id)
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is not None

    # when the operator replays the erasure log on the restored database
    assert erasure_replay(subject_id=person.subject_id, request_id=uuid.UUID(request_id)) == "already erased"

    # then the sealed address and its key are gone, and no mail goes out from the restored copy
    assert RightsRequest.objects.get(pk=request_id).mail_to_enc is None
    assert VaultKey.objects.get(purpose=VaultKey.Purpose.MAIL, subject_id=person.subject_id).wrapped_key is None
    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is False
    assert mail.outbox == []
