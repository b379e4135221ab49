"""Staff accounts in the admin (the same admins as Django's and django-otp's, with every change audited) and the
audit log itself, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp import admin as otp_totp_admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.admin.bases import AuditedAdmin, ReadOnlyAdmin
from consent.models import (
    AuditEntry,
)

User = get_user_model()
for _model, _base in (
    (User, UserAdmin),
    (Group, GroupAdmin),
    (TOTPDevice, otp_totp_admin.TOTPDeviceAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(f"Audited{_base.__name__}", (AuditedAdmin, _base), {}))


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "object_type", "object_id", "detail")
    list_filter = ("action", "object_type")
    search_fields = ("=username", "=object_id")
    date_hierarchy = "at"
    fields = ("at", "username", "user_id", "action", "object_type", "object_id", "detail")
    readonly_fields = fields
