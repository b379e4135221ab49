"""The preference centre: every consent switch off until chosen (Art. 25, Planet49), one event per change with
source `portal` and evidence, double opt-in waits for the mailed confirmation, legitimate interest shown active with
a switch to object, one switch for "no marketing at all" (Art. 21(3)), contract purposes as information."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from consent.ledger.chain import event_evidence
from consent.models import Channel, Confirmation, ConsentEvent, Objection, Purpose
from subjects.keys import data_key
from subjects.models import Identifier, Subject
from tests.api import Api
from tests.catalogue import gpc_catalogue
from tests.factories import apply_catalogue
from tests.portal.conftest import UA, csrf, known_person, sign_in

pytestmark = pytest.mark.usefixtures("portal")
PREFS = "/portal/preferences"


def page(client: Client) -> str:
    response = client.get(PREFS)
    assert response.status_code == 200
    text: str = response.content.decode()
    return text


def switches(html: str) -> dict[str, bool]:
    """name -> checked, for every checkbox on the page."""
    found = {}
    for tag in re.findall(r"<input [^>]*type=\"checkbox\"[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if name:
            found[name.group(1)] = " checked" in tag
    return found


def save(client: Client, on: list[str], extra: dict[str, str] | None = None) -> Any:
    html = page(client)
    data: dict[str, Any] = {"csrfmiddlewaretoken": csrf(client.get(PREFS))}
    for hidden in re.findall(r'<input type="hidden" name="(notice:[^"]+)" value="([^"]*)"', html):
        data[hidden[0]] = hidden[1]
    for name in on:
        data[name] = "on"
    data.update(extra or {})
    return client.post(PREFS, data)


def check(api: Api, email: str, purpose: str, channel: str) -> tuple[bool, str]:
    body = api.post("/api/v1/consents/check", {"subject": {"email": email}, "purpose": purpose, "channel": channel})
    return body.json()["allowed"], body.json()["reason"]


def portal_events() -> list[ConsentEvent]:
    return list(ConsentEvent.objects.filter(source="portal").order_by("recorded_at", "seq"))


def test_every_consent_switch_is_off_until_chosen_and_legitimate_interest_shows_active() -> None:
    html = page(sign_in("new@example.de"))

    found = switches(html)
    assert {k: v for k, v in found.items() if k.startswith("consent:")} == {
        "consent:newsletter:email": False,
        "consent:newsletter:push": False,
        "consent:newsletter:sms": False,
    }
    assert found["object:offers"] is False
    assert found["no_marketing"] is False
    assert "Wir nutzen das" in html  # what a legitimate interest does while nobody objects, not "Aktiv"
    assert "Aktiv" not in html
    assert "Wir senden Ihnen unseren Newsletter." in html  # the current notice text ...
    assert "Textversion 2026-01" in html  # ... and its version
    assert 'name="notice:newsletter" value="2026-01"' in html


def test_contract_purposes_are_listed_as_information_without_a_switch() -> None:
    html = page(sign_in("new@example.de"))
    assert "Order updates" in html
    assert "order-updates" not in "".join(switches(html))


def test_the_notice_follows_the_language() -> None:
    client = sign_in("new@example.de")
    english = client.get(PREFS + "?lang=en").content.decode()
    assert "We send you our newsletter." in english
    assert '<html lang="en">' in english
    assert "My choices" in english
    assert '<html lang="en">' in client.get(PREFS).content.decode()  # the choice is kept in the cookie


def test_a_localised_catalogue_name_shows_in_the_pages_language() -> None:
    # Given a channel and a purpose named in both languages (API.md: a name may be texts per language)
    Channel.objects.filter(key="email").update(names={"de": "Elektronische Post", "en": "Electronic mail"})
    Purpose.objects.filter(key="newsletter").update(names={"de": "Rundbrief", "en": "Our letter"})
    client = sign_in("new@example.de")
    # Then each page shows its own language's name
    english = client.get(PREFS + "?lang=en").content.decode()
    assert "Electronic mail" in english
    assert "Our letter" in english
    german = client.get(PREFS + "?lang=de").content.decode()
    assert "Elektronische Post" in german
    assert "Rundbrief" in german


def test_the_language_follows_the_browser() -> None:
    client = sign_in("new@example.de")
    english = Client(HTTP_ACCEPT_LANGUAGE="en-GB,en;q=0.9")
    english.cookies = client.cookies
    assert "My choices" in english.get(PREFS).content.decode()
    german = Client(HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    german.cookies = client.cookies
    assert "Meine Einstellungen" in german.get(PREFS).content.decode()


def test_a_grant_records_one_portal_event_with_evidence_and_takes_effect(api: Api) -> None:
    client = sign_in("anna@example.de")

    response = save(client, ["consent:newsletter:sms"])

    assert response.status_code == 302
    events = portal_events()
    assert [(e.action, e.purpose, e.channel, e.notice_version) for e in events] == [
        ("grant", "newsletter", "sms", "2026-01")
    ]
    event = events[0]
    assert event.actor == "subject"
    evidence = event_evidence(event, data_key(Subject.objects.get(pk=event.subject_id)))
    assert evidence["ip"] == "203.0.113.0"
    assert evidence["user_agent"] == UA
    assert evidence["form"] == "portal-preferences"
    assert evidence["signin"] == "email-link"
    assert check(api, "anna@example.de", "newsletter", "sms") == (True, "granted")
    assert switches(page(client))["consent:newsletter:sms"] is True


def test_the_first_save_of_a_person_nobody_knew_creates_their_subject() -> None:
    client = sign_in("new@example.de")
    assert Subject.objects.count() == 0
    save(client, ["consent:newsletter:push"])
    assert Subject.objects.count() == 1
    assert portal_events()[0].subject_id == Subject.objects.get().pk
    assert switches(page(client))["consent:newsletter:push"] is True


def test_withdrawing_is_as_easy_as_granting(api: Api) -> None:
    known_person("anna@example.de", channel="sms")
    client = sign_in("anna@example.de")
    assert switches(page(client))["consent:newsletter:sms"] is True

    save(client, [])

    assert [(e.action, e.channel) for e in portal_events()] == [("withdraw", "sms")]
    assert check(api, "anna@example.de", "newsletter", "sms") == (False, "withdrawn")
    assert switches(page(client))["consent:newsletter:sms"] is False


def test_one_event_per_change() -> None:
    known_person("anna@example.de", channel="sms")
    client = sign_in("anna@example.de")
    save(client, ["consent:newsletter:push"])  # push on, sms off
    assert sorted((e.action, e.channel) for e in portal_events()) == [("grant", "push"), ("withdraw", "sms")]


def test_a_form_posted_twice_records_nothing_the_second_time() -> None:
    client = sign_in("anna@example.de")
    token = csrf(client.get(PREFS))
    form = {"csrfmiddlewaretoken": token, "notice:newsletter": "2026-01", "consent:newsletter:sms": "on"}
    client.post(PREFS, form)
    again = client.post(PREFS, form)
    assert again.status_code == 302
    assert len(portal_events()) == 1
    assert "Es hat sich nichts geändert" in client.get(PREFS).content.decode()


def test_a_double_opt_in_channel_waits_for_the_confirmation(api: Api) -> None:
    client = sign_in("anna@example.de")

    save(client, ["consent:newsletter:email"])

    html = client.get(PREFS).content.decode()
    assert "Wartet auf Ihre Bestätigung" in html
    assert "Wir haben Ihnen eine E-Mail geschickt" in html
    assert switches(html)["consent:newsletter:email"] is True
    assert check(api, "anna@example.de", "newsletter", "email") == (False, "pending_confirmation")
    assert Confirmation.objects.filter(purpose="newsletter", channel="email", used_at__isnull=True).count() == 1


def test_objecting_to_a_legitimate_interest_purpose(api: Api) -> None:
    client = sign_in("anna@example.de")
    save(client, ["object:offers"])
    assert [(e.action, e.purpose, e.channel) for e in portal_events()] == [("object", "offers", "")]
    assert check(api, "anna@example.de", "offers", "post") == (False, "objected")
    html = page(client)
    assert "Widersprochen" in html
    assert re.search(r'<input [^>]*name="object:offers"[^>]*checked[^>]*disabled|disabled[^>]*checked', html)


def test_no_marketing_at_all_objects_to_direct_marketing_on_every_channel(api: Api) -> None:
    known_person("anna@example.de", channel="sms")
    client = sign_in("anna@example.de")
    save(client, ["consent:newsletter:sms", "no_marketing"])

    events = portal_events()
    assert [(e.action, e.purpose, e.channel) for e in events] == [("object", "", "")]
    assert Objection.objects.filter(purpose="").count() == 1
    assert check(api, "anna@example.de", "newsletter", "sms") == (False, "objected")
    assert check(api, "anna@example.de", "offers", "post") == (False, "objected")
    assert check(api, "anna@example.de", "order-updates", "email") == (True, "contract")
    html = page(client)
    assert "jeder Werbung widersprochen" in html


def test_no_marketing_at_all_works_for_a_person_nobody_knew(api: Api) -> None:
    client = sign_in("new@example.de")
    save(client, ["no_marketing"])
    assert Objection.objects.filter(purpose="").count() == 1
    assert check(api, "new@example.de", "newsletter", "sms") == (False, "objected")


def test_a_standing_objection_cannot_be_switched_off_by_a_forged_post() -> None:
    client = sign_in("anna@example.de")
    save(client, ["no_marketing"])
    save(client, [])  # the disabled switch is not sent: it keeps its value
    assert Objection.objects.filter(purpose="").count() == 1
    assert len(portal_events()) == 1


def test_an_unknown_notice_version_records_nothing() -> None:
    client = sign_in("anna@example.de")
    response = save(client, ["consent:newsletter:sms"], {"notice:newsletter": "1999-01"})
    assert response.status_code == 302
    assert portal_events() == []
    assert "nicht alle gespeichert" in client.get(PREFS).content.decode()


def test_a_session_whose_address_left_the_subject_no_longer_acts_on_that_subjects_ledger() -> None:
    # given Anna's subject and a portal session signed in with her address
    anna = known_person("anna@example.de")
    client = sign_in("anna@example.de")
    before = ConsentEvent.objects.filter(subject_id=anna).count()

    # when the address is taken off her subject (rectified away) and the session then saves a grant
    Identifier.objects.filter(subject_id=anna, kind="email").delete()
    save(client, ["consent:newsletter:sms", "consent:newsletter:push"])

    # then nothing was recorded as her own act on her ledger: the address now acts for itself only
    assert ConsentEvent.objects.filter(subject_id=anna).count() == before
    assert Subject.objects.exclude(pk=anna).count() == 1


def test_a_save_from_a_browser_sending_gpc_objects_to_the_gpc_purposes_and_says_so() -> None:
    # Given targeted ads and offers by phone marked gpc, and Anna with a browser that sends Global Privacy Control
    apply_catalogue(gpc_catalogue())
    known_person("anna@example.de")
    client = sign_in("anna@example.de")
    assert 'id="gpc-note"' not in page(client)
    shown = client.get(PREFS, HTTP_SEC_GPC="1").content.decode()
    assert 'id="gpc-note"' in shown
    assert "Global Privacy Control" in shown
    assert not Objection.objects.filter(purpose="offers").exists()  # looking records nothing

    # When she saves (switching SMS newsletters on)
    data = {"csrfmiddlewaretoken": csrf(client.get(PREFS)), "consent:newsletter:sms": "on"}
    data |= dict(re.findall(r'<input type="hidden" name="(notice:[^"]+)" value="([^"]*)"', shown))
    after = client.post(PREFS, data, HTTP_SEC_GPC="1", follow=True).content.decode()

    # Then her choice is saved, she objects to both gpc purposes by the signal, and the page tells her
    objected = ConsentEvent.objects.filter(source="gpc", action="object").values_list("purpose", flat=True)
    assert sorted(objected) == ["phone-offers", "targeted-ads"]
    assert set(Objection.objects.values_list("purpose", flat=True)) == {"phone-offers", "targeted-ads"}
    assert "Wir beachten es und haben für Sie widersprochen: Offers by phone, Targeted ads." in after
    assert switches(after)["consent:newsletter:sms"] is True


def test_a_gpc_purpose_the_person_switches_on_herself_is_not_objected_again_by_her_browser(api: Api) -> None:
    # Given the signal honoured once for Anna (both gpc purposes objected)
    apply_catalogue(gpc_catalogue())
    known_person("anna@example.de")
    client = sign_in("anna@example.de")

    def save_with_signal(on: list[str]) -> str:
        html = client.get(PREFS, HTTP_SEC_GPC="1").content.decode()
        data = {"csrfmiddlewaretoken": csrf(client.get(PREFS)), **dict.fromkeys(on, "on")}
        data |= dict(re.findall(r'<input type="hidden" name="(notice:[^"]+)" value="([^"]*)"', html))
        return client.post(PREFS, data, HTTP_SEC_GPC="1", follow=True).content.decode()

    save_with_signal(["consent:newsletter:sms"])
    assert check(api, "anna@example.de", "phone-offers", "phone") == (False, "objected")

    # When she switches phone offers on herself, then saves again later, the browser still sending the signal
    save_with_signal(["consent:newsletter:sms", "consent:phone-offers:phone"])
    again = save_with_signal(["consent:newsletter:sms", "consent:phone-offers:phone"])

    # Then her own choice stands: the signal was honoured once for that purpose, and is not turned against her
    assert check(api, "anna@example.de", "phone-offers", "phone") == (True, "granted")
    assert check(api, "anna@example.de", "targeted-ads", "web") == (False, "objected")
    assert ConsentEvent.objects.filter(source="gpc").count() == 2
    assert "haben für Sie widersprochen" not in again
