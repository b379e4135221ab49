"""Admin sign-in (Art. 32): one message whichever factor failed, a lockout per username and per client address
after repeated failures (django-axes), and sessions that end eight hours after sign-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from freezegun import freeze_time

from consent.admin.site import LOGIN_FAILED
from consent.admin.staff import DPO
from consent.models import AuditEntry
from tests.admin.conftest import PASSWORD, otp_login

Staff = Callable[[str], tuple[AbstractUser, TOTPDevice]]


def attempt(client: Client, username: str, password: str, token: str = "") -> Any:
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password, "otp_token": token})


def visible(response: Any) -> str:
    """The page without its CSRF token, which differs from one answer to the next."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_a_wrong_password_and_a_wrong_code_get_the_same_page(make_staff: Staff) -> None:
    user, _device = make_staff(DPO)
    name = user.get_username()

    wrong_password = attempt(Client(), name, "not the password", "123456")
    wrong_code = attempt(Client(), name, PASSWORD, "123456")
    wrong_password_no_code = attempt(Client(), name, "not the password", "")
    no_code = attempt(Client(), name, PASSWORD, "")

    assert {r.status_code for r in (wrong_password, wrong_code, wrong_password_no_code, no_code)} == {200}
    assert LOGIN_FAILED in wrong_password.content.decode()
    assert visible(wrong_password) == visible(wrong_code)
    assert visible(wrong_password_no_code) == visible(no_code)
    assert PASSWORD not in visible(wrong_code) + visible(no_code)


def test_five_failures_for_one_username_lock_it_out_from_any_address(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    for i in range(5):
        attempt(Client(REMOTE_ADDR=f"198.51.100.{i}"), user.get_username(), f"guess {i}")

    locked = otp_login(Client(REMOTE_ADDR="203.0.113.50"), user, device)  # even with the right password and code

    assert locked.status_code == 429
    assert "Sign-in paused" in locked.content.decode()
    assert not AuditEntry.objects.filter(action="sign_in").exists()


def test_five_failures_from_one_address_lock_that_address_out_for_every_username(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    for i in range(5):
        attempt(Client(REMOTE_ADDR="198.51.100.9"), f"nobody-{i}", "guess")

    from_there = otp_login(Client(REMOTE_ADDR="198.51.100.9"), user, device)
    from_elsewhere = otp_login(Client(REMOTE_ADDR="203.0.113.50"), user, device)

    assert from_there.status_code == 429
    assert from_elsewhere.status_code == 302


def test_wrong_codes_after_a_right_password_count_towards_the_lockout(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    for _ in range(5):
        otp_login(Client(REMOTE_ADDR="198.51.100.10"), user, device, token="000000")

    assert otp_login(Client(REMOTE_ADDR="203.0.113.50"), user, device).status_code == 429


def test_behind_a_trusted_proxy_the_lockout_is_per_person_not_per_proxy(make_staff: Staff, settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = ["10.0.0.1"]
    user, device = make_staff(DPO)
    for i in range(5):
        attempt(Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.66"), f"nobody-{i}", "guess")

    colleague = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.8")
    assert otp_login(colleague, user, device).status_code == 302


def test_an_admin_session_ends_eight_hours_after_sign_in(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    client = Client()
    assert otp_login(client, user, device).status_code == 302

    with freeze_time(timedelta(hours=7, minutes=54)):
        assert client.get("/admin/").status_code == 200
    with freeze_time(timedelta(hours=8, minutes=1)):
        assert client.get("/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302  # signed out, not just refused once
    assert AuditEntry.objects.filter(action="sign_out", detail="session expired").count() == 1


def test_a_session_from_force_login_starts_its_clock_at_its_first_request(dpo: Client) -> None:
    # `dpo` signed in through the form; a force_login session has no sign-in time and is not thrown out.
    user = dpo.user  # type: ignore[attr-defined]
    other = Client()
    other.force_login(user)
    session = other.session
    session["otp_device_id"] = dpo.session["otp_device_id"]
    session.save()
    assert other.get("/admin/").status_code == 200
    with freeze_time(timedelta(hours=8, minutes=1)):
        assert other.get("/admin/").status_code == 302
