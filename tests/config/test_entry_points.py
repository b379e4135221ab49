"""Entry points (issue 14, item 7): a front page at `/` that leads to the privacy centre, the admin and the API docs
(where the admin's "View site" lands), the demo banner with two demo customers and where their mails appear, and the
retailer's name (ASSENT_CONTROLLER_NAME) and from-address (DEFAULT_FROM_EMAIL) from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from django.contrib import admin
from django.core import mail
from django.test import Client

from config.pages import demo_addresses

pytestmark = pytest.mark.django_db


def test_the_front_page_leads_to_the_privacy_centre_the_admin_and_the_api_docs() -> None:
    response = Client().get("/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    for link in ('href="/portal/"', 'href="/admin/"', 'href="/api/docs/"'):
        assert link in html
    assert "API documentation" in html
    # the people's pages' policy: its style sheet loads, no script runs
    policy = response["Content-Security-Policy"]
    assert "style-src 'self'" in policy
    assert "script-src" not in policy
    german = Client().get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Für Mitarbeitende" in german
    assert "API-Dokumentation" in german
    assert "For staff" not in german


def test_the_admins_view_site_lands_on_the_front_page() -> None:
    assert admin.site.site_url == "/"
    assert Client().get(admin.site.site_url).status_code == 200


def test_pages_and_mails_carry_the_retailers_name(settings: Any) -> None:
    settings.ASSENT_CONTROLLER_NAME = "Kaufhaus Linde"
    html = Client().get("/portal/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "<title>" in html
    assert "Kaufhaus Linde</title>" in html
    assert 'class="brand"' in html
    assert "Kaufhaus Linde · Datenschutz-Center" in html
    client = Client()
    page = client.get("/portal/")
    token = page.content.decode().split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    client.post("/portal/", {"email": "anna@example.de", "csrfmiddlewaretoken": token})
    (sent,) = mail.outbox
    assert sent.body.rstrip().endswith("Kaufhaus Linde")


def test_the_demo_banner_names_two_demo_customers_and_where_their_mails_appear(settings: Any) -> None:
    assert demo_addresses() == ("anna.becker@example.org", "jonas.weber@example.org")
    settings.DEMO = False
    assert "anna.becker@example.org" not in Client().get("/portal/").content.decode()

    settings.DEMO = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    html = Client().get("/portal/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<code>anna.becker@example.org</code>, <code>jonas.weber@example.org</code>" in html
    assert "appear in the terminal where the demo runs" in html

    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = "/srv/demo/mail"
    html = Client().get("/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "als Dateien in /srv/demo/mail abgelegt" in html


def settings_with(**env: str) -> list[str]:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ASSENT_CONTROLLER_NAME); print(s.DEFAULT_FROM_EMAIL)"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("ASSENT_CONTROLLER_NAME", "DEFAULT_FROM_EMAIL")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_retailers_name_and_from_address_come_from_the_environment() -> None:
    assert settings_with(ASSENT_CONTROLLER_NAME="Kaufhaus Linde") == [
        "Kaufhaus Linde",
        "Kaufhaus Linde <datenschutz@localhost>",
    ]
    assert settings_with(
        ASSENT_CONTROLLER_NAME="Linde", DEFAULT_FROM_EMAIL="Linde Datenschutz <privacy@linde.example>"
    ) == ["Linde", "Linde Datenschutz <privacy@linde.example>"]
    assert settings_with(ASSENT_CONTROLLER_NAME="  ") == ["Assent", "Assent <datenschutz@localhost>"]
