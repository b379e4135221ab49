"""The DPO's admin site: two-factor sign-in (Art. 32), the dashboard and the records of processing. The base
classes every Assent ModelAdmin uses live in consent.admin.bases and consent.admin.search.

config/urls.py makes `admin.site` an AssentAdminSite, so every `@admin.register` (ours, auth's, django-otp's)
is served by it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django_otp import devices_for_user, match_token
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from consent.admin.audit import Action, audit_record
from consent.admin.views import dashboard_view, records_of_processing_page, records_of_processing_view


def two_factor_required() -> bool:
    return settings.ASSENT_ADMIN_REQUIRE_2FA


LOGIN_FAILED = "Please enter the correct username, password and authentication code for a staff account."
_SIGNED_IN_AT = "assent_admin_signed_in_at"


class BoundedUsernameMixin:
    """Django's sign-in form advertises the username's maximum length (150) but never checks it. A longer one went
    on to authentication, where the lockout (axes) stores it in a 255-character column: a 500 for any visitor.
    It is refused here, with the one message, before anything is looked up or stored."""

    fields: dict[str, Any]
    cleaned_data: dict[str, Any]

    def clean_username(self) -> str:
        username: str = self.cleaned_data.get("username", "")
        if len(username) > (self.fields["username"].max_length or 150):
            raise ValidationError(LOGIN_FAILED, code="invalid_login")
        return username


class AssentLoginForm(BoundedUsernameMixin, OTPAdminAuthenticationForm):
    """The OTP login form, saying nothing about which factor failed: a wrong password, a missing code and a wrong
    code get one message and the same page (no device list, no password echoed back), so the form cannot be used
    to test passwords. A right password with a wrong code counts as a failed sign-in for the lockout (axes).
    A staff member need not pick an authenticator from a list: the code is tried against their devices."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            if getattr(self, "user_cache", None) is not None:  # a right password, a wrong code: a failure too
                user_login_failed.send(
                    sender=type(self),
                    credentials={"username": self.cleaned_data.get("username", "")},
                    request=self.request,
                )
            self.user_cache = None
            self.fields["password"].widget.render_value = False
            self.fields["otp_device"].widget.choices = []
            raise ValidationError(LOGIN_FAILED, code="invalid_login") from None

    def _chosen_device(self, user: Any) -> Any:
        device = super()._chosen_device(user)
        if device is None:
            devices = list(devices_for_user(user, confirmed=True, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device

    def _verify_token(self, user: Any, token: str, device: Any = None) -> Any:
        if device is None:  # several authenticators and none picked: the code says which
            matched = match_token(user, token)
            if matched is None:
                raise ValidationError(LOGIN_FAILED, code="invalid_token")
            return matched
        return super()._verify_token(user, token, device)


class PlainLoginForm(BoundedUsernameMixin, AdminAuthenticationForm):
    """The demo's password-only form, with the same single message."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            raise ValidationError(LOGIN_FAILED, code="invalid_login") from None


def admin_session_hours() -> int:
    return settings.ASSENT_ADMIN_SESSION_HOURS


class AssentAdminSite(OTPAdminSite):
    """An OTP admin site whose second factor can be switched off for the zero-setup demo only
    (ASSENT_ADMIN_REQUIRE_2FA, default on outside the demo). Read at each request, so tests can switch it."""

    site_header = "Assent"
    site_title = "Assent"
    index_title = gettext_lazy("Consent, subjects and rights requests")
    index_template = "assent_admin/index.html"

    @property
    def login_form(self) -> type[AdminAuthenticationForm]:
        return AssentLoginForm if two_factor_required() else PlainLoginForm

    @property
    def login_template(self) -> str:
        return "otp/admin111/login.html" if two_factor_required() else "admin/login.html"

    def has_permission(self, request: HttpRequest) -> bool:
        if not admin.AdminSite.has_permission(self, request):
            return False
        if not self._session_current(request):
            return False
        # A staff member signed in with a password alone is treated as not staff until a TOTP code verified them.
        return not two_factor_required() or bool(getattr(request.user, "is_verified", lambda: False)())

    @method_decorator(never_cache)
    @method_decorator(login_not_required)
    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response: HttpResponse = super().login(request, extra_context)
        if request.method == "POST" and response.status_code == 302 and request.user.is_authenticated:
            request.session[_SIGNED_IN_AT] = int(time.time())
            audit_record(user=request.user, action=Action.SIGN_IN)
        return response

    def _session_current(self, request: HttpRequest) -> bool:
        """False (and signed out) once ASSENT_ADMIN_SESSION_HOURS have passed since sign-in. A session that never
        went through our login view (force_login, a session from before this rule) starts its clock now rather
        than being thrown out."""
        session = request.session
        now = int(time.time())
        signed_in_at = session.get(_SIGNED_IN_AT)
        if not isinstance(signed_in_at, int):
            session[_SIGNED_IN_AT] = now
            return True
        if now - signed_in_at < admin_session_hours() * 3600:
            return True
        audit_record(user=request.user, action=Action.SIGN_OUT, detail="session expired")
        auth_logout(request)
        return False

    def logout(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and request.user.is_authenticated:
            audit_record(user=request.user, action=Action.SIGN_OUT)
        response: HttpResponse = super().logout(request, extra_context)
        return response

    def get_urls(self) -> list[URLResolver | URLPattern]:
        ours: list[URLResolver | URLPattern] = [
            path("dashboard/", self.admin_view(dashboard_view), name="dashboard"),
            path(
                "records-of-processing/",
                self.admin_view(records_of_processing_page),
                name="records_of_processing_page",
            ),
            path(
                "records-of-processing.<str:fmt>",
                self.admin_view(records_of_processing_view),
                name="records_of_processing",
            ),
        ]
        return ours + super().get_urls()
