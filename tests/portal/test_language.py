"""One language per page, and German words that mean one thing: a person reading German sees no English catalogue
name and the other way round; the unsubscribe and confirmation pages and the confirmation mail speak the reader's
language only; every German text follows the glossary (subjects/portal/glossary.py); the preference centre's save
bar and badges say what saving will do."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.reader import catalogue_load_file
from consent.catalogue.snapshot import catalogue_forget
from consent.double_opt_in import confirmation_send, confirmation_url
from consent.models import Confirmation
from subjects.portal.glossary import glossary_breaches
from tests.api import Api
from tests.factories import grant
from tests.portal.conftest import browser, post_form, sign_in

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "consent" / "demo" / "catalog.json"
PO = ROOT / "subjects" / "portal" / "locale" / "de" / "LC_MESSAGES" / "django.po"
PREFS = "/portal/preferences"
LANGUAGE_LINKS = re.compile(r'<ul class="lang".*?</ul>', flags=re.S)


def text_of(response: Any) -> str:
    """The page without its language links (which name both languages on purpose)."""
    assert response.status_code in (200, 404), response.status_code
    return LANGUAGE_LINKS.sub("", response.content.decode())


def demo_texts() -> list[dict[str, str]]:
    """Every name and automated-decision text of the demo catalogue, as texts per language."""
    document = json.loads(DEMO.read_text(encoding="utf-8"))
    found = [item["name"] for part in ("channels", "data_categories", "purposes", "sources") for item in document[part]]
    found += [p["automated_decision"] for p in document["purposes"] if "automated_decision" in p]
    return found


@pytest.fixture
def demo(db: None) -> None:
    catalogue_apply(document=catalogue_load_file(str(DEMO)))
    catalogue_forget()  # on_commit does not fire inside the test's transaction


# ---------------------------------------------------------------------------------------------------------
# The catalogue's names
# ---------------------------------------------------------------------------------------------------------
def test_the_demo_catalogue_names_everything_in_german_and_english() -> None:
    for texts in demo_texts():
        assert isinstance(texts, dict), f"{texts!r} is in one language only"
        assert set(texts) == {"de", "en"}, texts
        assert all(texts.values()), texts


@pytest.mark.usefixtures("demo")
def test_a_german_page_shows_no_english_catalogue_name_and_an_english_page_no_german_one() -> None:
    client = sign_in("new@example.de")
    german = text_of(client.get(PREFS + "?lang=de"))
    english = text_of(client.get(PREFS + "?lang=en"))

    for texts in demo_texts():
        if texts["de"] == texts["en"]:  # "Newsletter", "Website": the same word in both
            continue
        assert texts["en"] not in german, f"English {texts['en']!r} on the German page"
        assert texts["de"] not in english, f"German {texts['de']!r} on the English page"
    for shown in ("Persönliche Angebote", "App-Benachrichtigungen", "Briefpost", "Katalog und Angebote per Post"):
        assert shown in german
    assert "Die Angebote werden automatisch" in german  # the automated decision (Art. 22) in German too
    for shown in ("Personal offers", "App notifications", "Letter post", "Catalogue and offers by post"):
        assert shown in english
    assert "Offers are chosen automatically" in english


# ---------------------------------------------------------------------------------------------------------
# The pages reached from e-mails, and the confirmation mail
# ---------------------------------------------------------------------------------------------------------
def unsubscribe_path(api: Api) -> str:
    subject = grant({"email": "anna@example.de"})
    sent = api.post(
        "/api/v1/sends",
        {"campaign": "Frühjahr", "purpose": "newsletter", "channel": "sms", "recipients": [{"id": subject}]},
    )
    url: str = sent.json()["allowed"][0]["unsubscribe_url"]
    return "/u/" + url.split("/u/", 1)[1]


def reader(language: str) -> Client:
    return Client(HTTP_ACCEPT_LANGUAGE=language, HTTP_USER_AGENT="Mozilla/5.0 (Test)")


def test_the_unsubscribe_page_speaks_the_readers_language_only(api: Api) -> None:
    path = unsubscribe_path(api)

    german = text_of(reader("de-DE,de;q=0.9").get(path))
    english = text_of(reader("en-GB,en;q=0.9").get(path))

    assert '<html lang="de">' in german
    assert "<h1>Abbestellen</h1>" in german
    assert "Möchten Sie das abbestellen?" in german
    assert "Unsubscribe" not in german
    assert 'lang="en"' not in german
    assert '<html lang="en">' in english
    assert "<h1>Unsubscribe</h1>" in english
    assert "Do you want to unsubscribe?" in english
    assert "Abbestellen" not in english
    assert "Werbung" not in english
    assert 'lang="de"' not in english
    assert "abmelden" not in german.lower()  # "abmelden" is signing out, never unsubscribing (glossary)


def test_the_unsubscribe_page_follows_the_language_link(api: Api) -> None:
    path = unsubscribe_path(api)
    english = text_of(reader("de").get(path + "?lang=en"))
    assert "<h1>Unsubscribe</h1>" in english
    assert "Abbestellen" not in english


def test_a_forged_link_is_refused_in_one_language() -> None:
    for path in ("/u/" + "A" * 64, "/confirm/forged"):
        german = text_of(reader("de").get(path))
        english = text_of(reader("en").get(path))
        assert "nicht gültig" in german
        assert "not valid" not in german
        assert "not valid" in english
        assert "nicht gültig" not in english


@pytest.mark.usefixtures("portal")
def test_the_confirmation_mail_and_page_speak_the_language_the_person_chose_in() -> None:
    # given a person who switches the newsletter on by e-mail on the English portal
    client = sign_in("anna@example.de")
    client.get(PREFS + "?lang=en")
    post_form(client, PREFS, {"consent:newsletter:email": "on", "notice:newsletter": "2026-01"})
    confirmation = Confirmation.objects.get(purpose="newsletter", channel="email")
    assert confirmation.language == "en"

    # when the worker mails the link (it has no request to take a language from)
    mail.outbox.clear()
    assert confirmation_send(confirmation_id=confirmation.id)

    # then the mail is English only
    sent = mail.outbox[-1]
    assert sent.subject == "Please confirm: Newsletter"
    assert "Please confirm it within" in sent.body
    assert "Guten Tag" not in sent.body
    assert "Bitte" not in sent.body
    assert "---" not in sent.body

    # and the page behind the link speaks whatever its reader reads
    path = confirmation_url(confirmation.id).split("testserver", 1)[-1]
    path = "/confirm/" + path.split("/confirm/", 1)[1]
    english = text_of(reader("en").get(path))
    german = text_of(reader("de").get(path))
    assert "Please confirm your consent" in english
    assert "Yes, I want this" in english
    assert "Bitte" not in english
    assert 'lang="de"' not in english
    assert "Bitte bestätigen Sie Ihre Einwilligung" in german
    assert "Ja, ich möchte das" in german
    assert "Please confirm" not in german
    assert "Yes, I want" not in german
    assert 'lang="en"' not in german
    content = german.split("<main", 1)[1].split("</main>", 1)[0]
    assert "Anmeldung" not in content  # a sign-up is not a sign-in (glossary); the footer's sign-in cookie is


@pytest.mark.usefixtures("portal")
def test_a_german_confirmation_mail_has_no_english_part() -> None:
    client = sign_in("ben@example.de")
    post_form(client, PREFS, {"consent:newsletter:email": "on", "notice:newsletter": "2026-01"})
    confirmation = Confirmation.objects.get(purpose="newsletter", channel="email")
    mail.outbox.clear()

    assert confirmation_send(confirmation_id=confirmation.id)

    sent = mail.outbox[-1]
    assert sent.subject == "Bitte bestätigen Sie: Newsletter"
    assert "Guten Tag," in sent.body
    assert "E-Mail" in sent.body
    assert "Hello" not in sent.body
    assert "confirm" not in sent.body.lower().replace("/confirm/", "")


# ---------------------------------------------------------------------------------------------------------
# The glossary
# ---------------------------------------------------------------------------------------------------------
def po_entries() -> list[tuple[str, str]]:
    """(msgid, msgstr) of every entry of the German catalogue, plural forms as separate pairs."""
    entries: list[tuple[str, str]] = []
    key, texts = "", {"msgid": "", "msgid_plural": "", "msgstr": ""}
    for line in [*PO.read_text(encoding="utf-8").splitlines(), ""]:
        head = re.match(r"^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) \"(.*)\"$", line)
        if head:
            key = head.group(1)
            if key == "msgid" and texts.get("msgid"):
                entries.extend(_pairs(texts))
                texts = {}
            texts[key] = head.group(2)
        elif line.startswith('"') and key:
            texts[key] = texts.get(key, "") + line[1:-1]
    entries.extend(_pairs(texts))
    return [(english.replace('\\"', '"'), german.replace('\\"', '"')) for english, german in entries if english]


def _pairs(texts: dict[str, str]) -> list[tuple[str, str]]:
    english = texts.get("msgid", "")
    found = [(english, texts.get("msgstr", ""))] if "msgstr" in texts else []
    found += [(texts.get("msgid_plural", english), v) for k, v in texts.items() if k.startswith("msgstr[")]
    return found


def test_every_german_text_follows_the_glossary() -> None:
    entries = po_entries()
    assert len(entries) > 250
    breaches = [problem for english, german in entries for problem in glossary_breaches(english, german)]
    assert breaches == []


def test_unsubscribe_is_abbestellen_and_sign_out_is_abmelden() -> None:
    german = dict(po_entries())
    assert german["Unsubscribe"] == "Abbestellen"
    assert german["Sign out"] == "Abmelden"
    assert german["Sign in"] == "Anmelden"
    assert "abbestellen" in german["Just want to unsubscribe?"]
    unsubscribing = [g for e, g in german.items() if "unsubscribe" in e.lower()]
    assert unsubscribing
    assert not [g for g in unsubscribing if "bmeld" in g]


@pytest.mark.parametrize(
    ("english", "german", "breach"),
    [
        ("Unsubscribe", "Abmelden", "abmeld"),
        ("Sign out", "Abbestellen", "abmeld"),
        ("Your e-mail address", "Ihre E-mail-Adresse", "E-Mail"),
        ("Our data protection officer checks it", "Unser Datenschutz prüft es", "Datenschutzteam"),
        ("Someone signed you up", "Jemand hat Sie angemeldet", "anmeld"),
        ("whatever you chose", "egal was Sie gewählt haben", "gleich, was"),
    ],
)
def test_the_glossary_catches_what_it_forbids(english: str, german: str, breach: str) -> None:
    found = glossary_breaches(english, german)
    assert found
    assert any(breach in problem for problem in found)
    assert glossary_breaches("Sign out", "Abmelden") == []


@pytest.mark.usefixtures("portal")
@pytest.mark.parametrize("path", [PREFS, "/portal/history", "/portal/rights", "/portal/rights/erasure"])
def test_the_portals_german_pages_use_the_glossarys_words(path: str) -> None:
    client = sign_in("anna@example.de")
    post_form(client, PREFS, {"consent:newsletter:sms": "on", "notice:newsletter": "2026-01"})
    html = text_of(client.get(path))
    for wrong in ("E-mail", "Abmeldelink", "Unser Datenschutz prüft", "Datenschutz-Team", "egal was", "Aktiv"):
        assert wrong not in html, (path, wrong)
    assert "Abmelden" in html  # the sign-out button, and only that:
    assert len(re.findall(r"[Aa]bmeld", html)) == 1


# ---------------------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.usefixtures("portal")
def test_the_save_bar_is_there_without_javascript_and_says_that_changes_count_once_saved() -> None:
    html = sign_in("anna@example.de").get(PREFS).content.decode()

    bar = re.search(r'<div class="savebar"[^>]*>(.*?)</div>', html, flags=re.S)
    assert bar is not None
    assert '<button type="submit"' in bar.group(1)
    assert "Einstellungen speichern" in bar.group(1)
    assert "Was Sie umschalten, gilt erst, wenn Sie speichern." in bar.group(1)
    # the words the script shows, in the page's language
    assert 'data-none="Keine ungespeicherten Änderungen"' in bar.group(1)
    assert 'data-many="# ungespeicherte Änderungen"' in bar.group(1)
    assert html.count('type="submit"') == 2  # the save bar's button and the sign-out button: one Save only
    assert '<script src="/static/portal/preferences.js" defer></script>' in html
    style = (ROOT / "subjects" / "portal" / "static" / "portal" / "portal.css").read_text()
    assert re.search(r"\.savebar \{[^}]*position: sticky; bottom: 0;", style)


def test_the_save_bar_script_counts_changes_and_warns_before_leaving() -> None:
    script = (ROOT / "subjects" / "portal" / "static" / "portal" / "preferences.js").read_text()
    assert "beforeunload" in script
    assert 'querySelectorAll("input[data-saved]")' in script


@pytest.mark.usefixtures("portal")
def test_every_switch_says_what_saving_it_will_do(api: Api) -> None:
    client = sign_in("anna@example.de")
    post_form(client, PREFS, {"consent:newsletter:sms": "on", "notice:newsletter": "2026-01"})
    html = client.get(PREFS).content.decode()

    # a channel that is on: "On" while switched on, "Off once you save" when switched off
    sms = re.search(r'id="state-newsletter-sms">(.*?)</span>\s*</span>\s*</li>', html, flags=re.S)
    assert sms is not None
    assert re.search(r'<span class="when-on">\s*<span class="badge on">Ein</span>', sms.group(1))
    assert re.search(
        r'<span class="when-off">\s*<span class="badge change">Aus nach dem Speichern</span>', sms.group(1)
    )
    assert 'name="consent:newsletter:sms"' in html
    assert 'data-saved="on"' in html
    # a channel that is off: "On once you save" when switched on
    push = re.search(r'id="state-newsletter-push">(.*?)</li>', html, flags=re.S)
    assert push is not None
    assert "Ein nach dem Speichern" in push.group(1)
    # legitimate interest: "Wir nutzen das" beside an unticked "Ich widerspreche", never "Aktiv"
    offers = re.search(r'id="state-offers">(.*?)</div>', html, flags=re.S)
    assert offers is not None
    assert '<span class="badge on">Wir nutzen das</span>' in offers.group(1)
    assert "Widersprochen nach dem Speichern" in offers.group(1)
    assert "Aktiv" not in html


@pytest.mark.usefixtures("portal")
def test_the_english_badges_say_we_use_this_and_objected() -> None:
    client = sign_in("anna@example.de")
    post_form(client, PREFS, {"object:offers": "on", "notice:newsletter": "2026-01"})
    html = client.get(PREFS + "?lang=en").content.decode()
    offers = re.search(r'id="state-offers">(.*?)</div>', html, flags=re.S)
    assert offers is not None
    assert '<span class="badge">Objected</span>' in offers.group(1)
    client2 = sign_in("ben@example.de")
    assert "We use this" in client2.get(PREFS + "?lang=en").content.decode()


def test_the_style_sheet_shows_only_the_badge_that_matches_the_switch() -> None:
    style = (ROOT / "subjects" / "portal" / "static" / "portal" / "portal.css").read_text()
    assert "input:not(:checked) ~ .state .when-on, input:checked ~ .state .when-off { display: none; }" in style


def test_the_unsubscribe_page_links_to_the_portal(api: Api) -> None:
    html = text_of(browser().get(unsubscribe_path(api)))
    assert 'href="/portal/"' in html
