"""The DPO's admin site: two-factor sign-in (Art. 32), the dashboard and the records of processing, and the base
classes every Assent ModelAdmin uses so that each staff action lands in the audit log.

config/urls.py makes `admin.site` an AssentAdminSite, so every `@admin.register` (ours, auth's, django-otp's)
is served by it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.options import csrf_protect_m
from django.contrib.auth.decorators import login_not_required
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from consent.audit import Action, audit_record, audit_record_many


def two_factor_required() -> bool:
    return bool(getattr(settings, "ASSENT_ADMIN_REQUIRE_2FA", True))


class AssentLoginForm(OTPAdminAuthenticationForm):
    """The OTP login form; a staff member with one authenticator need not pick it from a list first."""

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class AssentAdminSite(OTPAdminSite):
    """An OTP admin site whose second factor can be switched off for the zero-setup demo only
    (ASSENT_ADMIN_REQUIRE_2FA, default on outside the demo). Read at each request, so tests can switch it."""

    site_header = "Assent"
    site_title = "Assent"
    index_title = "Consent, subjects and rights requests"
    index_template = "assent_admin/index.html"

    @property
    def login_form(self) -> type[AdminAuthenticationForm]:
        return AssentLoginForm if two_factor_required() else AdminAuthenticationForm

    @property
    def login_template(self) -> str:
        return "otp/admin111/login.html" if two_factor_required() else "admin/login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not admin.AdminSite.has_permission(self, request):
            return False
        # A staff member signed in with a password alone is treated as not staff until a TOTP code verified them.
        return not two_factor_required() or bool(getattr(request.user, "is_verified", lambda: False)())

    @method_decorator(never_cache)
    @method_decorator(login_not_required)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response: HttpResponse = super().login(request, extra_context)
        if request.method == "POST" and response.status_code == 302 and request.user.is_authenticated:
            audit_record(user=request.user, action=Action.SIGN_IN)
        return response

    def logout(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and request.user.is_authenticated:
            audit_record(user=request.user, action=Action.SIGN_OUT)
        response: HttpResponse = super().logout(request, extra_context)
        return response

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from consent import admin_views  # the views import the models; the site is built before they load

        ours: list[URLResolver | URLPattern] = [
            path("dashboard/", self.admin_view(admin_views.dashboard_view), name="dashboard"),
            path(
                "records-of-processing.<str:fmt>",
                self.admin_view(admin_views.records_of_processing_view),
                name="records_of_processing",
            ),
        ]
        return ours + super().get_urls()


# ---------------------------------------------------------------------------------------------------------
# Base classes for ModelAdmins
# ---------------------------------------------------------------------------------------------------------
def changed_fields(message: object) -> str:
    """The field names in a ModelAdmin change message (a list of dicts), never their values."""
    names: list[str] = []
    if isinstance(message, list):
        for part in message:
            if isinstance(part, dict):
                for change in part.values():
                    if isinstance(change, dict):
                        names.extend(str(name) for name in change.get("fields", []))
    return ", ".join(dict.fromkeys(names))


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete through the admin also goes to the audit log, naming the object by type and
    id and the changed fields by name (Django's own LogEntry keeps working beside it)."""

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        audit_record(user=request.user, action=Action.ADD, obj=obj, detail=changed_fields(message))
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        audit_record(user=request.user, action=Action.CHANGE, obj=obj, detail=changed_fields(message))
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        audit_record_many(user=request.user, action=Action.DELETE, objects=list(queryset))
        return super().log_deletions(request, queryset)

    def audit_action(self, request: HttpRequest, name: str, objects: Sequence[models.Model]) -> None:
        """For admin actions and buttons: one entry per object, the action's name as detail."""
        audit_record_many(user=request.user, action=Action.ACTION, objects=objects, detail=name)


class ReadOnlyAdmin(AuditedAdmin):
    """Ledger and logs: shown, never added, changed or deleted through the admin (a POST to a change or delete
    page is a 403)."""

    actions: Sequence[Any] | None = None

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class ServiceBackedAdmin(AuditedAdmin):
    """A ModelAdmin whose saves go through a service (save_model calls it; relations are the service's job too).
    Nothing is deleted through these pages."""

    @csrf_protect_m
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Django wraps this view in an atomic block; our services open their own durable transaction, which
        # must not be nested, and commit the write with everything it implies (a revision, a cache reset).
        response: HttpResponse = self._changeform_view(  # type: ignore[attr-defined]
            request, object_id, form_url, extra_context
        )
        return response

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service in save_model wrote the relations."""

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
