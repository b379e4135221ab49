"""The two journeys of issue 14's "Done when", in headless Chromium (Debian's), each in German and in English (by the
browser's locale), at 1280 px and at 390 px:

- the customer's: sign in with the link from the mail, change a consent, save with the sticky save bar, request a
  copy, download it, request erasure, the DPO approves, the completion mail arrives, and the next page says the data
  is erased and the session is over;
- the DPO's: sign in to the admin with a TOTP code, open the erasure from the queue, read its plan, tick "I have read
  the plan" and approve, assign the request to themselves, add a note, open the records of processing (Art. 30) and
  download them as JSON.

On every page the visible labels (buttons, links, labels, legends, headings, table heads, captions) are read: none
may hold a tell-tale word of the other language, and none may be, word for word, a message of the German
catalogues in the other language (a German page showing an English msgid whose German differs, or an English page
showing such a German msgstr, shows an untranslated label), bar a few words both languages share. Each step is a
screenshot, `journey-<who>-<lang>-<width>-<nn>-<step>.png`, under the screenshots folder (ASSENT_SCREENSHOTS_DIR;
`make screenshots` writes them to var/screenshots/).
Every assertion after a navigation or a click goes through `expect`, which waits for the new page."""

from __future__ import annotations

import email
import io
import json
import re
import uuid
import zipfile
from collections.abc import Callable
from email.header import decode_header, make_header
from functools import cache

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils.translation import trans_real
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from consent.admin.staff import DPO
from consent.models import ConsentState
from subjects.models import RightsRequest
from subjects.rights.requests import Actor, request_approve
from tests.admin import conftest as admin_fixtures
from tests.admin.conftest import PASSWORD, totp_token
from tests.api import Api
from tests.browser.conftest import Site, Worker, wait_for
from tests.factories import ingest
from tests.rights.helpers import recorded_at

# The admin's staff fixtures, found by pytest under these names.
staff_groups = admin_fixtures.staff_groups
make_staff = admin_fixtures.make_staff

pytestmark = pytest.mark.journeys

WIDTHS = {1280: 900, 390: 844}  # width -> height: a laptop and a phone
LABELS = (
    "button:visible, a:visible, label:visible, legend:visible, summary:visible, "
    "h1:visible, h2:visible, h3:visible, th:visible, caption:visible"
)
# Words that belong to one language only: seen on a page of the other, a label was left untranslated. Matched as
# whole words, ignoring case. "English" and "Deutsch" (the language switch) are deliberately not in the lists.
TELLS = {
    "de": ("Save", "Sign out", "request", "requests", "consent", "erasure", "History", "Cancel", "the", "your", "and"),
    "en": ("Einwilligung", "Speichern", "Abmelden", "Antrag", "Löschung", "Verlauf", "Meine", "Ihre", "und", "der"),
}
TEXT = {
    "de": {
        "email": "Ihre E-Mail-Adresse",
        "send": "Anmeldelink senden",
        "choices": "Meine Einstellungen",
        "one_unsaved": "1 ungespeicherte Änderung",
        "none_unsaved": "Keine ungespeicherten Änderungen",
        "save": "Einstellungen speichern",
        "on": "Ein",
        "rights": "Meine Rechte",
        "request_copy": "Kopie anfordern",
        "copy": "Kopie meiner Daten",
        "done": "Erledigt",
        "download": "Meine Daten herunterladen (ZIP)",
        "erase": "Meine Daten löschen",
        "understood": "Ich habe verstanden",
        "request_erasure": "Löschung beantragen",
        "waiting": "Wartet auf Freigabe durch unser Datenschutzteam",
        "erased_mail": "Wir haben Ihre Daten gelöscht.",
        "erased": "Ihre Daten sind gelöscht",
        "plan": "Plan der Löschung",
        "plan_seen": "Ich habe den Plan dieser Löschung gelesen.",
        "records": "Verarbeitungsverzeichnis",
    },
    "en": {
        "email": "Your e-mail address",
        "send": "Send me a sign-in link",
        "choices": "My choices",
        "one_unsaved": "1 unsaved change",
        "none_unsaved": "No unsaved changes",
        "save": "Save my choices",
        "on": "On",
        "rights": "My rights",
        "request_copy": "Request a copy",
        "copy": "Copy of my data",
        "done": "Completed",
        "download": "Download my data (ZIP)",
        "erase": "Erase my data",
        "understood": "I understand",
        "request_erasure": "Request erasure",
        "waiting": "Waiting for our data protection officer",
        "erased_mail": "We erased your data.",
        "erased": "Your data has been erased",
        "plan": "Plan of the erasure",
        "plan_seen": "I have read the plan of this erasure.",
        "records": "Records of processing",
    },
}
LOCALES = {"de": "de-DE", "en": "en-GB"}
# Labels that are a message of one language and read the same in the other (or name a thing, not a word).
# The language switch names each language in its own ("English", "Deutsch") on every page, by design.
SAME_IN_BOTH = frozenset(
    {"Assent", "Status", "Name", "E-Mail", "API", "Export", "JSON", "CSV", "Details", "English", "Deutsch"}
)


@cache
def catalogue_words() -> dict[str, frozenset[str]]:
    """Per language, the labels that betray the other one: for a German page every English msgid whose German
    differs, for an English page every such German msgstr (all German catalogues Django loads: Django's, the
    libraries', ours). Labels are compared whole, also with a capital first letter (the admin capitalises)."""
    english: set[str] = set()
    german: set[str] = set()
    for key, value in trans_real.translation("de")._catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        if not msgid or not isinstance(msgid, str) or "\x04" in msgid or not value or value == msgid or "%" in msgid:
            continue
        english |= {msgid, msgid[:1].upper() + msgid[1:]}
        german |= {value, value[:1].upper() + value[1:]}
    return {"de": frozenset(english - SAME_IN_BOTH - german), "en": frozenset(german - SAME_IN_BOTH - english)}


def other_language_words(page: Page, language: str) -> list[str]:
    """The labels of the other language on the page: a tell-tale word in a label, or a whole label that is a
    message of the other language (catalogue_words)."""
    labels = [" ".join(text.split()) for text in page.locator(LABELS).all_inner_texts()]
    labels += list(page.locator("input[type=submit]:visible").evaluate_all("l => l.map(e => e.value)"))
    leaks = [
        f"{word!r} in {label!r}"
        for label in labels
        for word in TELLS[language]
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", label, re.IGNORECASE)
    ]
    messages = catalogue_words()[language]
    leaks += [f"{label!r} untranslated" for label in labels if label.rstrip(" :") in messages or label in messages]
    return leaks


class Journey:
    """One person's walk: the page, the language of the labels, and the screenshots numbered in order."""

    def __init__(self, site: Site, who: str, language: str, width: int) -> None:
        self.site = site
        self.language = language
        self.text = TEXT[language]
        self.page = site.new_page(locale=LOCALES[language], width=width, height=WIDTHS[width])
        self.prefix = f"journey-{who}-{language}-{width}"
        self.step = 0
        self.leaks: list[str] = []

    def look(self, name: str) -> None:
        """A screenshot of the step, and the labels read for words of the other language."""
        self.step += 1
        self.site.shot(self.page, f"{self.prefix}-{self.step:02d}-{name}")
        self.leaks += [f"{name}: {leak}" for leak in other_language_words(self.page, self.language)]

    def fits(self) -> None:
        """Nothing wider than the screen: a phone never scrolls sideways."""
        width = self.page.viewport_size["width"] if self.page.viewport_size else 0
        assert self.page.evaluate("document.documentElement.scrollWidth") <= width, self.page.url


def mails_to(worker: Worker, address: str) -> list[tuple[str, str]]:
    """(subject, body) of every mail the worker sent to the address (the file backend: one file per connection,
    messages separated by a line of dashes)."""
    found = []
    for chunk in re.split(r"\n-{79}\n", worker.mails()):
        if not chunk.strip():
            continue
        # from bytes: a message parsed from str gives its 8-bit body back in raw-unicode-escape, not UTF-8
        message = email.message_from_bytes(chunk.strip().encode())
        if address not in (message.get("To") or ""):
            continue
        payload = message.get_payload(decode=True)
        body = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
        found.append((str(make_header(decode_header(message.get("Subject") or ""))), body))
    return found


def customer_with_a_purchase(address: str, name: str) -> None:
    person = {"email": address}
    contact = {"name": name}
    when = recorded_at()
    ingest("pos", f"contact-{address}", person, category="contact", data=contact, occurred_at=when, profile=True)
    receipt = {"total": "42.00", "item": "Mantel"}
    ingest("pos", f"receipt-{address}", person, data=receipt, occurred_at=when, purchase=True)


@pytest.mark.worker
@pytest.mark.parametrize("width", [1280, 390])
@pytest.mark.parametrize("language", ["de", "en"])
def test_the_customer_changes_a_consent_takes_a_copy_and_is_erased(
    site: Site, mail_worker: Worker, language: str, width: int
) -> None:
    address = f"kundin-{language}-{width}@example.de"
    customer_with_a_purchase(address, "Clara Winter")
    walk = Journey(site, "customer", language, width)
    page, text = walk.page, walk.text

    # she asks for a sign-in link and opens it from the mail
    page.goto(site.url("/portal/"))
    expect(page.locator("html")).to_have_attribute("lang", language)
    walk.look("sign-in")
    page.get_by_label(text["email"]).fill(address)
    page.get_by_role("button", name=text["send"]).click()
    expect(page).to_have_url(re.compile(r"/portal/sent$"))
    walk.look("link-sent")
    page.goto(site.url(site.link_for(address)))
    expect(page).to_have_url(re.compile(r"/portal/preferences$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(text["choices"])
    walk.look("preferences")

    # she switches the newsletter by SMS on: the sticky save bar counts it, saving keeps it
    page.locator("[name='consent:newsletter:sms']").check()
    expect(page.locator("#savebar-status")).to_have_text(text["one_unsaved"])
    save = page.locator(".savebar").get_by_role("button", name=text["save"])
    expect(save).to_be_in_viewport()  # sticky: in view while the form's end is far below
    walk.look("unsaved-change")
    save.click()
    expect(page.locator("#savebar-status")).to_have_text(text["none_unsaved"])
    expect(page.locator("#state-newsletter-sms")).to_contain_text(re.compile(rf"^\s*{text['on']}\b"))
    walk.look("saved")
    assert ConsentState.objects.get(purpose="newsletter", channel="sms").status == "granted"

    # she asks for a copy of her data, waits for it and downloads it
    page.get_by_role("link", name=text["rights"], exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text["rights"])
    walk.fits()
    walk.look("rights")
    page.get_by_role("button", name=text["request_copy"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text["copy"])
    walk.look("copy-requested")

    def ready() -> bool:
        page.reload()
        return page.get_by_role("link", name=text["download"]).count() == 1

    wait_for(ready, timeout=60, every=0.5, what="the copy to be ready")
    expect(page.locator("dl.facts")).to_contain_text(text["done"])
    walk.look("copy-ready")
    with page.expect_download() as download:
        page.get_by_role("link", name=text["download"]).click()
    with open(download.value.path(), "rb") as file:
        archive = zipfile.ZipFile(io.BytesIO(file.read()))
    assert f"report.{language}.html" in archive.namelist()
    assert "Clara Winter" in "".join(archive.read(n).decode(errors="ignore") for n in archive.namelist())

    # she asks for erasure: what is kept and why first, then the box ticked
    page.get_by_role("link", name=text["rights"], exact=True).click()
    page.get_by_role("link", name=text["erase"]).click()
    expect(page.locator("main")).to_contain_text("§147 AO")
    walk.fits()
    walk.look("erasure")
    page.get_by_label(re.compile(text["understood"])).check()
    page.get_by_role("button", name=text["request_erasure"]).click()
    expect(page.locator("dl.facts")).to_contain_text(text["waiting"])
    walk.look("erasure-requested")

    # the DPO approves it (their own journey walks the admin); the worker erases and mails her first
    erasure = RightsRequest.objects.get(kind="erasure")
    assert erasure.language == language
    request_approve(request_id=erasure.pk, actor=Actor(label="staff:dpo"))
    told = wait_for(
        lambda: [body for _subject, body in mails_to(mail_worker, address) if text["erased_mail"] in body],
        timeout=60,
        every=0.5,
        what="the completion mail of the erasure",
    )
    assert "§147 AO" in told[0]  # says what was kept and why

    # her next page says what happened, and the session is over
    page.goto(site.url("/portal/preferences"))
    expect(page.get_by_role("heading", level=1)).to_have_text(text["erased"])
    expect(page.locator("main")).to_contain_text("§147 AO")
    walk.fits()
    walk.look("erased-signed-out")
    page.goto(site.url("/portal/preferences"))
    expect(page).to_have_url(re.compile(r"/portal/$"))
    expect(page.get_by_role("button", name=text["send"])).to_be_visible()
    assert RightsRequest.objects.get(pk=erasure.pk).status == "completed"

    assert walk.leaks == [], "labels in the other language:\n" + "\n".join(walk.leaks)


@pytest.mark.parametrize(("language", "width"), [("en", 1280), ("de", 390)])
def test_the_dpo_approves_an_erasure_after_its_plan_assigns_notes_and_exports_art_30(
    site: Site,
    api: Api,
    make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]],
    language: str,
    width: int,
) -> None:
    address = f"loeschen-{language}-{width}@example.de"
    customer_with_a_purchase(address, "Dora Sommer")
    opened = api.post(
        "/api/v1/requests", {"kind": "erasure", "subject": {"email": address}, "channel": "phone", "verified": True}
    )
    assert opened.json()["status"] == "awaiting_approval", opened.content
    request_id = uuid.UUID(opened.json()["id"])
    user, device = make_staff(DPO)
    walk = Journey(site, "dpo", language, width)
    page, text = walk.page, walk.text

    # she signs in with her password and the code of her authenticator app
    page.goto(site.url("/admin/login/?next=/admin/"))
    walk.look("admin-sign-in")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", totp_token(device))
    page.locator("input[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("html")).to_have_attribute("lang", language)
    walk.look("admin-home")

    # she opens the erasure from the queue and reads its plan before anything else
    page.goto(site.url("/admin/subjects/rightsrequest/?open=yes"))
    expect(page.locator("#result_list")).to_be_visible()
    walk.look("queue")
    page.locator(f"#result_list a[href*='{request_id}']").first.click()
    plan = page.locator("#request-plan")
    expect(plan.get_by_role("heading", level=2)).to_have_text(text["plan"])
    expect(plan).to_contain_text("§147 AO")  # what is kept, and why
    walk.fits()  # on a phone too: tables stack, ids and hashes wrap
    walk.look("request-with-plan")

    # she ticks that she read the plan and approves
    page.get_by_label(text["plan_seen"]).check()
    page.locator("input[name=approve]").click()
    expect(page.locator("input[name=approve]")).to_have_count(0)
    walk.look("approved")
    assert RightsRequest.objects.get(pk=request_id).status == "processing"

    # she takes the request herself and leaves a note for the team
    page.locator("#assignee").select_option(label=user.get_username())
    page.locator("input[name=assign]").click()
    expect(page.locator("#assignee")).to_have_value(str(user.pk))
    note = "Telefonisch bestätigt / confirmed by phone"
    page.locator("#note-text").fill(note)
    page.locator("input[name=note]").click()
    expect(page.locator("#request-notes li").first).to_contain_text(note)
    walk.fits()
    walk.look("assigned-and-noted")
    request = RightsRequest.objects.get(pk=request_id)
    assert request.assigned_to_id == user.pk

    # the records of processing (Art. 30): readable page, then the JSON
    page.goto(site.url("/admin/"))
    page.locator("a[href$='/admin/records-of-processing/']").first.click()
    expect(page.locator("#controller")).to_be_visible()
    expect(page.locator(".breadcrumbs")).to_contain_text(text["records"])
    walk.look("records-of-processing")
    with page.expect_download() as download:
        page.locator("#content-main a[href$='/admin/records-of-processing.json']").click()
    with open(download.value.path(), "rb") as file:
        records = json.load(file)
    assert {r["purpose"] for r in records["records"]} >= {"newsletter"}
    assert records["security_measures"]
    assert address not in json.dumps(records)

    assert walk.leaks == [], "labels in the other language:\n" + "\n".join(walk.leaks)
