"""A new e-mail address or phone number entered in the portal counts only once its owner confirms it (a link mailed
to it, a code sent by SMS to it); another person's address is refused without saying whose, also when it became
theirs between asking and confirming."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from subjects import sms
from subjects.identity import Reference
from subjects.models import IdentifierChange, RightsRequest
from subjects.portal.signin import email_open
from subjects.selectors import subject_resolve
from tests.factories import ingest
from tests.portal.conftest import csrf, post_form, sign_in
from tests.rights.helpers import drain, recorded_at

pytestmark = pytest.mark.usefixtures("portal")

FORM = "/portal/rights/rectification"
CODE = "/portal/rights/rectification/code"
ADDRESS_LINK = re.compile(r"http://testserver(/portal/address/[0-9a-f-]{36}/[A-Za-z0-9_\-]+)")
ANNA_PHONE, NEW_PHONE = "+491715550101", "+491715550202"


@pytest.fixture(autouse=True)
def _empty_sms_outbox() -> None:
    sms.outbox.clear()


def customer(email: str, phone: str, name: str) -> uuid.UUID:
    return ingest(
        "pos",
        f"contact-{email}",
        {"email": email, "phone": phone},
        category="contact",
        data={"name": name},
        occurred_at=recorded_at(),
        profile=True,
    ).subject_id


def owner(kind: str, value: str) -> uuid.UUID | None:
    return subject_resolve(reference=Reference(None, ((kind, value),)))


def change_contact(client: Client, **fields: str) -> Any:
    """Post the correction form as the person would: what is on file, with some fields changed."""
    page = client.get(FORM)
    current = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.content.decode()))
    current.pop("csrfmiddlewaretoken", None)
    return client.post(FORM, {**current, **fields, "csrfmiddlewaretoken": csrf(page)})


def code_sent_to(phone: str) -> str:
    sent = [m for m in sms.outbox if m.to == phone]
    assert sent, f"no SMS to {phone}"
    match = re.search(r"\b(\d{6})\b", sent[-1].text)
    assert match, sent[-1].text
    return match.group(1)


def address_link(to: str) -> str:
    sent = [m for m in mail.outbox if to in m.to]
    assert sent, f"no mail to {to}"
    match = ADDRESS_LINK.search(sent[-1].body)
    assert match, sent[-1].body
    return match.group(1)


def enter_code(client: Client, code: str) -> Any:
    return post_form(client, CODE, {"code": code})


# ---------------------------------------------------------------------------------------------------------
# The reviewer's reproduction
# ---------------------------------------------------------------------------------------------------------
def test_it_refuses_to_let_a_person_take_over_another_persons_phone_number() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    customer("mallory@example.de", "+491715550999", "Mallory")
    mallory = sign_in("mallory@example.de")

    response = change_contact(mallory, phone="0171 5550101")

    assert response.status_code == 400
    html = response.content.decode()
    assert "Diese Nummer kann nicht verwendet werden." in html
    assert "Anna" not in html
    assert "anna@example.de" not in html
    assert sms.outbox == []
    assert not RightsRequest.objects.exists()
    assert owner("phone", ANNA_PHONE) == anna  # the number still names Anna, and only her


def test_another_persons_e_mail_address_is_refused_without_saying_whose() -> None:
    customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    bob = customer("bob@example.de", "+491715550303", "Bob")
    client = sign_in("bob@example.de")
    mail.outbox.clear()

    response = change_contact(client, email="ANNA@Example.de")

    assert response.status_code == 400
    html = response.content.decode()
    assert "Diese Adresse kann nicht verwendet werden." in html
    assert "Anna" not in html
    assert "anna@example.de" not in html
    assert mail.outbox == []
    assert owner("email", "bob@example.de") == bob
    # The refusal counts against the hourly limit like any change, so the form cannot probe many addresses.
    assert IdentifierChange.objects.get(subject_id=bob).status == "refused"
    assert IdentifierChange.objects.get(subject_id=bob).value_enc is None


# ---------------------------------------------------------------------------------------------------------
# E-mail by link
# ---------------------------------------------------------------------------------------------------------
def test_a_new_e_mail_address_counts_only_once_confirmed_by_the_link_and_the_session_goes_on() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    mail.outbox.clear()

    response = change_contact(client, email="Anna.Neu@Example.de")

    assert response.status_code == 200
    assert "Bitte bestätigen Sie Ihre neue E-Mail-Adresse" in response.content.decode()
    assert owner("email", "anna@example.de") == anna  # nothing changed yet
    assert owner("email", "anna.neu@example.de") is None
    change = IdentifierChange.objects.get(subject_id=anna)
    link = address_link("anna.neu@example.de")
    token = link.rsplit("/", 1)[1]
    assert b"anna.neu" not in bytes(change.value_enc)
    assert token not in change.secret_hash

    prefetch = Client().get(link)  # a mail scanner, in another browser
    assert prefetch.status_code == 200
    assert "a•••@example.de" in prefetch.content.decode()
    assert owner("email", "anna.neu@example.de") is None

    done = client.post(link, {"csrfmiddlewaretoken": csrf(client.get(link))})

    assert done.status_code == 200, done.content.decode()
    assert owner("email", "anna.neu@example.de") == anna
    assert owner("email", "anna@example.de") is None
    stored = IdentifierChange.objects.get(subject_id=anna)
    assert (stored.status, stored.value_enc, stored.secret_hash) == ("confirmed", None, "")
    assert email_open(client.session["assent.portal"]["email"]) == "anna.neu@example.de"
    assert client.get("/portal/preferences").status_code == 200
    assert client.post(link, {"csrfmiddlewaretoken": csrf(client.get(FORM))}).status_code == 409  # once only
    request = RightsRequest.objects.get(subject_id=anna, kind="rectification")
    assert drain(request.pk).status == "completed"
    assert request.details == {"identifiers": ["email"], "profile": []}


def test_a_link_confirmed_in_another_browser_moves_the_first_browsers_session_to_the_new_address() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    mail.outbox.clear()
    change_contact(client, email="anna.neu@example.de")
    link = address_link("anna.neu@example.de")
    phone = Client(enforce_csrf_checks=True)  # the mail app on her phone

    assert phone.post(link, {"csrfmiddlewaretoken": csrf(phone.get(link))}).status_code == 200

    assert owner("email", "anna.neu@example.de") == anna
    assert client.get("/portal/preferences").status_code == 200
    assert email_open(client.session["assent.portal"]["email"]) == "anna.neu@example.de"


def test_the_confirmation_mail_and_page_speak_english_to_an_english_speaker() -> None:
    customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    client.get("/portal/preferences?lang=en")
    mail.outbox.clear()

    response = change_contact(client, email="anna.neu@example.de")

    assert "Please confirm your new e-mail address" in response.content.decode()
    assert mail.outbox[-1].subject == "Please confirm your new e-mail address"
    assert "Open this link to confirm it" in mail.outbox[-1].body


# ---------------------------------------------------------------------------------------------------------
# Phone by code
# ---------------------------------------------------------------------------------------------------------
def test_a_new_phone_number_counts_only_once_confirmed_with_the_code_sent_to_it() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")

    response = change_contact(client, phone="0171 5550202")

    assert response.status_code == 302
    assert response["Location"] == CODE
    code = code_sent_to(NEW_PHONE)
    assert owner("phone", NEW_PHONE) is None
    assert owner("phone", ANNA_PHONE) == anna
    change = IdentifierChange.objects.get(subject_id=anna)
    assert NEW_PHONE.encode() not in bytes(change.value_enc)
    assert code not in change.secret_hash

    wrong = enter_code(client, "000000" if code != "000000" else "111111")
    assert wrong.status_code == 400
    assert owner("phone", NEW_PHONE) is None

    right = enter_code(client, code)

    assert right.status_code == 302
    assert owner("phone", NEW_PHONE) == anna
    assert owner("phone", ANNA_PHONE) is None
    request = RightsRequest.objects.get(subject_id=anna, kind="rectification")
    done = drain(request.pk)
    assert done.status == "completed"
    assert done.result["rectified"] == {"identifiers": ["phone"], "profile": []}


def test_wrong_codes_void_the_change_after_the_allowed_attempts() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    change_contact(client, phone=NEW_PHONE)
    code = code_sent_to(NEW_PHONE)
    wrong = "000000" if code != "000000" else "111111"

    for left in (4, 3, 2, 1):
        response = enter_code(client, wrong)
        assert response.status_code == 400
        assert str(left) in response.content.decode() or left == 1
    assert enter_code(client, wrong).status_code == 409  # the fifth wrong code ends it

    assert client.get(CODE).status_code == 410  # the right code has nothing left to confirm
    assert owner("phone", NEW_PHONE) is None
    assert owner("phone", ANNA_PHONE) == anna
    assert IdentifierChange.objects.get(subject_id=anna).status == "failed"


def test_an_expired_code_changes_nothing() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    change_contact(client, phone=NEW_PHONE)
    code = code_sent_to(NEW_PHONE)
    change = IdentifierChange.objects.get(subject_id=anna)

    with freeze_time(timezone.now() + timedelta(minutes=11)):
        from subjects.portal.addresses import Outcome, address_change_confirm

        assert address_change_confirm(change_id=change.pk, secret=code).outcome == Outcome.FAILED

    assert owner("phone", NEW_PHONE) is None
    assert owner("phone", ANNA_PHONE) == anna
    assert IdentifierChange.objects.get(pk=change.pk).value_enc is None


# ---------------------------------------------------------------------------------------------------------
# Taken between asking and confirming
# ---------------------------------------------------------------------------------------------------------
def test_a_number_that_became_someone_elses_meanwhile_is_refused_at_confirmation() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    change_contact(client, phone=NEW_PHONE)
    code = code_sent_to(NEW_PHONE)
    bob = customer("bob@example.de", NEW_PHONE, "Bob")  # the till records the number as Bob's

    response = enter_code(client, code)

    assert response.status_code == 409
    assert "Diese Adresse kann nicht verwendet werden." in response.content.decode()
    assert "Bob" not in response.content.decode()
    assert owner("phone", NEW_PHONE) == bob
    assert owner("phone", ANNA_PHONE) == anna
    assert not RightsRequest.objects.exists()


def test_an_e_mail_address_that_became_someone_elses_meanwhile_is_refused_at_confirmation() -> None:
    anna = customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    mail.outbox.clear()
    change_contact(client, email="shared@example.de")
    link = address_link("shared@example.de")
    carl = customer("shared@example.de", "+491715550404", "Carl")

    response = client.post(link, {"csrfmiddlewaretoken": csrf(client.get(FORM))})

    assert response.status_code == 409
    assert owner("email", "shared@example.de") == carl
    assert owner("email", "anna@example.de") == anna


def test_changes_are_limited_per_hour() -> None:
    customer("anna@example.de", ANNA_PHONE, "Anna Becker")
    client = sign_in("anna@example.de")
    for i in range(5):
        assert change_contact(client, phone=f"+49171555{i:04d}").status_code == 302
    assert change_contact(client, phone="+491715559999").status_code == 429
    assert len(sms.outbox) == 5
