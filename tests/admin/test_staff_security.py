"""Art. 32: staff sign in with a password and a TOTP code; the groups' permissions; the audit log."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.apps import apps
from django.contrib.auth.models import AbstractUser, Group
from django.db import DatabaseError, transaction
from django.test import Client, override_settings
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.admin.staff import DPO, SUPPORT, staff_groups_setup
from consent.models import AuditEntry
from tests.admin.conftest import PASSWORD, otp_login

Staff = Callable[[str], tuple[AbstractUser, TOTPDevice]]


def test_staff_signs_in_with_a_totp_code_and_the_sign_in_is_audited(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    client = Client()

    response = otp_login(client, user, device)

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200
    entry = AuditEntry.objects.get(action="sign_in")
    assert entry.username == user.get_username()
    assert entry.user_id == user.pk


def test_a_password_alone_does_not_open_the_admin(make_staff: Staff) -> None:
    user, _device = make_staff(DPO)
    client = Client()

    response = client.post("/admin/login/", {"username": user.get_username(), "password": PASSWORD})

    assert response.status_code == 200  # the form again, asking for the code
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/consent/purpose/").status_code == 302


def test_a_wrong_totp_code_does_not_open_the_admin(make_staff: Staff) -> None:
    user, device = make_staff(DPO)
    client = Client()

    response = otp_login(client, user, device, token="000000")

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302
    assert not AuditEntry.objects.filter(action="sign_in").exists()


def test_a_session_signed_in_without_the_second_factor_is_not_staff(make_staff: Staff) -> None:
    user, _device = make_staff(DPO)
    client = Client()
    client.force_login(user)  # a password login elsewhere (no OTP device verified in this session)

    assert client.get("/admin/").status_code == 302


@override_settings(ASSENT_ADMIN_REQUIRE_2FA=False)
def test_the_demo_signs_in_with_a_password_alone(make_staff: Staff) -> None:
    user, _device = make_staff(DPO)
    client = Client()

    response = client.post("/admin/login/?next=/admin/", {"username": user.get_username(), "password": PASSWORD})

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_sign_out_is_audited(dpo: Client) -> None:
    response = dpo.post("/admin/logout/")

    assert response.status_code == 200
    assert AuditEntry.objects.filter(action="sign_out").count() == 1
    assert dpo.get("/admin/").status_code == 302


def test_setup_staff_groups_gives_support_requests_and_subjects_but_no_catalogue_or_clients(db: None) -> None:
    staff_groups_setup()
    staff_groups_setup()  # idempotent

    support = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=SUPPORT).permissions.all()}
    dpo = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=DPO).permissions.all()}
    assert {"subjects.view_subject", "subjects.add_rightsrequest", "subjects.verify_rightsrequest"} <= support
    assert not any(p.startswith(("consent.change_", "consent.add_", "consent.delete_")) for p in support)
    assert not any("apiclient" in p or "auditentry" in p for p in support)
    assert {
        "consent.change_purpose",
        "consent.add_apiclient",
        "consent.view_auditentry",
        "subjects.approve_rightsrequest",
        "subjects.change_mergeaudit",
        "otp_totp.add_totpdevice",
        "auth.change_user",
    } <= dpo


def test_support_cannot_manage_staff_accounts_or_devices(support: Client) -> None:
    assert support.get("/admin/auth/user/").status_code == 403
    assert support.get("/admin/otp_totp/totpdevice/").status_code == 403
    assert support.get("/admin/consent/auditentry/").status_code == 403


def test_a_staff_account_change_is_audited_by_field_name_only(dpo: Client, make_staff: Staff) -> None:
    other, _device = make_staff(SUPPORT)

    response = dpo.post(
        f"/admin/auth/user/{other.pk}/change/",
        {
            "username": other.get_username(),
            "first_name": "Bertha",
            "last_name": "",
            "email": "",
            "is_active": "on",
            "is_staff": "on",
            "groups": [Group.objects.get(name=SUPPORT).pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-01-01",
            "initial-date_joined_1": "10:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    entry = AuditEntry.objects.get(action="change", object_type="auth.user")
    assert entry.object_id == str(other.pk)
    assert "First name" in entry.detail
    assert "Bertha" not in entry.detail


@pytest.mark.django_db
def test_the_audit_log_refuses_update_and_delete_in_the_database(dpo: Client) -> None:
    entry = AuditEntry.objects.first()
    assert entry is not None

    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(detail="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()

    assert AuditEntry.objects.get(pk=entry.pk).detail == entry.detail


def test_the_totp_device_admin_hides_the_secret_of_an_existing_device(dpo: Client, make_staff: Staff) -> None:
    _other, device = make_staff(SUPPORT)

    page = dpo.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()

    assert device.key not in page


def test_no_model_str_shows_decrypted_data(dpo: Client, anna: str) -> None:
    """Django's admin log stores str(obj): no model may render a person's data there."""
    dpo.get(f"/admin/subjects/subject/{anna}/change/")  # an audit entry too
    shown = []
    for label in ("consent", "subjects"):
        for model in apps.get_app_config(label).get_models():
            shown.extend(str(row) for row in model._default_manager.all()[:50])

    assert shown
    assert not [text for text in shown if "anna" in text.lower() or "1234567" in text or "Berlin" in text]
