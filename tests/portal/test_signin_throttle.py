"""Sign-in requests for someone else's address: they limit the mails that address gets, never its owner."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from freezegun import freeze_time

from tests.portal.conftest import UA, ask_for_link, browser, csrf, link_from_mail

pytestmark = pytest.mark.usefixtures("portal")


def attacker(i: int) -> Client:
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT=UA, REMOTE_ADDR=f"198.51.100.{i}")


def test_the_owner_still_gets_in_after_an_attacker_asked_for_their_address_many_times(portal: None) -> None:
    for i in range(8):
        assert ask_for_link(attacker(i), "anna@example.de")["Location"] == "/portal/sent"

    owner = browser()
    response = ask_for_link(owner, "anna@example.de")
    assert response.status_code == 302
    assert response["Location"] == "/portal/sent"
    # The mailbox holds a link that still works; opened by the owner it signs in (after the confirmation step).
    page = owner.get(link_from_mail("anna@example.de"))
    assert page.status_code == 200
    confirmed = owner.post(link_from_mail("anna@example.de"), {"csrfmiddlewaretoken": csrf(page)})
    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/portal/preferences"


def test_requests_for_one_address_mail_it_at_most_once_per_gap(portal: None) -> None:
    for i in range(8):
        ask_for_link(attacker(i), "anna@example.de")
    assert len(mail.outbox) == 1
    assert ask_for_link(attacker(9), "other@example.de").status_code == 302
    assert len(mail.outbox) == 2


def test_after_the_gap_the_address_gets_a_new_mail(portal: None, settings: Any) -> None:
    settings.ASSENT_SIGNIN_PER_ADDRESS = 3600  # a one-second gap, so the test can wait it out for real
    ask_for_link(attacker(1), "anna@example.de")
    ask_for_link(attacker(2), "anna@example.de")
    assert len(mail.outbox) == 1
    time.sleep(1.2)
    ask_for_link(browser(), "anna@example.de")
    assert len(mail.outbox) == 2


def test_the_link_a_silent_request_relies_on_outlives_the_gap(portal: None) -> None:
    ask_for_link(attacker(1), "anna@example.de")
    link = link_from_mail("anna@example.de")
    # Default: 5 mails an hour, so a 12-minute gap; the link lives 15. Just before the next mail may go, it works.
    with freeze_time(timedelta(minutes=11, seconds=59), tick=True):
        page = browser().get(link)
    assert page.status_code == 200


def test_a_request_that_sends_nothing_looks_exactly_like_one_that_sends(portal: None) -> None:
    first = ask_for_link(attacker(1), "anna@example.de")
    second = ask_for_link(attacker(2), "anna@example.de")
    assert (first.status_code, first["Location"]) == (second.status_code, second["Location"])
    assert attacker(1).get(first["Location"]).content == attacker(2).get(second["Location"]).content
    assert len(mail.outbox) == 1


def test_after_using_a_link_the_owner_gets_a_new_one_at_once(portal: None) -> None:
    owner = browser()
    ask_for_link(owner, "anna@example.de")
    assert owner.get(link_from_mail("anna@example.de")).status_code == 302
    owner.post("/portal/signout", {"csrfmiddlewaretoken": csrf(owner.get("/portal/preferences"))})

    again = browser()
    ask_for_link(again, "anna@example.de")
    assert len(mail.outbox) == 2
    assert again.get(link_from_mail("anna@example.de"))["Location"] == "/portal/preferences"


def test_one_client_asking_for_many_addresses_is_still_throttled(portal: None, settings: Any) -> None:
    settings.ASSENT_SIGNIN_PER_IP = 2
    client = browser()
    statuses = [ask_for_link(client, f"person{i}@example.de").status_code for i in range(3)]
    assert statuses == [302, 302, 429]


def test_behind_a_trusted_proxy_each_person_has_their_own_request_budget(portal: None, settings: Any) -> None:
    settings.ASSENT_SIGNIN_PER_IP = 2
    settings.ASSENT_TRUSTED_PROXIES = ["10.0.0.1"]

    def via_proxy(person: str) -> Client:
        return Client(enforce_csrf_checks=True, HTTP_USER_AGENT=UA, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=person)

    first, second = via_proxy("198.51.100.1"), via_proxy("198.51.100.2")
    assert [ask_for_link(first, f"a{i}@example.de").status_code for i in range(3)] == [302, 302, 429]
    assert ask_for_link(second, "b@example.de").status_code == 302
