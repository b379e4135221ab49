"""The portal in a real browser (headless Chromium), German, working without script (the preference centre's save
bar adds a count of unsaved changes with its own script file): sign-in with the link from the mail, granting and
withdrawing, the double opt-in confirmation, a copy of the data downloaded, an erasure requested, a one-click
unsubscribe, the save bar and the history on a phone. Each page is saved as a screenshot under
artifacts/screenshots/."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import expect

from consent.models import ConsentEvent, ConsentState
from subjects.models import RightsRequest
from tests.api import Api
from tests.browser.conftest import Site, Worker, wait_for
from tests.catalogue import gpc_catalogue
from tests.factories import apply_catalogue, ingest
from tests.rights.helpers import recorded_at

CONFIRM_LINK = re.compile(r"https?://[^/\s]+(/confirm/[A-Za-z0-9_:.\-]+)")


def state(purpose: str, channel: str) -> str:
    row = ConsentState.objects.filter(purpose=purpose, channel=channel).first()
    return row.status if row else ""


@pytest.mark.worker
def test_sign_in_grant_confirm_and_withdraw(site: Site, mail_worker: Worker) -> None:
    page = site.new_page()

    # given a person who signs in with the link from the mail
    site.sign_in(page, "anna@example.de", shots=("01-anmelden", "02-link-gesendet"))
    assert page.locator("html").get_attribute("lang") == "de"
    assert page.get_by_role("heading", level=1).inner_text() == "Meine Einstellungen"
    for name in ("consent:newsletter:email", "consent:newsletter:sms", "consent:newsletter:push"):
        assert not page.locator(f"[name='{name}']").is_checked()  # Art. 25: off until chosen
    site.shot(page, "03-einstellungen")

    # when she switches the newsletter on by e-mail and by SMS and saves
    page.locator("[name='consent:newsletter:email']").check()
    page.locator("[name='consent:newsletter:sms']").check()
    page.get_by_role("button", name="Einstellungen speichern").click()
    page.wait_for_url("**/portal/preferences")

    # then SMS is on, and e-mail waits for her confirmation
    assert page.locator("#state-newsletter-sms").inner_text().startswith("Ein")
    assert "Wartet auf Ihre Bestätigung" in page.locator("#state-newsletter-email").inner_text()
    site.shot(page, "04-gespeichert-wartet-auf-bestaetigung")
    assert state("newsletter", "sms") == "granted"
    assert state("newsletter", "email") == "pending_confirmation"

    # when she opens the confirmation link the worker mailed and presses the button
    path = wait_for(lambda: CONFIRM_LINK.search(mail_worker.mails()), what="the confirmation mail").group(1)
    page.goto(site.url(path))
    site.shot(page, "05-bestaetigen")
    page.get_by_role("button", name=re.compile("Ja, ich möchte das")).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("bestätigt")
    site.shot(page, "06-bestaetigt")

    # then the e-mail channel is on
    page.goto(site.url("/portal/preferences"))
    assert page.locator("#state-newsletter-email").inner_text().startswith("Ein")
    assert state("newsletter", "email") == "granted"

    # when she switches SMS off again
    page.locator("[name='consent:newsletter:sms']").uncheck()
    page.get_by_role("button", name="Einstellungen speichern").click()
    page.wait_for_url("**/portal/preferences")
    assert page.locator("#state-newsletter-sms").inner_text().startswith("Aus")
    site.shot(page, "07-widerrufen")
    assert state("newsletter", "sms") == "withdrawn"

    # and the history shows every step, newest first, with its source and hash
    page.get_by_role("link", name="Verlauf").click()
    rows = page.locator("tbody tr")
    assert rows.count() == 4
    assert "Einwilligung widerrufen" in rows.nth(0).inner_text()
    assert "Per E-Mail bestätigt" in rows.nth(1).inner_text()
    site.shot(page, "08-verlauf")
    sources = list(ConsentEvent.objects.order_by("seq").values_list("action", "channel", "source"))
    assert sources == [
        ("grant", "email", "portal"),
        ("grant", "sms", "portal"),
        ("confirm", "email", "double-opt-in"),
        ("withdraw", "sms", "portal"),
    ]


def test_a_link_opened_in_another_browser_asks_first_then_signs_out(site: Site) -> None:
    asking = site.new_page()
    asking.goto(site.url("/portal/"))
    # the first Tab reaches the skip link: focus order starts at the content, not at the header's links
    asking.keyboard.press("Tab")
    assert asking.evaluate("document.activeElement.textContent") == "Zum Inhalt springen"
    asking.get_by_label("Ihre E-Mail-Adresse").fill("ben@example.de")
    asking.keyboard.press("Enter")
    asking.wait_for_url("**/portal/sent")

    other = site.new_page()
    other.goto(site.url(site.link_for("ben@example.de")))
    assert other.get_by_role("heading", level=1).inner_text() == "Auf diesem Gerät anmelden?"
    assert "b•••@example.de" in other.content()
    site.shot(other, "09-anderer-browser-bestaetigen")
    other.get_by_role("button", name="Ja, hier anmelden").click()
    other.wait_for_url("**/portal/preferences")

    other.get_by_role("button", name="Abmelden").click()
    expect(other.get_by_role("heading", level=1)).to_have_text("Sie sind abgemeldet")
    site.shot(other, "10-abgemeldet")
    other.goto(site.url("/portal/preferences"))
    assert other.url.endswith("/portal/")  # the session is over


def test_the_pages_are_english_on_request(site: Site) -> None:
    page = site.new_page(locale="en-GB")
    page.goto(site.url("/portal/"))
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_role("button", name="Send me a sign-in link").is_visible()
    page.get_by_role("link", name="Deutsch").click()
    expect(page.locator("html")).to_have_attribute("lang", "de")
    page.goto(site.url("/portal/"))
    assert page.get_by_role("button", name="Anmeldelink senden").is_visible()  # kept in the cookie


@pytest.mark.worker
def test_request_and_download_a_copy_then_request_erasure(site: Site, mail_worker: Worker) -> None:
    clara = {"email": "clara@example.de"}
    ingest(
        "pos",
        "contact-1",
        clara,
        category="contact",
        data={"name": "Clara Winter"},
        occurred_at=recorded_at(),
        profile=True,
    )
    receipt = {"total": "42.00", "item": "Mantel"}
    ingest("pos", "receipt-1", clara, data=receipt, occurred_at=recorded_at(), purchase=True)
    page = site.new_page()
    site.sign_in(page, "clara@example.de")

    page.get_by_role("link", name="Meine Rechte", exact=True).click()
    site.shot(page, "11-meine-rechte")
    page.get_by_role("button", name="Kopie anfordern").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kopie meiner Daten")
    site.shot(page, "12-kopie-beantragt")

    def completed() -> bool:
        page.reload()
        return "Erledigt" in page.locator("dl.facts").inner_text()

    wait_for(completed, timeout=60, every=0.5, what="the copy to be ready")
    site.shot(page, "13-kopie-fertig")
    with page.expect_download() as info:
        page.get_by_role("link", name="Meine Daten herunterladen (ZIP)").click()
    archive = zipfile.ZipFile(io.BytesIO(open(info.value.path(), "rb").read()))  # noqa: SIM115
    assert "Clara Winter" in "".join(archive.read(n).decode(errors="ignore") for n in archive.namelist())

    page.get_by_role("link", name="Meine Rechte", exact=True).click()
    page.get_by_role("link", name="Meine Daten löschen").click()
    # expect() waits for the new page: content() read mid-navigation once answered "" (a loop round found it)
    expect(page.locator("main")).to_contain_text("§147 AO")
    site.shot(page, "14-loeschen-was-bleibt")
    page.get_by_role("button", name="Löschung beantragen").click()
    expect(page.locator(".errorlist")).to_be_visible()  # the box must be ticked first
    page.get_by_label(re.compile("Ich habe verstanden")).check()
    page.get_by_role("button", name="Löschung beantragen").click()
    expect(page.locator("dl.facts")).to_contain_text("Wartet auf Freigabe durch unser Datenschutzteam")
    site.shot(page, "15-loeschung-beantragt")
    assert RightsRequest.objects.get(kind="erasure").status == "awaiting_approval"


def test_one_click_unsubscribe_in_the_same_look(site: Site, make_client: Any) -> None:
    api = Api(make_client())
    granted = api.post(
        "/api/v1/consents",
        {
            "subject": {"email": "dora@example.de"},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": "2026-01",
            "source": "webshop",
        },
    )
    subject = granted.json()["subject"]
    sent = api.post(
        "/api/v1/sends",
        {"campaign": "Frühjahr", "purpose": "newsletter", "channel": "sms", "recipients": [{"id": subject}]},
    )
    url = sent.json()["allowed"][0]["unsubscribe_url"]
    assert url.startswith(site.base)

    page = site.new_page()
    page.goto(url)
    assert page.get_by_role("heading", level=1).inner_text() == "Abbestellen"  # unsubscribe; "Abmelden" signs out
    assert page.locator("link[rel=stylesheet]").get_attribute("href") == "/static/portal/portal.css"
    site.shot(page, "16-abbestellen")
    assert state("newsletter", "sms") == "granted"  # showing the page changed nothing
    page.get_by_role("button", name="Abbestellen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Abbestellt")
    site.shot(page, "17-abbestellt")
    assert state("newsletter", "sms") == "withdrawn"
    assert ConsentEvent.objects.filter(source="unsubscribe-link").count() == 1
    assert Client().get(url).status_code == 200


def test_on_a_phone_the_save_bar_counts_unsaved_changes_and_the_history_fits(site: Site) -> None:
    page = site.new_page(width=390, height=844)
    site.sign_in(page, "eva@example.de")
    status = page.locator("#savebar-status")
    bar = page.locator(".savebar")

    # the save bar is in view at the bottom of the screen while the switches are far above the form's end
    assert status.inner_text() == "Keine ungespeicherten Änderungen"  # the script runs (its own file, CSP allows)
    box = bar.bounding_box()
    assert box is not None
    assert 844 - 2 <= box["y"] + box["height"] <= 844 + 1

    # when she switches two channels on, the bar counts them and the badges say what saving will do
    page.locator("[name='consent:newsletter:sms']").check()
    assert status.inner_text() == "1 ungespeicherte Änderung"
    assert page.locator("#state-newsletter-sms").inner_text().startswith("Ein nach dem Speichern")
    page.locator("[name='consent:newsletter:push']").check()
    assert status.inner_text() == "2 ungespeicherte Änderungen"
    assert page.locator("#state-offers").inner_text().startswith("Wir nutzen das")
    site.shot(page, "18-handy-ungespeichert")

    # leaving now asks first; staying keeps her changes
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    page.get_by_role("link", name="Verlauf").click(no_wait_after=True)
    page.wait_for_timeout(500)
    assert asked == ["beforeunload"]
    assert page.url.endswith("/portal/preferences")
    assert page.locator("[name='consent:newsletter:sms']").is_checked()

    # saving asks nothing and leaves nothing unsaved
    page.get_by_role("button", name="Einstellungen speichern").click()
    page.wait_for_url("**/portal/preferences")
    assert status.inner_text() == "Keine ungespeicherten Änderungen"
    assert page.locator("#state-newsletter-sms").inner_text().startswith("Ein")
    assert "nach dem Speichern" not in page.locator("#state-newsletter-sms").inner_text()

    # the history reads on the phone without sideways scrolling; the hash is behind "Nachweis anzeigen"
    page.get_by_role("link", name="Verlauf").click()
    page.wait_for_url("**/portal/history")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.get_by_role("columnheader", name="Hashwert").count() == 0
    assert not page.locator("code.hash").first.is_visible()
    page.get_by_text("Nachweis anzeigen").first.click()
    expect(page.locator("code.hash").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    site.shot(page, "19-handy-verlauf-nachweis")


def test_a_browser_sending_global_privacy_control_sees_the_signal_honoured(site: Site) -> None:
    # Given targeted ads and offers by phone marked gpc, and Gina, whose browser sends Sec-GPC: 1 with every request
    apply_catalogue(gpc_catalogue())
    page = site.new_page(headers={"Sec-GPC": "1"})
    site.sign_in(page, "gina@example.de")

    # Then her preferences say the signal is seen, before anything is recorded
    expect(page.locator("#gpc-note")).to_contain_text("Global Privacy Control")

    # When she switches SMS newsletters on and saves
    page.locator("[name='consent:newsletter:sms']").check()
    page.get_by_role("button", name="Einstellungen speichern").click()
    page.wait_for_url("**/portal/preferences")

    # Then the page says it honoured the signal and her own choice stands
    expect(page.get_by_text("haben für Sie widersprochen: Offers by phone, Targeted ads.")).to_be_visible()
    assert page.locator("[name='consent:newsletter:sms']").is_checked()
    site.shot(page, "20-gpc-beachtet")

    # And her history names the signal as where the objection came from
    page.get_by_role("link", name="Verlauf").click()
    page.wait_for_url("**/portal/history")
    expect(page.get_by_text("Datenschutzsignal Ihres Browsers (GPC)").first).to_be_visible()
