"""An identifier from a request may select a subject; it is never a destination, nor lifted on that subject's
ledger, unless it is one of the subject's own (issue 9, item 1: the double opt-in sent to a stranger)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from consent.double_opt_in import confirmation_confirm, confirmation_send, confirmation_token
from consent.errors import ConfirmationInvalidError
from consent.ledger.recording import ConsentCommand
from consent.models import Confirmation, ConsentEvent, ConsentState, Objection
from consent.services import consent_record
from subjects.columns import CONFIRMATION_EMAIL
from subjects.identity import normalise, parse_reference
from subjects.keys import blind_index, data_key, decrypt_field
from subjects.models import Identifier, Subject, Suppression
from tests.api import Api

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
ANNA = "anna@example.de"
MALLORY = "mallory@evil.example"
ANNAS = {"customer_number": "C-1", "email": ANNA}
HIJACK = {"customer_number": "C-1", "email": MALLORY}
EVIDENCE = {"confirmed_at": "2026-01-02T10:00:00+00:00", "method": "shop-double-opt-in", "ip": "203.0.113.0"}


def write(api: Api, subject: dict[str, Any], action: str = "grant", **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "subject": subject,
        "purpose": "newsletter",
        "channel": "email",
        "action": action,
        "source": "webshop",
        **({"notice_version": "2026-01"} if action in ("grant", "confirm") else {}),
        **overrides,
    }
    return api.post(CONSENTS, {k: v for k, v in body.items() if v is not None})


def check(api: Api, subject: dict[str, Any], channel: str = "email") -> tuple[bool, str]:
    answer = api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": channel}).json()
    return answer["allowed"], answer["reason"]


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def suppress(kind: str, value: str) -> None:
    Suppression.objects.create(
        digest=blind_index().suppression(kind, normalise(kind, value)), kind=kind, created_at=timezone.now()
    )


def suppressed(kind: str, value: str) -> bool:
    return Suppression.objects.filter(digest=blind_index().suppression(kind, normalise(kind, value))).exists()


def ledger() -> tuple[int, int, int, int]:
    return (
        ConsentEvent.objects.count(),
        ConsentState.objects.count(),
        Confirmation.objects.count(),
        Objection.objects.count(),
    )


@pytest.fixture
def anna(api: Api) -> str:
    """Anna: customer C-1 with her own address, who has objected to the newsletter and is on the suppression list."""
    subject: str = write(api, ANNAS, channel="sms").json()["subject"]
    assert write(api, {"id": subject}, action="object", channel=None).status_code == 201
    suppress("email", ANNA)
    return subject


# ---------------------------------------------------------------------------------------------------------
# The double opt-in mail goes only to an address of the subject
# ---------------------------------------------------------------------------------------------------------
def test_it_refuses_to_mail_a_double_opt_in_for_another_persons_customer_number_to_an_unlinked_address(
    api: Api, anna: str
) -> None:
    before = ledger()

    response = write(api, HIJACK)

    body = problem(response, 409, "email_not_linked")
    assert "subject.email" in body["errors"]
    assert MALLORY not in response.content.decode()
    assert ledger() == before
    assert mail.outbox == []
    # Anna's objection and suppression stand
    assert check(api, {"id": anna}) == (False, "objected")
    assert suppressed("email", ANNA)


def test_it_mails_the_double_opt_in_to_the_subjects_own_address_named_in_the_reference(api: Api) -> None:
    subject = write(api, ANNAS, channel="sms").json()["subject"]

    response = write(api, {"customer_number": "C-1", "email": "  Anna@Example.DE "})

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    row = Confirmation.objects.select_related("subject").get()
    assert str(row.subject_id) == subject
    key = data_key(row.subject)
    assert decrypt_field(row.subject, key, CONFIRMATION_EMAIL, bytes(row.email_enc), row_id=row.pk) == ANNA


def test_a_first_write_mails_the_address_of_the_subject_it_creates(api: Api) -> None:
    response = write(api, {"customer_number": "C-9", "email": "new@example.de"})

    assert response.status_code == 201, response.content
    assert Confirmation.objects.count() == 1


def test_a_double_opt_in_by_subject_id_without_an_address_is_400_email_required(api: Api, anna: str) -> None:
    problem(write(api, {"id": anna}), 400, "email_required")


def test_a_suppressed_grant_off_double_opt_in_mails_no_unlinked_address(api: Api, anna: str) -> None:
    # A suppressed grant by SMS is confirmed by mail when there is an address: never by a stranger's address.
    response = write(api, HIJACK, channel="sms", purpose="newsletter")

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    assert Confirmation.objects.count() == 0
    assert check(api, {"id": anna}, channel="sms")[0] is False


# ---------------------------------------------------------------------------------------------------------
# The confirmation re-checks the address when the person clicks
# ---------------------------------------------------------------------------------------------------------
def test_a_confirmation_link_confirms_nothing_once_its_address_is_no_longer_the_subjects(api: Api) -> None:
    subject = write(api, ANNAS).json()["subject"]
    confirmation = Confirmation.objects.get()
    assert confirmation_send(confirmation_id=confirmation.id)
    assert [m.to for m in mail.outbox] == [[ANNA]]
    # the address leaves the subject before the click (rectified away)
    Identifier.objects.filter(subject_id=subject, kind="email").delete()
    before = ledger()

    with pytest.raises(ConfirmationInvalidError):
        confirmation_confirm(token=confirmation_token(confirmation.id), evidence={"form": "confirm-page"})

    assert ledger() == before
    assert check(api, {"id": subject}) == (False, "pending_confirmation")


def test_a_confirmation_is_not_mailed_to_an_address_detached_before_the_mail_went_out(api: Api) -> None:
    subject = write(api, ANNAS).json()["subject"]
    Identifier.objects.filter(subject_id=subject, kind="email").delete()

    assert confirmation_send(confirmation_id=Confirmation.objects.get().id) is False

    assert mail.outbox == []


def test_a_confirmation_link_still_confirms_for_the_subjects_address(api: Api) -> None:
    subject = write(api, ANNAS).json()["subject"]
    confirmation = Confirmation.objects.get()

    confirmation_confirm(token=confirmation_token(confirmation.id), evidence={"form": "confirm-page"})

    assert check(api, {"id": subject}) == (True, "granted")


# ---------------------------------------------------------------------------------------------------------
# A client's own `confirm` needs evidence, for an address of the subject
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "evidence",
    [
        None,
        {},
        {"form": "shop-doi"},
        {"confirmed_at": EVIDENCE["confirmed_at"]},
        {"method": "shop-double-opt-in"},
        {**EVIDENCE, "method": "  "},
        {**EVIDENCE, "confirmed_at": "yesterday"},
        {**EVIDENCE, "confirmed_at": "2026-01-02T10:00:00"},
        {**EVIDENCE, "confirmed_at": (timezone.now() + timedelta(days=2)).isoformat()},
        {**EVIDENCE, "confirmed_at": 1767348000},
    ],
    ids=[
        "none",
        "empty",
        "neither",
        "no method",
        "no confirmed_at",
        "blank method",
        "confirmed_at not a date",
        "confirmed_at without zone",
        "confirmed_at in the future",
        "confirmed_at a number",
    ],
)
def test_a_clients_confirm_without_evidence_of_when_and_how_is_400_evidence_required(
    api: Api, anna: str, evidence: dict[str, Any] | None
) -> None:
    before = ledger()

    response = write(api, ANNAS, action="confirm", evidence=evidence)

    body = problem(response, 400, "evidence_required")
    assert "evidence" in body["errors"]
    assert ledger() == before


def test_a_clients_confirm_for_another_persons_customer_number_and_an_unlinked_address_is_409(
    api: Api, anna: str
) -> None:
    before = ledger()

    response = write(api, HIJACK, action="confirm", evidence=EVIDENCE)

    problem(response, 409, "email_not_linked")
    assert ledger() == before
    assert check(api, {"id": anna}) == (False, "objected")


def test_a_clients_confirm_by_subject_id_alone_is_400_email_required(api: Api, anna: str) -> None:
    problem(write(api, {"id": anna}, action="confirm", evidence=EVIDENCE), 400, "email_required")


def test_a_clients_confirm_with_evidence_for_the_subjects_address_grants(api: Api) -> None:
    subject = write(api, ANNAS, channel="sms").json()["subject"]

    response = write(api, ANNAS, action="confirm", evidence=EVIDENCE)

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "granted"
    assert check(api, {"id": subject}) == (True, "granted")


# ---------------------------------------------------------------------------------------------------------
# The person's own act lifts only the person's identifiers from the suppression list
# ---------------------------------------------------------------------------------------------------------
def test_the_persons_own_grant_does_not_lift_another_address_named_beside_them(api: Api) -> None:
    subject = write(api, ANNAS, channel="sms").json()["subject"]
    suppress("email", ANNA)
    suppress("email", MALLORY)

    consent_record(
        command=ConsentCommand(
            reference=parse_reference({"id": subject, "email": MALLORY}),
            purpose="newsletter",
            channel="sms",
            action="grant",
            notice_version="2026-01",
            source="portal",
            actor="subject",
        ),
        internal=True,
    )

    assert not suppressed("email", ANNA)
    assert suppressed("email", MALLORY)
    assert Subject.objects.count() == 1


# ---------------------------------------------------------------------------------------------------------
# A send gates the address the client will deliver to, not only the person it selects
# ---------------------------------------------------------------------------------------------------------
def test_a_send_blocks_a_recipient_whose_address_is_not_the_selected_subjects(api: Api) -> None:
    ben = {"customer_number": "C-2", "phone": "+49 171 1234567"}
    assert write(api, ben, channel="sms").status_code == 201
    recipients = [
        {"customer_number": "C-2", "phone": "+49 171 2345678"},  # Ben's customer number, a stranger's phone
        {"customer_number": "C-2"},
        {"customer_number": "C-2", "phone": "0171 1234567"},  # Ben's own phone, written another way
        {"customer_number": "C-2", "email": MALLORY},  # not the channel's address kind: only selects
    ]

    response = api.post(
        "/api/v1/sends", {"campaign": "spring", "purpose": "newsletter", "channel": "sms", "recipients": recipients}
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert [(b["index"], b["reason"]) for b in body["blocked"]] == [(0, "unknown_subject")]
    assert [a["index"] for a in body["allowed"]] == [1, 2, 3]
