"""Staff accounts in the admin (the same admins as Django's and django-otp's, with every change audited) and the
audit log itself, read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django_otp.plugins.otp_totp import admin as otp_totp_admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.admin.bases import AuditedAdmin, ReadOnlyAdmin
from consent.models import (
    AuditEntry,
)

User = get_user_model()
# django-otp's section titles are plain English: shown under these names (config/locale/de has the German).
TOTP_SECTIONS = {
    "Identity": _("Identity"),
    "Timestamps": _("Timestamps"),
    "Configuration": _("Configuration"),
    "State": _("State"),
    "Throttling": _("Throttling"),
}


class TOTPDeviceAdmin(otp_totp_admin.TOTPDeviceAdmin):
    """django-otp's admin of TOTP devices, its English labels in the staff member's language."""

    search_help_text = _("Search by the user's username or e-mail address.")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return [(TOTP_SECTIONS.get(title, title), options) for title, options in super().get_fieldsets(request, obj)]

    @admin.display(description=_("QR code"))
    def qrcode_link(self, device: TOTPDevice) -> str:
        href = reverse("admin:otp_totp_totpdevice_config", kwargs={"pk": device.pk})
        return format_html('<a href="{}">{}</a>', href, _("QR code"))


for _model, _base in (
    (User, UserAdmin),
    (Group, GroupAdmin),
    (TOTPDevice, TOTPDeviceAdmin),
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
