"""Signing in by e-mail link: single use, short-lived, the same answer for every address, rate limited, a
confirmation step in another browser, sign-out that really ends the session."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from consent.models import ConsentEvent
from subjects.models import Identifier, Subject
from tests.portal.conftest import ask_for_link, browser, csrf, known_person, link_from_mail, post_form, sign_in

pytestmark = pytest.mark.usefixtures("portal")


def test_the_link_from_the_mail_signs_in_in_the_browser_that_asked(portal: None) -> None:
    client = browser()
    response = ask_for_link(client, "Anna@Example.DE ")
    assert response.status_code == 302
    assert response["Location"] == "/portal/sent"

    message = mail.outbox[-1]
    assert message.to == ["anna@example.de"]
    assert "15" in message.body
    signed_in = client.get(link_from_mail("anna@example.de"))

    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/portal/preferences"
    assert client.get("/portal/preferences").status_code == 200


def test_a_link_works_once(portal: None) -> None:
    client = browser()
    ask_for_link(client, "anna@example.de")
    link = link_from_mail("anna@example.de")
    assert client.get(link).status_code == 302

    again = browser().get(link)

    assert again.status_code == 410
    assert "bereits verwendet" in again.content.decode()


def test_a_link_expires_after_fifteen_minutes(portal: None) -> None:
    client = browser()
    ask_for_link(client, "anna@example.de")
    link = link_from_mail("anna@example.de")

    with freeze_time(timedelta(minutes=16), tick=True):
        response = client.get(link)

    assert response.status_code == 410
    assert "abgelaufen" in response.content.decode()
    assert client.get("/portal/preferences").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/portal/signin/forged",
        "/portal/signin/abc:1tQ0aB:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    ],
)
def test_a_forged_link_shows_a_clear_page_and_signs_in_nobody(portal: None, path: str) -> None:
    client = browser()
    response = client.get(path)
    assert response.status_code == 404
    assert "nicht gültig" in response.content.decode()
    assert client.get("/portal/preferences").status_code == 302


def test_a_tampered_link_does_not_sign_in(portal: None) -> None:
    client = browser()
    ask_for_link(client, "anna@example.de")
    link = link_from_mail("anna@example.de")
    token = link.rsplit("/", 1)[1]
    tampered = link[: -len(token)] + ("A" if token[0] != "A" else "B") + token[1:]

    assert client.get(tampered).status_code == 404
    assert client.get("/portal/preferences").status_code == 302


def test_the_answer_is_the_same_for_known_and_unknown_addresses(portal: None) -> None:
    known_person("known@example.de")
    answers = []
    for email in ("known@example.de", "nobody@example.de"):
        client = browser()
        token = csrf(client.get("/portal/"))
        # The same work for every address: no database query at all, so nothing to time.
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/portal/", {"email": email, "csrfmiddlewaretoken": token})
        sent = client.get(response["Location"])
        answers.append((response.status_code, response["Location"], len(queries), sent.content.decode()))

    assert answers[0] == answers[1]
    assert answers[0][2] == 0
    bodies = [re.sub(r"/portal/signin/\S+", "LINK", m.body) for m in mail.outbox]
    subjects = [m.subject for m in mail.outbox]
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert subjects[0] == subjects[1]


def test_an_invalid_address_is_a_form_error_and_sends_nothing(portal: None) -> None:
    client = browser()
    response = ask_for_link(client, "not an address")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.content.decode()
    assert mail.outbox == []


def test_sign_in_mails_are_limited_per_address_and_the_answer_stays_the_same(portal: None, settings: Any) -> None:
    settings.ASSENT_SIGNIN_PER_ADDRESS = 3
    statuses = [ask_for_link(Client(REMOTE_ADDR=f"198.51.100.{i}"), "anna@example.de").status_code for i in range(5)]
    assert statuses == [302, 302, 302, 302, 302]
    assert len(mail.outbox) == 1
    assert ask_for_link(browser(), "other@example.de").status_code == 302


def test_sign_in_requests_are_limited_per_ip(portal: None, settings: Any) -> None:
    settings.ASSENT_SIGNIN_PER_IP = 2
    client = browser()
    statuses = [ask_for_link(client, f"person{i}@example.de").status_code for i in range(4)]
    assert statuses == [302, 302, 429, 429]
    assert len(mail.outbox) == 2
    assert "Zu viele" in ask_for_link(client, "x@example.de").content.decode()


def test_a_link_opened_in_another_browser_asks_first_and_consumes_nothing(portal: None) -> None:
    asking = browser()
    ask_for_link(asking, "anna@example.de")
    link = link_from_mail("anna@example.de")
    other = browser()

    shown = other.get(link)

    assert shown.status_code == 200
    html = shown.content.decode()
    assert "a•••@example.de" in html
    assert "anna@example.de" not in html
    assert other.get("/portal/preferences").status_code == 302  # not signed in by looking
    confirmed = other.post(link, {"csrfmiddlewaretoken": csrf(shown)})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/portal/preferences"
    assert other.get("/portal/preferences").status_code == 200
    assert asking.get(link).status_code == 410  # used up by the confirmation


def test_the_confirmation_in_another_browser_needs_its_csrf_token(portal: None) -> None:
    ask_for_link(browser(), "anna@example.de")
    link = link_from_mail("anna@example.de")
    other = browser()
    other.get(link)

    refused = other.post(link, {})

    assert refused.status_code == 403
    assert other.get("/portal/preferences").status_code == 302
    assert other.post(link, {"csrfmiddlewaretoken": csrf(other.get(link))}).status_code == 302


def test_a_mail_scanner_prefetching_the_link_does_not_use_it_up(portal: None) -> None:
    asking = browser()
    ask_for_link(asking, "anna@example.de")
    link = link_from_mail("anna@example.de")

    Client().get(link)
    Client().head(link)

    assert asking.get(link).status_code == 302


def test_sign_out_ends_the_session_and_an_old_cookie_is_worth_nothing(portal: None, settings: Any) -> None:
    client = sign_in("anna@example.de")
    old_cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    out = client.post("/portal/signout", {"csrfmiddlewaretoken": csrf(client.get("/portal/preferences"))})

    assert out.status_code == 200
    assert client.get("/portal/preferences").status_code == 302
    replay = browser()
    replay.cookies[settings.SESSION_COOKIE_NAME] = old_cookie
    response = replay.get("/portal/preferences")
    assert response.status_code == 302
    assert response["Location"] == "/portal/"
    forged = replay.post("/portal/preferences", {"consent:newsletter:sms": "on"})
    assert forged.status_code in (302, 403)
    assert ConsentEvent.objects.filter(source="portal").count() == 0


def test_sign_out_needs_a_post(portal: None) -> None:
    client = sign_in("anna@example.de")
    assert client.get("/portal/signout").status_code == 405
    assert client.get("/portal/preferences").status_code == 200


def test_the_session_holds_no_address_in_plain_text(portal: None) -> None:
    known_person("anna@example.de")
    sign_in("anna@example.de")
    stored = [s.get_decoded() for s in Session.objects.all()]
    assert stored
    assert "anna@example.de" not in repr(stored)
    assert "example.de" not in repr(stored)


def test_a_person_nobody_knows_can_sign_in_and_nothing_is_created_by_signing_in(portal: None) -> None:
    client = sign_in("new@example.de")
    page = client.get("/portal/preferences")
    assert page.status_code == 200
    assert Subject.objects.count() == 0
    assert Identifier.objects.count() == 0


def test_the_portal_pages_need_a_sign_in(portal: None) -> None:
    client = browser()
    for path in (
        "/portal/preferences",
        "/portal/history",
        "/portal/rights",
        "/portal/rights/erasure",
        "/portal/rights/00000000-0000-0000-0000-000000000000",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == "/portal/"


def test_a_signed_in_person_opening_the_start_page_goes_to_their_choices(portal: None) -> None:
    client = sign_in("anna@example.de")
    response = client.get("/portal/")
    assert response.status_code == 302
    assert response["Location"] == "/portal/preferences"


def test_a_session_ends_after_its_idle_time(portal: None) -> None:
    client = sign_in("anna@example.de")
    with freeze_time(timedelta(minutes=61), tick=True):
        assert client.get("/portal/preferences").status_code == 302


def test_forms_without_a_csrf_token_change_nothing(portal: None) -> None:
    client = sign_in("anna@example.de")
    response = client.post("/portal/preferences", {"consent:newsletter:sms": "on"})
    assert response.status_code == 403
    assert "abgelaufen" in response.content.decode()
    assert ConsentEvent.objects.count() == 0
    ok = post_form(client, "/portal/preferences", {"consent:newsletter:sms": "on"})
    assert ok.status_code == 302
