"""What every page people see shares: the strict Content-Security-Policy and security headers, the `lang`
attribute, the language switch, no inline styles or scripts (the portal loads its own script files only; the pages
reached from e-mails none at all), and compiled German translations."""

from __future__ import annotations

import gettext
import re
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.portal.conftest import ask_for_link, browser, known_person, sign_in

pytestmark = pytest.mark.usefixtures("portal")
LOCALE = Path(__file__).resolve().parents[2] / "subjects" / "portal" / "locale" / "de" / "LC_MESSAGES"


def assert_strict_headers(response: Any, script: str = "") -> None:
    """`script`: "" for no script at all (default-src 'none' applies), else the one script-src allowed."""
    csp = response["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "style-src 'self'" in csp
    if script:
        assert f"script-src {script};" in f"{csp};"
    else:
        assert "script-src" not in csp  # falls back to default-src 'none': no script at all
    assert "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] in ("same-origin", "no-referrer")
    assert "camera=()" in response["Permissions-Policy"]


def assert_no_inline_code(html: str) -> None:
    for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S):
        assert body.strip() == "", "no inline script"
        assert re.search(r'src="/static/portal/[a-z]+\.js"', attributes), attributes
    assert html.count("<script") == len(re.findall(r"<script[^>]*>.*?</script>", html, flags=re.S))
    assert "<style" not in html
    assert " style=" not in html
    assert re.search(r" on[a-z]+=", html) is None


def test_every_portal_page_sends_the_strict_policy_and_no_inline_code() -> None:
    known_person("anna@example.de")
    client = sign_in("anna@example.de")
    for path in ("/portal/preferences", "/portal/history", "/portal/rights", "/portal/rights/objection"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_strict_headers(response, script="'self'")
        assert_no_inline_code(response.content.decode())
        assert "no-store" in response["Cache-Control"]
    signin = Client().get("/portal/")
    assert_strict_headers(signin, script="'self'")
    assert_no_inline_code(signin.content.decode())
    assert '<html lang="de">' in signin.content.decode()


def test_the_style_sheet_is_served_as_a_static_file() -> None:
    response = Client().get("/static/portal/portal.css")
    assert response.status_code == 200
    assert b"--brand" in b"".join(response.streaming_content) if response.streaming else response.content


def test_the_unsubscribe_and_confirmation_pages_share_the_portals_look_and_policy() -> None:
    for path in ("/u/" + "A" * 64, "/confirm/forged"):
        response = Client().get(path)
        assert response.status_code == 404
        html = response.content.decode()
        assert_strict_headers(response)  # no script at all on the pages reached from e-mails
        assert_no_inline_code(html)
        assert "<script" not in html
        assert "/static/portal/portal.css" in html
        assert '<html lang="de">' in html
        assert "nicht gültig" in html
        assert "csrfmiddlewaretoken" not in html  # the one-click page carries no CSRF form of the layout


def test_the_language_switch_is_a_link_kept_in_a_cookie(settings: Any) -> None:
    client = Client()
    german = client.get("/portal/").content.decode()
    assert 'href="?lang=en"' in german
    english = client.get("/portal/?lang=en")
    assert '<html lang="en">' in english.content.decode()
    assert "Send me a sign-in link" in english.content.decode()
    assert english.cookies[settings.LANGUAGE_COOKIE_NAME].value == "en"
    assert "Send me a sign-in link" in client.get("/portal/").content.decode()
    assert "Anmeldelink senden" in client.get("/portal/?lang=de").content.decode()


def test_an_unknown_language_is_ignored() -> None:
    response = Client().get("/portal/?lang=xx")
    assert '<html lang="de">' in response.content.decode()
    assert "django_language" not in response.cookies


def test_the_sign_in_mail_speaks_the_persons_language_and_links_to_the_base_url(settings: Any) -> None:
    settings.ASSENT_BASE_URL = "https://privacy.example.com"
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.post("/portal/", {"email": "anna@example.de"})
    assert mail.outbox[-1].subject == "Your sign-in link for the privacy centre"
    assert "https://privacy.example.com/portal/signin/" in mail.outbox[-1].body
    ask_for_link(browser(), "ben@example.de")
    assert mail.outbox[-1].subject == "Ihr Anmeldelink für das Datenschutz-Center"


def test_the_nonce_cookie_is_http_only_and_scoped_to_the_portal() -> None:
    response = ask_for_link(browser(), "anna@example.de")
    cookie = response.cookies["assent_signin"]
    assert cookie["httponly"]
    assert cookie["path"] == "/portal/"
    assert cookie["samesite"] == "Lax"


def test_the_session_cookie_is_http_only() -> None:
    client = sign_in("anna@example.de")
    assert client.cookies["sessionid"]["httponly"]


def test_the_compiled_german_catalogue_matches_its_source() -> None:
    """The .mo is committed (no gettext needed to build); it must hold every translated message of the .po."""
    po = (LOCALE / "django.po").read_text(encoding="utf-8")
    with (LOCALE / "django.mo").open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    ids = [m.replace('\\"', '"') for m in re.findall(r'^msgid "(.+)"$', po, flags=re.M)]
    assert len(ids) > 150
    assert "#, fuzzy" not in po
    contexts = {"History"}  # translated with a context ("portal page"): the admin has its own "History"
    untranslated = [msgid for msgid in ids if catalogue.gettext(msgid) == msgid and msgid not in contexts]
    assert untranslated == []
    assert catalogue.ngettext("%(counter)s entry", "%(counter)s entries", 2) == "%(counter)s Einträge"


def test_every_field_has_a_label() -> None:
    known_person("anna@example.de")
    client = sign_in("anna@example.de")
    pages = [Client().get("/portal/")] + [
        client.get(path)
        for path in (
            "/portal/preferences",
            "/portal/rights",
            "/portal/rights/erasure",
            "/portal/rights/restriction",
            "/portal/rights/objection",
        )
    ]
    for response in pages:
        html = response.content.decode()
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        fields = [
            re.search(r'id="([^"]+)"', tag)
            for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html)
            if 'type="hidden"' not in tag
        ]
        assert fields, response.request["PATH_INFO"]
        for found in fields:
            assert found, "a field without an id cannot be labelled"
            assert found.group(1) in labelled, (response.request["PATH_INFO"], found.group(1))


def test_asking_for_a_link_needs_the_forms_csrf_token() -> None:
    response = browser().post("/portal/", {"email": "anna@example.de"})
    assert response.status_code == 403
    assert mail.outbox == []
