"""API clients in the admin: created and revoked through consent.clients; the key is shown once, only its digest
is stored and never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from config.names import as_given, localised
from consent.admin.bases import ServiceBackedAdmin
from consent.clients import client_create, client_revoke, clients_forget_cache
from consent.models import (
    ApiClient,
    Purpose,
)

# What each scope lets a client do (API.md), in a sentence the DPO reads before granting it.
SCOPE_HELP: dict[str, Promise] = {
    ApiClient.Scope.CONSENT_CHECK: _("Ask whether a person may be contacted for a purpose on a channel (one or many)."),
    ApiClient.Scope.CONSENT_WRITE: _(
        "Record a person's consents, withdrawals and objections, and change their contact preferences."
    ),
    ApiClient.Scope.CONSENT_READ: _(
        "Read a person's consents, their full history with receipts, and their contact preferences."
    ),
    ApiClient.Scope.RECORDS_WRITE: _(
        "Send linked records (purchases, orders, contact data) that attach identifiers and may merge people."
    ),
    ApiClient.Scope.PROFILE_READ: _("Read a person's stored data for a purpose, as far as the policy allows it."),
    ApiClient.Scope.SENDS_CREATE: _(
        "Gate a campaign's recipients before sending, and report what became of the sent messages."
    ),
    ApiClient.Scope.REQUESTS_WRITE: _(
        "Open rights requests (access, erasure, ...) for people and record that their identity was checked."
    ),
    ApiClient.Scope.REQUESTS_READ: _("Follow rights requests and download a person's export."),
    ApiClient.Scope.REQUESTS_APPROVE: _(
        "Approve erasures and lift restrictions: the same decisions the DPO takes in this admin."
    ),
    ApiClient.Scope.WEBHOOKS_MANAGE: _("Subscribe endpoints to events about people (changes, erasures, requests)."),
}
EVERY_PURPOSE, ONLY_THESE = "every", "only"


def scope_choices() -> list[tuple[str, str]]:
    return [(scope, f"{scope}: {SCOPE_HELP.get(scope, '')}") for scope in ApiClient.Scope.values]


def purpose_choices() -> list[tuple[str, str]]:
    """Each purpose by its name in the staff member's language, with its key (what the API and the list show),
    in the order of the names."""
    language = translation.get_language()
    rows = Purpose.objects.order_by("key").values_list("key", "name", "names")
    return sorted(
        ((key, f"{localised(as_given(name, names), language)} ({key})") for key, name, names in rows),
        key=lambda choice: choice[1].casefold(),
    )


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(label=_("Scopes"), choices=scope_choices, widget=forms.CheckboxSelectMultiple)
    # An explicit choice: an unticked list never widens a client to every purpose by accident.
    purpose_scope = forms.ChoiceField(
        label=_("Purposes"),
        choices=[
            (EVERY_PURPOSE, _("Every purpose, including purposes added to the catalogue later")),
            (ONLY_THESE, _("Only the purposes ticked below")),
        ],
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose whether the client may act for every purpose or only for some.")},
    )
    purposes = forms.MultipleChoiceField(
        label=_("Only these purposes"),
        choices=purpose_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_('Used only with "Only the purposes ticked below".'),
    )

    class Meta:
        model = ApiClient
        fields = ("name", "scopes", "purpose_scope", "purposes")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice, purposes = data.get("purpose_scope"), data.get("purposes") or []
        if choice == ONLY_THESE and not purposes:
            self.add_error("purposes", _('Tick at least one purpose, or choose "Every purpose".'))
        elif choice == EVERY_PURPOSE and purposes:
            message = _('Every purpose is chosen: untick these purposes, or choose "Only the purposes ticked below".')
            self.add_error("purposes", message)
        return data


@admin.register(ApiClient)
class ApiClientAdmin(ServiceBackedAdmin):
    form = ApiClientForm
    list_display = ("name", "prefix", "scope_list", "purpose_list", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix")
    actions = ("revoke_selected",)
    # key_digest is in no list, form or page: a digest is all it takes to test guessed keys offline.
    exclude = ("key_digest",)
    shown = ("name", "prefix", "scopes", "purposes", "created_at", "last_used_at", "revoked_at")

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # scopes and purposes are fixed at creation; make a new client and revoke the old one

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("consent.change_apiclient"))

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        return ("name", "scopes", "purpose_scope", "purposes") if obj is None else self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        return () if obj is None else self.shown

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description=_("purposes"))
    def purpose_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.purposes) or str(_("every purpose"))

    def service_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> models.Model:
        data = form.cleaned_data
        # client_create reads an empty list as every purpose; the form has made that an explicit choice.
        purposes = list(data["purposes"]) if data["purpose_scope"] == ONLY_THESE else []
        client, key = client_create(name=data["name"], scopes=list(data["scopes"]), purposes=purposes)
        request._assent_new_key = key  # type: ignore[attr-defined]  # shown by response_add, stored nowhere
        return client

    def response_add(self, request: HttpRequest, obj: models.Model, post_url_continue: str | None = None) -> Any:
        key = getattr(request, "_assent_new_key", None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "API client created",
            "opts": self.opts,
            "client": obj,
            "key": key,
        }
        response = TemplateResponse(request, "assent_admin/apiclient_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected API clients", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        clients = list(queryset.filter(revoked_at__isnull=True))
        for client in clients:
            client_revoke(client=client)
        clients_forget_cache()
        self.audit_action(request, "revoke", clients)
        self.message_user(request, f"{len(clients)} API client(s) revoked; their keys no longer work.")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="consent_apiclient_revoke",
            ),
            *super().get_urls(),
        ]

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST" or not self.has_revoke_permission(request):
            raise PermissionDenied
        client = self.get_object(request, object_id)
        if client is None:
            raise PermissionDenied
        self.revoke_selected(request, ApiClient.objects.filter(pk=client.pk))
        return HttpResponseRedirect(reverse("admin:consent_apiclient_change", args=[client.pk]))

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        obj = kwargs.get("obj")
        context["may_revoke"] = obj is not None and obj.revoked_at is None and self.has_revoke_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    change_form_template = "assent_admin/apiclient_change_form.html"
