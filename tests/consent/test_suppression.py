"""The suppression list (DESIGN.md, Erasure): keyed hashes of erased people's identifiers. A later marketing grant
for one of them from anyone but the person stays pending with reason `suppressed` until the person confirms it
themselves (double opt-in confirmation, or a grant in the portal); then the suppression is lifted.
The rights engine fills the list; these tests create the rows directly."""

from __future__ import annotations

import io
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

from consent.double_opt_in import confirmation_confirm, confirmation_send, confirmation_token
from consent.ledger.chain import canonical_fields, event_evidence, event_hash
from consent.ledger.recording import ConsentCommand
from consent.models import Confirmation, ConsentEvent, ConsentState
from consent.services import consent_record
from subjects.identity import normalise, parse_reference
from subjects.keys import blind_index, data_key
from subjects.locks import lock_subject
from subjects.models import Subject, Suppression
from subjects.services import identifier_replace
from tests.api import Api
from tests.factories import ingest

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
ANNA = "anna@example.de"
PHONE = "+49 171 1234567"
CONFIRMED = {"confirmed_at": "2026-01-02T10:00:00+00:00", "method": "shop-double-opt-in"}


def suppress(kind: str, value: str) -> None:
    Suppression.objects.create(
        digest=blind_index().suppression(kind, normalise(kind, value)), kind=kind, created_at=timezone.now()
    )


def suppressed(kind: str, value: str) -> bool:
    return Suppression.objects.filter(digest=blind_index().suppression(kind, normalise(kind, value))).exists()


def write(api: Api, subject: dict[str, Any], action: str = "grant", **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "subject": subject,
        "purpose": "newsletter",
        "channel": "sms",
        "action": action,
        "source": "webshop",
        **({"notice_version": "2026-01"} if action in ("grant", "confirm") else {}),
        **overrides,
    }
    return api.post(CONSENTS, body)


def check(api: Api, subject: dict[str, Any], channel: str = "sms") -> tuple[bool, str]:
    answer = api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": channel}).json()
    return answer["allowed"], answer["reason"]


def portal_grant(subject_id: str, channel: str = "sms") -> str:
    return consent_record(
        command=ConsentCommand(
            reference=parse_reference({"id": subject_id}),
            purpose="newsletter",
            channel=channel,
            action="grant",
            notice_version="2026-01",
            source="portal",
            actor="subject",
        ),
        internal=True,
    ).state


# ---------------------------------------------------------------------------------------------------------
# A grant from anyone but the person stays pending
# ---------------------------------------------------------------------------------------------------------
def test_a_clients_grant_for_a_suppressed_address_is_pending_and_the_check_says_suppressed(api: Api) -> None:
    suppress("email", ANNA)

    response = write(api, {"email": ANNA})

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    state = ConsentState.objects.get(subject_id=response.json()["subject"], purpose="newsletter", channel="sms")
    assert (state.status, state.suppressed) == ("pending_confirmation", True)
    assert check(api, {"email": ANNA}) == (False, "suppressed")


def test_suppression_is_matched_however_the_address_is_written(api: Api) -> None:
    suppress("email", ANNA)

    write(api, {"email": "  Anna@EXAMPLE.de "})

    assert check(api, {"email": ANNA}) == (False, "suppressed")


def test_a_grant_for_an_address_that_is_not_suppressed_is_unaffected(api: Api) -> None:
    suppress("email", "someone.else@example.de")

    assert write(api, {"email": ANNA}).json()["state"] == "granted"
    assert check(api, {"email": ANNA}) == (True, "granted")


def test_suppression_is_found_through_the_subjects_own_identifiers(api: Api) -> None:
    # given Anna, known from a till receipt with her phone, whose phone was later suppressed
    anna = ingest(
        "pos",
        "R-1",
        {"customer_number": "C-1", "phone": PHONE},
        data={"total": "1.00"},
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
    ).subject_id
    suppress("phone", PHONE)

    # when a client grants by her id only
    response = write(api, {"id": str(anna)})

    # then the grant waits: no e-mail to confirm by, so it waits for her own grant in the portal (no 400)
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    assert check(api, {"id": str(anna)}) == (False, "suppressed")
    assert not Confirmation.objects.exists()


def test_suppression_only_concerns_marketing_purposes(api: Api) -> None:
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}, purpose="offers", channel="post", action="object").json()["subject"]

    answer = api.post(CHECK, {"subject": {"id": anna}, "purpose": "order-updates", "channel": "email"}).json()

    assert (answer["allowed"], answer["reason"]) == (True, "contract")


def test_a_clients_confirmation_does_not_release_a_suppressed_grant(api: Api) -> None:
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}).json()["subject"]

    # a client posting `confirm` (its own double opt-in) is not the person confirming
    assert write(api, {"id": anna, "email": ANNA}, action="confirm", evidence=CONFIRMED).status_code == 201
    assert (
        write(api, {"id": anna, "email": ANNA}, action="confirm", notice_version=None, evidence=CONFIRMED).status_code
        == 201
    )

    assert check(api, {"id": anna}) == (False, "suppressed")
    assert suppressed("email", ANNA)


def test_a_clients_own_double_opt_in_for_a_suppressed_address_counts_as_a_pending_grant(api: Api) -> None:
    suppress("email", ANNA)

    response = write(api, {"email": ANNA}, action="confirm", channel="push", evidence=CONFIRMED)

    assert response.json()["state"] == "pending_confirmation"
    assert check(api, {"email": ANNA}, channel="push") == (False, "suppressed")


def test_a_late_upload_keeps_a_suppressed_grant_pending(api: Api) -> None:
    # State follows occurred_at: a withdrawal from yesterday that arrives now is folded in before today's grant,
    # and the fold must remember that today's grant met the suppression list.
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}).json()["subject"]

    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    assert write(api, {"id": anna}, action="withdraw", occurred_at=yesterday).status_code == 201

    assert check(api, {"id": anna}) == (False, "suppressed")


def test_a_withdrawal_after_a_suppressed_grant_is_a_withdrawal(api: Api) -> None:
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}).json()["subject"]

    write(api, {"id": anna}, action="withdraw")

    assert check(api, {"id": anna}) == (False, "withdrawn")


# ---------------------------------------------------------------------------------------------------------
# The person's own act lifts it
# ---------------------------------------------------------------------------------------------------------
def test_the_persons_double_opt_in_confirmation_lifts_the_suppression(api: Api) -> None:
    # given a suppressed address and a client's grant of the newsletter by SMS
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}).json()["subject"]

    # then a confirmation is mailed to the address (the person's chance to confirm; the task calls this)
    confirmation = Confirmation.objects.get(subject_id=anna)
    assert (confirmation.purpose, confirmation.channel) == ("newsletter", "sms")
    assert confirmation_send(confirmation_id=confirmation.id)
    assert [m.to for m in mail.outbox] == [[ANNA]]

    # when the person confirms through the link
    confirmation_confirm(token=confirmation_token(confirmation.id), evidence={"form": "confirm-page"})

    # then the grant is effective and the address is off the list
    assert check(api, {"id": anna}) == (True, "granted")
    assert not suppressed("email", ANNA)
    state = ConsentState.objects.get(subject_id=anna, purpose="newsletter", channel="sms")
    assert (state.status, state.suppressed, state.confirmed) == ("granted", False, True)


def test_a_suppressed_email_grant_is_released_by_the_double_opt_in_as_usual(api: Api) -> None:
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}, channel="email").json()["subject"]
    assert check(api, {"id": anna}, channel="email") == (False, "suppressed")

    confirmation = Confirmation.objects.get(subject_id=anna)
    confirmation_confirm(token=confirmation_token(confirmation.id), evidence={"form": "confirm-page"})

    assert check(api, {"id": anna}, channel="email") == (True, "granted")
    assert not suppressed("email", ANNA)


def test_the_persons_grant_in_the_portal_lifts_the_suppression(api: Api) -> None:
    suppress("email", ANNA)
    anna = write(api, {"email": ANNA}).json()["subject"]

    assert portal_grant(anna) == "granted"

    assert check(api, {"id": anna}) == (True, "granted")
    assert not suppressed("email", ANNA)
    # and a client's later grant is no longer held back
    write(api, {"id": anna}, action="withdraw")
    assert write(api, {"id": anna}).json()["state"] == "granted"


def test_a_held_confirmation_stays_proven_after_a_later_grant_on_the_same_channel(api: Api) -> None:
    # The soak found it: the replay learnt which events met the list only from the state row, which names the
    # newest event. A client's confirmation held back by the list, then (the list lifted by the person's own grant
    # elsewhere) a client's new grant on the same channel: the replay took the held confirmation for a real one.
    suppress("email", ANNA)
    held = write(api, {"email": ANNA}, action="confirm", channel="email", evidence=CONFIRMED).json()
    assert held["state"] == "pending_confirmation"
    anna = held["subject"]
    assert portal_grant(anna, channel="sms") == "granted"
    assert not suppressed("email", ANNA)

    assert write(api, {"id": anna, "email": ANNA}, channel="email").json()["state"] == "pending_confirmation"

    assert check(api, {"id": anna}, channel="email") == (False, "pending_confirmation")
    call_command("verify_ledger", stdout=io.StringIO(), stderr=io.StringIO())
    held_event = ConsentEvent.objects.get(subject_id=anna, seq=1)
    assert (held_event.action, held_event.suppressed) == ("confirm", True)
    # the flag is inside the proof: the same event without it hashes differently
    evidence = event_evidence(held_event, data_key(Subject.objects.get(pk=anna)))
    held_event.suppressed = False
    assert event_hash(held_event.prev_hash, canonical_fields(held_event, evidence)) != held_event.hash


def test_lifting_one_persons_suppression_leaves_the_others(api: Api) -> None:
    suppress("email", ANNA)
    suppress("email", "ben@example.de")
    anna = write(api, {"email": ANNA}).json()["subject"]

    portal_grant(anna)

    assert not suppressed("email", ANNA)
    assert suppressed("email", "ben@example.de")
    assert write(api, {"email": "ben@example.de"}).json()["state"] == "pending_confirmation"


def test_a_suppressed_grant_of_an_unknown_id_is_still_404(api: Api) -> None:
    suppress("email", ANNA)

    assert write(api, {"id": str(uuid.uuid4())}).status_code == 404


@pytest.mark.django_db(transaction=True)
def test_an_identifier_attached_while_a_grant_waits_for_the_lock_still_holds_the_grant_back(api: Api) -> None:
    # given Anna, known by her e-mail, and a suppressed phone number that is not hers yet
    anna = uuid.UUID(write(api, {"email": ANNA}, action="withdraw").json()["subject"])
    suppress("phone", PHONE)
    locked = threading.Event()

    def attach_the_phone_under_her_lock() -> None:
        try:
            with transaction.atomic():
                subject = lock_subject(anna)
                phone = normalise("phone", PHONE)
                key = data_key(subject)
                identifier_replace(subject=subject, key=key, kind="phone", value=phone, now=timezone.now())
                locked.set()
                time.sleep(1.0)  # the grant below queues behind this lock meanwhile
        finally:
            connections.close_all()

    # when a shop's marketing grant arrives while a record attaches the phone under her lock
    worker = threading.Thread(target=attach_the_phone_under_her_lock)
    worker.start()
    assert locked.wait(10)
    response = write(api, {"email": ANNA})
    worker.join()

    # then the grant met the phone (the write reads her identifiers again under the lock): it waits for Anna
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    assert check(api, {"email": ANNA}) == (False, "suppressed")
