"""Staff in the admin: DPO and Support accounts with real TOTP devices, signed in through the OTP login form."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.admin.staff import DPO, SUPPORT, staff_groups_setup, staff_totp_device_create
from subjects.identity import Reference
from tests.factories import ConsentFactory, ingest

PASSWORD = "correct horse battery staple 7"


def totp_token(device: TOTPDevice) -> str:
    """The device's current code, as the staff member's authenticator app shows it."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def otp_login(client: Client, user: AbstractUser, device: TOTPDevice, *, token: str | None = None) -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {
            "username": user.get_username(),
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": totp_token(device) if token is None else token,
        },
    )


def admin_search(client: Client, changelist: str, term: str) -> Any:
    """A search as the admin's search box makes it: a POST, then the list at `?qt=<token>` (never `?q=<term>`)."""
    response = client.post(changelist, {"_assent_search": "1", "q": term})
    assert response.status_code == 302, response
    assert term.strip() == "" or "q=" not in response["Location"].replace("qt=", "")
    return client.get(response["Location"])


def speaking(client: Client, language: str) -> Client:
    """The staff member's language, as the admin's language switch (`?lang=`) keeps it: in the language cookie."""
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    return client


@pytest.fixture
def staff_groups(db: None) -> None:
    staff_groups_setup()


@pytest.fixture
def make_staff(staff_groups: None) -> Callable[[str], tuple[AbstractUser, TOTPDevice]]:
    def make(group: str) -> tuple[AbstractUser, TOTPDevice]:
        user = get_user_model().objects.create_user(
            username=f"{group.lower()}-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
        )
        user.groups.add(Group.objects.get(name=group))
        return user, staff_totp_device_create(user=user)

    return make


def _signed_in(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]], group: str) -> Client:
    client = Client()
    user, device = make_staff(group)
    response = otp_login(client, user, device)
    assert response.status_code == 302, response.content.decode()[:2000]
    client.user = user  # type: ignore[attr-defined]
    return client


@pytest.fixture
def dpo(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]], catalogue: dict[str, Any]) -> Client:
    return _signed_in(make_staff, DPO)


@pytest.fixture
def dpo_en(dpo: Client) -> Client:
    """The DPO reading the admin in English (the admin follows the staff member's language, German by default)."""
    return speaking(dpo, "en")


@pytest.fixture
def support(make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]], catalogue: dict[str, Any]) -> Client:
    return _signed_in(make_staff, SUPPORT)


@pytest.fixture
def anna(catalogue: dict[str, Any]) -> str:
    """A customer with an e-mail, a phone, a till receipt and consents; returns the subject id. Built through the
    services: the admin, not the API, is under test here."""
    receipt = {"total": "42.00", "store": "Berlin"}
    identifiers = {"email": "Anna.Becker@Example.org", "phone": "0171 1234567"}
    occurred_at = datetime(2026, 1, 10, 10, tzinfo=UTC)
    subject = ingest("pos", "R-1", identifiers, data=receipt, occurred_at=occurred_at, purchase=True).subject_id
    for channel in ("sms", "push"):
        ConsentFactory(
            reference=Reference(subject, ()), channel=channel, evidence={"form": "signup", "ip": "203.0.113.0"}
        )
    return str(subject)
