"""The DPO's admin site: two-factor sign-in (Art. 32), the dashboard and the records of processing, and the base
classes every Assent ModelAdmin uses so that each staff action lands in the audit log.

config/urls.py makes `admin.site` an AssentAdminSite, so every `@admin.register` (ours, auth's, django-otp's)
is served by it."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.views.main import PAGE_VAR, SEARCH_VAR, ChangeList
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, URLResolver, path
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django_otp import devices_for_user, match_token
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from consent.audit import Action, audit_record, audit_record_many


def two_factor_required() -> bool:
    return settings.ASSENT_ADMIN_REQUIRE_2FA


LOGIN_FAILED = "Please enter the correct username, password and authentication code for a staff account."
_SIGNED_IN_AT = "assent_admin_signed_in_at"


class AssentLoginForm(OTPAdminAuthenticationForm):
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


class PlainLoginForm(AdminAuthenticationForm):
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
    index_title = "Consent, subjects and rights requests"
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


# ---------------------------------------------------------------------------------------------------------
# Searches for people: the term stays on the server
# ---------------------------------------------------------------------------------------------------------
SEARCH_TOKEN_VAR = "qt"
_SEARCH_MARK = "_assent_search"
_SEARCHES = "assent_admin_searches"
_SEARCHES_KEPT = 20
_SEARCH_SECONDS = 3600  # a search's term is kept (in the session, on the server) for an hour at most


class _PrivateSearchChangeList(ChangeList):
    """A change list whose search term comes from the session (by the `qt` token), never from the URL: its links
    (filters, sorting, pages) carry the token, and `qt` is not mistaken for a field lookup."""

    def get_filters_params(self, params: Any = None) -> Any:
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(SEARCH_TOKEN_VAR, None)
        return lookup_params

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> Any:
        self.query = getattr(request, "assent_search_term", "")
        return super().get_queryset(request, exclude_parameters)


class PrivateSearchAdmin(ReadOnlyAdmin):
    """A change list searched for a person (an e-mail, a phone, a subject id): the search is a POST, its term is
    kept in the staff member's session under a random token and the list is shown at `?qt=<token>`, so the term
    never reaches a URL, a browser history or an access log. Each search is audited like a view, saying what kind
    of term it was, never the term. A `?q=` in the URL is refused (the list, unsearched, with a message)."""

    change_list_template = "assent_admin/private_search_change_list.html"

    def search_kind(self, term: str) -> str:
        """What was searched by, in words that hold nothing of the term (overridden where kinds can be told)."""
        return "subject id" if _is_uuid(term) else "identifier"

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _PrivateSearchChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "POST" and _SEARCH_MARK in request.POST:
            if not self.has_view_or_change_permission(request):
                raise PermissionDenied
            return self._search(request, request.POST.get(SEARCH_VAR, ""))
        if SEARCH_VAR in request.GET:
            messages.warning(request, "Please search with the search box: a term in the address would be logged.")
            return redirect(self._list_url(request, token=None))
        term = ""
        token = request.GET.get(SEARCH_TOKEN_VAR)
        if token is not None:
            term = _searches(request).get(token, {}).get("term", "")
            if not term:
                messages.info(request, "That search is no longer available; please search again.")
                return redirect(self._list_url(request, token=None))
        request.assent_search_term = term  # type: ignore[attr-defined]
        context = {**(extra_context or {}), "assent_search_term": term, "assent_search_mark": _SEARCH_MARK}
        return super().changelist_view(request, context)

    def _search(self, request: HttpRequest, term: str) -> HttpResponse:
        term = term.strip()[:256]
        if not term:
            return redirect(self._list_url(request, token=None))
        audit_record(
            user=request.user,
            action=Action.VIEW,
            object_type=self.opts.label_lower,
            detail=f"search by {self.search_kind(term)}",
        )
        token = secrets.token_urlsafe(16)
        searches = _searches(request)
        searches[token] = {"term": term, "at": int(time.time())}
        request.session[_SEARCHES] = dict(list(searches.items())[-_SEARCHES_KEPT:])
        return redirect(self._list_url(request, token=token))

    def _list_url(self, request: HttpRequest, *, token: str | None) -> str:
        params = request.GET.copy()
        for name in (SEARCH_VAR, SEARCH_TOKEN_VAR, PAGE_VAR):
            params.pop(name, None)
        if token is not None:
            params[SEARCH_TOKEN_VAR] = token
        query = params.urlencode()
        return request.path + (f"?{query}" if query else "")


def _searches(request: HttpRequest) -> dict[str, dict[str, Any]]:
    """The session's recent searches by token, without those older than an hour."""
    kept = request.session.get(_SEARCHES)
    if not isinstance(kept, dict):
        return {}
    oldest = time.time() - _SEARCH_SECONDS
    return {
        token: entry
        for token, entry in kept.items()
        if isinstance(entry, dict) and isinstance(entry.get("at"), int) and entry["at"] >= oldest
    }


def _is_uuid(term: str) -> bool:
    try:
        uuid.UUID(term.strip())
    except ValueError:
        return False
    return True


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
