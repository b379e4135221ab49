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

from consent.admin.bases import ServiceBackedAdmin
from consent.clients import client_create, client_revoke, clients_forget_cache
from consent.models import (
    ApiClient,
    Purpose,
)


class ApiClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiClient.Scope.choices, widget=forms.CheckboxSelectMultiple)
    purposes = forms.MultipleChoiceField(
        choices=lambda: [(k, k) for k in Purpose.objects.order_by("key").values_list("key", flat=True)],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: the client may act for every purpose.",
    )

    class Meta:
        model = ApiClient
        fields = ("name", "scopes", "purposes")


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
        return ("name", "scopes", "purposes") if obj is None else self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        return () if obj is None else self.shown

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="purposes")
    def purpose_list(self, obj: ApiClient) -> str:
        return ", ".join(obj.purposes) or "every purpose"

    def service_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> models.Model:
        data = form.cleaned_data
        client, key = client_create(name=data["name"], scopes=list(data["scopes"]), purposes=list(data["purposes"]))
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
