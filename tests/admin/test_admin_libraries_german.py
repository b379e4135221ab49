"""The German admin speaks German on the pages of the libraries it uses too: django-otp's two-factor devices and
django-axes' sign-in attempts (issue 14, item 8). Their English was plain strings or missing from their own
catalogues; config/locale/de holds the German and comes first (LOCALE_PATHS)."""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from pathlib import Path

from axes.models import AccessAttempt
from django.contrib.auth.models import AbstractUser
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.admin.conftest import otp_login, speaking

LOCALE = Path(__file__).resolve().parents[2] / "config" / "locale" / "de" / "LC_MESSAGES"
DEVICES = "/admin/otp_totp/totpdevice/"


def superuser(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]]) -> Client:
    user, device = make_staff("DPO")
    user.is_superuser = True
    user.save()
    client = Client()
    assert otp_login(client, user, device).status_code == 302
    return speaking(client, "de")


def visible(html: str) -> str:
    """The page's text without tags, scripts and styles."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_two_factor_devices_read_german(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]]) -> None:
    client = superuser(make_staff)
    device = TOTPDevice.objects.first()
    assert device is not None

    index = visible(client.get("/admin/").content.decode())
    listing = visible(client.get(DEVICES).content.decode())
    form = visible(client.get(f"{DEVICES}{device.pk}/change/").content.decode())

    assert "TOTP-Geräte" in index
    assert "TOTP devices" not in index
    assert "TOTP-Gerät auswählen" in listing or "TOTP-Gerät" in listing
    for german in ("Identität", "Zeitpunkte", "Einstellungen", "Drosselung", "Der Zeitschritt in Sekunden."):
        assert german in form, german
    for english in ("Identity", "Timestamps", "Throttling", "The time step in seconds.", "Last used at", "TOTP device"):
        assert english not in form, english
        assert english not in listing, english


def test_the_sign_in_attempts_read_german(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]]) -> None:
    client = superuser(make_staff)
    AccessAttempt.objects.create(
        username="mallory",
        ip_address="192.0.2.7",
        user_agent="curl",
        http_accept="*/*",
        path_info="/admin/login/",
        get_data="",
        post_data="",
        failures_since_start=3,
    )

    attempts = visible(client.get("/admin/axes/accessattempt/").content.decode())

    assert "Zugriffsversuche" in attempts
    assert "mallory" in attempts
    for english in ("Clean up expired attempts", "Access attempts", "Attempt Time", "Expiration", "Not set"):
        assert english not in attempts, english


def test_the_compiled_library_catalogue_matches_its_source() -> None:
    po = (LOCALE / "django.po").read_text(encoding="utf-8")
    with (LOCALE / "django.mo").open("rb") as handle:
        catalogue = gettext.GNUTranslations(handle)
    ids = re.findall(r'^msgid "(.+)"$', po, flags=re.M)
    assert len(ids) > 40
    same = {"t0"}  # a symbol, the same in both languages
    assert [msgid for msgid in ids if catalogue.gettext(msgid) == msgid and msgid not in same] == []
