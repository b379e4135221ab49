"""Staff accounts for the admin: the groups "DPO" and "Support" with their permissions, and TOTP devices (Art. 32).

DPO: everything in Assent's admin, staff accounts and their devices included.
Support: open and verify rights requests and add internal notes to them, view subjects (every view is audited) and
the catalogue, the ledger and the logs; no change to the catalogue or to API clients, no API clients at all, no audit
log. Assigning requests to staff members is the DPO's."""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

DPO = "DPO"
SUPPORT = "Support"
DPO_APPS = ("consent", "subjects", "auth", "otp_totp", "admin")

SUPPORT_PERMISSIONS = (
    "subjects.view_subject",
    "subjects.view_rightsrequest",
    "subjects.add_rightsrequest",
    "subjects.verify_rightsrequest",
    "subjects.note_rightsrequest",
    "consent.view_channel",
    "consent.view_datacategory",
    "consent.view_purpose",
    "consent.view_notice",
    "consent.view_source",
    "consent.view_sourcecategory",
    "consent.view_consentevent",
    "consent.view_consentstate",
    "consent.view_objection",
    "consent.view_ledgerhead",
    "consent.view_readlog",
    "consent.view_send",
    "consent.view_sendrecipient",
)


@dataclass(frozen=True, slots=True)
class GroupsSetUp:
    dpo_permissions: int
    support_permissions: int


@transaction.atomic(durable=True)
def staff_groups_setup() -> GroupsSetUp:
    """Create or update both groups; idempotent. Permissions of models that are not installed are skipped."""
    _default_permissions()
    dpo, _ = Group.objects.get_or_create(name=DPO)
    dpo_permissions = list(Permission.objects.filter(content_type__app_label__in=DPO_APPS))
    dpo.permissions.set(dpo_permissions)
    support, _ = Group.objects.get_or_create(name=SUPPORT)
    wanted = [tuple(name.split(".", 1)) for name in SUPPORT_PERMISSIONS]
    support_permissions = [
        p
        for p in Permission.objects.filter(codename__in=[c for _, c in wanted]).select_related("content_type")
        if (p.content_type.app_label, p.codename) in wanted
    ]
    support.permissions.set(support_permissions)
    return GroupsSetUp(len(dpo_permissions), len(support_permissions))


def _default_permissions() -> None:
    # Django creates the permissions (its defaults and each model's Meta.permissions) after `migrate`; make sure
    # they are there for every model we grant. create_permissions refreshes the content-type cache first.
    for label in ("consent", "subjects"):
        create_permissions(apps.get_app_config(label), verbosity=0)


@transaction.atomic(durable=True)
def staff_totp_device_create(*, user: AbstractBaseUser, name: str = "authenticator") -> TOTPDevice:
    """A confirmed TOTP device for a staff member; its secret (in config_url) is for the person's app only."""
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
    return device
