"""The DPO's admin for consent: the catalogue (edited through catalogue_apply, one revision per edit), API clients
(created and revoked through consent.clients), the read-only ledger and logs, the audit log, and staff accounts.

Every page here is an edge: writes go through services, and each staff action is audited (consent.admin_site)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_otp.plugins.otp_totp import admin as otp_totp_admin
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.errors import DomainError
from consent.admin_site import AuditedAdmin, PrivateSearchAdmin, ReadOnlyAdmin, ServiceBackedAdmin
from consent.catalogue.edit import (
    Edit,
    catalogue_edit,
    catalogue_edit_problems,
    edit_category,
    edit_channel,
    edit_holding,
    edit_notice,
    edit_purpose,
    edit_source,
    holding_item,
    notice_item,
    notice_version_taken,
    purpose_item,
)
from consent.clients import client_create, client_revoke, clients_forget_cache
from consent.dashboard import outdated_notice_consents
from consent.models import (
    ApiClient,
    AuditEntry,
    CatalogueRevision,
    Channel,
    ConsentEvent,
    ConsentState,
    DataCategory,
    LedgerHead,
    Notice,
    Objection,
    Purpose,
    ReadLog,
    Send,
    SendRecipient,
    Source,
    SourceCategory,
)

# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
# The request being served, for list and read-only columns that need it (ModelAdmins are shared across threads).
_request: ContextVar[HttpRequest | None] = ContextVar("assent_admin_request", default=None)


class RequestAwareAdmin(admin.ModelAdmin):
    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        token = _request.set(request)
        try:
            response: HttpResponse = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()  # the columns run while rendering
            return response
        finally:
            _request.reset(token)

    def _changeform_view(
        self, request: HttpRequest, object_id: str | None, form_url: str, extra_context: dict[str, Any] | None
    ) -> HttpResponse:
        token = _request.set(request)
        try:
            response: HttpResponse = super()._changeform_view(  # type: ignore[misc]
                request, object_id, form_url, extra_context
            )
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _request.reset(token)


def subject_link(subject_id: uuid.UUID | None) -> str:
    if subject_id is None:
        return "-"
    url = reverse("admin:subjects_subject_change", args=[subject_id])
    return format_html('<a href="{}">{}</a>', url, str(subject_id))


def _uuid_or_none(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


class SubjectLogAdmin(PrivateSearchAdmin):
    """A read-only log searched by the subject's id (exactly): the one way to find a person's rows that reads no
    personal data."""

    search_fields = ("subject__id",)
    search_help_text = "A subject id (UUID), exactly."

    @admin.display(description="subject")
    def subject_ref(self, obj: Any) -> str:
        return subject_link(obj.subject_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if not search_term.strip():
            return queryset, False
        subject_id = _uuid_or_none(search_term)
        return (queryset.filter(subject_id=subject_id) if subject_id else queryset.none()), False


# ---------------------------------------------------------------------------------------------------------
# Staff accounts: the same admins as Django's and django-otp's, with every change audited
# ---------------------------------------------------------------------------------------------------------
User = get_user_model()
for _model, _base in (
    (User, UserAdmin),
    (Group, GroupAdmin),
    (TOTPDevice, otp_totp_admin.TOTPDeviceAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, type(f"Audited{_base.__name__}", (AuditedAdmin, _base), {}))


# ---------------------------------------------------------------------------------------------------------
# Catalogue: every save is an edit of the catalogue document, applied by catalogue_apply as a new revision
# ---------------------------------------------------------------------------------------------------------
class CatalogueForm(forms.ModelForm):
    """Builds the catalogue edit this form stands for and checks it against every catalogue rule."""

    edit: Edit

    def build_edit(self) -> Edit:
        raise NotImplementedError

    def lookup(self) -> dict[str, Any]:
        """How to find the stored row once the edit is applied."""
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if not self.errors:
            self.edit = self.build_edit()
            problems = catalogue_edit_problems(edit=self.edit)
            if problems:
                raise ValidationError([ValidationError(p) for p in problems])
        return cleaned

    def key(self) -> str:
        return str(self.cleaned_data.get("key") or self.instance.key)


class CatalogueAdmin(ServiceBackedAdmin):
    readonly_on_change: tuple[str, ...] = ("key",)

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, *self.readonly_on_change) if obj is not None else readonly

    def save_model(self, request: HttpRequest, obj: models.Model, form: CatalogueForm, change: bool) -> None:
        try:
            result = catalogue_edit(edit=form.edit)
        except DomainError as exc:  # another editor changed the catalogue in between; rare, told plainly
            raise PermissionDenied(f"the catalogue edit was refused: {exc.detail}") from exc
        obj.pk = type(obj)._default_manager.values_list("pk", flat=True).get(**form.lookup())
        if result.changed:
            summary = "; ".join(result.changes[:8]) + (" ..." if len(result.changes) > 8 else "")
            self.message_user(request, f"Catalogue revision {result.revision_id}: {summary}", messages.INFO)


class ChannelForm(CatalogueForm):
    class Meta:
        model = Channel
        fields = ("key", "name")

    def build_edit(self) -> Edit:
        return edit_channel(key=self.key(), name=self.cleaned_data["name"])

    def lookup(self) -> dict[str, Any]:
        return {"key": self.key()}


@admin.register(Channel)
class ChannelAdmin(CatalogueAdmin):
    form = ChannelForm
    list_display = ("key", "name")
    search_fields = ("key", "name")


class DataCategoryForm(CatalogueForm):
    class Meta:
        model = DataCategory
        fields = ("key", "name", "profile", "purchase")

    def build_edit(self) -> Edit:
        return edit_category(
            key=self.key(),
            name=self.cleaned_data["name"],
            profile=self.cleaned_data["profile"],
            purchase=self.cleaned_data["purchase"],
        )

    def lookup(self) -> dict[str, Any]:
        return {"key": self.key()}


@admin.register(DataCategory)
class DataCategoryAdmin(CatalogueAdmin):
    form = DataCategoryForm
    list_display = ("key", "name", "profile", "purchase")
    search_fields = ("key", "name")


def _channel_choices() -> list[tuple[str, str]]:
    return [(key, key) for key in Channel.objects.order_by("key").values_list("key", flat=True)]


class TcfPurposesField(forms.CharField):
    """IAB TCF purpose ids typed as "1, 3, 4"."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[int]:  # type: ignore[override]
        text = super().to_python(value)
        try:
            return [int(part) for part in str(text).replace(";", ",").split(",") if part.strip()]
        except ValueError:
            raise ValidationError("list whole numbers separated by commas, e.g. 1, 3, 4") from None


class PurposeForm(CatalogueForm):
    double_opt_in = forms.MultipleChoiceField(
        choices=_channel_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Channels on which a grant waits for the person's confirmation (UWG §7(2) Nr. 2 for e-mail).",
    )
    tcf_purposes = TcfPurposesField(required=False, help_text="IAB TCF v2.2 purpose ids, e.g. 1, 3, 4.")
    new_notice_version = forms.CharField(
        required=False,
        max_length=64,
        help_text="A notice's texts never change: to show a new text, give it a new version. Leave empty to keep "
        "the current notice.",
    )
    new_notice_requires_reconsent = forms.BooleanField(
        required=False, help_text="Consents given for earlier versions become outdated (notice_outdated)."
    )
    new_notice_text_de = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Text (de)")
    new_notice_text_en = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="Text (en)")

    class Meta:
        model = Purpose
        fields = (
            "key",
            "name",
            "legal_basis",
            "marketing",
            "channels",
            "data_categories",
            "double_opt_in",
            "consent_valid_days",
            "uwg_7_3",
            "dpv",
            "automated_decision",
            "gpc",
            "tcf_purposes",
            "reads_device_identifiers",
        )
        widgets = {
            "channels": forms.CheckboxSelectMultiple,
            "data_categories": forms.CheckboxSelectMultiple,
        }

    def clean(self) -> dict[str, Any]:
        data = self.cleaned_data
        version = (data.get("new_notice_version") or "").strip()
        if version:
            if not (data.get("new_notice_text_de") or "").strip() or not (data.get("new_notice_text_en") or "").strip():
                self.add_error("new_notice_text_de", "A new notice needs its German and English texts.")
            elif notice_version_taken(purpose=self.key(), version=version):
                self.add_error(
                    "new_notice_version", f"Version '{version}' exists; a new text needs a version of its own."
                )
        return super().clean()

    def new_notice(self) -> dict[str, Any] | None:
        version = (self.cleaned_data.get("new_notice_version") or "").strip()
        if not version:
            return None
        texts = {"de": self.cleaned_data["new_notice_text_de"], "en": self.cleaned_data["new_notice_text_en"]}
        return notice_item(version, bool(self.cleaned_data.get("new_notice_requires_reconsent")), texts)

    def build_edit(self) -> Edit:
        data = self.cleaned_data
        item = purpose_item(
            key=self.key(),
            name=data["name"],
            legal_basis=data["legal_basis"],
            marketing=data["marketing"],
            channels=[c.key for c in data["channels"]],
            data_categories=[c.key for c in data["data_categories"]],
            double_opt_in=list(data.get("double_opt_in") or []),
            consent_valid_days=data.get("consent_valid_days"),
            uwg_7_3=data["uwg_7_3"],
            dpv=data.get("dpv") or "",
            automated_decision=data.get("automated_decision") or "",
            gpc=data["gpc"],
            tcf_purposes=data.get("tcf_purposes") or [],
            reads_device_identifiers=data["reads_device_identifiers"],
            notice=self.new_notice(),
        )
        return edit_purpose(item=item)

    def lookup(self) -> dict[str, Any]:
        return {"key": self.key()}


def _outdated_by_purpose() -> dict[str, list[tuple[str, int]]]:
    """Consents on outdated notice versions, per purpose; computed once per request."""
    request = _request.get()
    cached: dict[str, list[tuple[str, int]]] | None = getattr(request, "_assent_outdated", None)
    if cached is None:
        cached = {}
        for row in outdated_notice_consents():
            cached.setdefault(row.purpose, []).append((row.version, row.count))
        if request is not None:
            request._assent_outdated = cached  # type: ignore[attr-defined]
    return cached


@admin.register(Purpose)
class PurposeAdmin(RequestAwareAdmin, CatalogueAdmin):
    form = PurposeForm
    list_display = ("key", "name", "legal_basis", "marketing", "channel_list", "current_notice", "outdated_consents")
    list_filter = ("legal_basis", "marketing")
    search_fields = ("key", "name")
    readonly_fields = ("notices_overview",)
    fieldsets = (
        (None, {"fields": ("key", "name", "legal_basis", "marketing", "channels", "data_categories")}),
        (
            "Consent",
            {"fields": ("double_opt_in", "consent_valid_days", "uwg_7_3", "reads_device_identifiers", "gpc")},
        ),
        ("Vocabularies and transparency", {"fields": ("dpv", "tcf_purposes", "automated_decision")}),
        ("Notices", {"fields": ("notices_overview",)}),
        (
            "New notice version",
            {
                "fields": (
                    "new_notice_version",
                    "new_notice_requires_reconsent",
                    "new_notice_text_de",
                    "new_notice_text_en",
                ),
                "description": "Editing a notice's text creates a new version; the old version stays as the text "
                "people agreed to.",
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Purpose]:
        return super().get_queryset(request).prefetch_related("channels", "notices")

    @admin.display(description="channels")
    def channel_list(self, obj: Purpose) -> str:
        return ", ".join(sorted(c.key for c in obj.channels.all()))

    @admin.display(description="current notice")
    def current_notice(self, obj: Purpose) -> str:
        notices = sorted(obj.notices.all(), key=lambda n: (n.created_at, n.pk))
        return notices[-1].version if notices else "-"

    @admin.display(description="consents on outdated notices")
    def outdated_consents(self, obj: Purpose) -> str:
        rows = _outdated_by_purpose().get(obj.key, [])
        return ", ".join(f"{n} on {version}" for version, n in rows) or "-"

    @admin.display(description="notice versions")
    def notices_overview(self, obj: Purpose | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        outdated = dict(_outdated_by_purpose().get(obj.key, []))
        rows = [
            (
                reverse("admin:consent_notice_change", args=[n.pk]),
                n.version,
                n.created_at.strftime("%Y-%m-%d"),
                "requires re-consent" if n.requires_reconsent else "",
                f"{outdated[n.version]} consents outdated" if n.version in outdated else "",
            )
            for n in sorted(obj.notices.all(), key=lambda n: (n.created_at, n.pk))
        ]
        if not rows:
            return "-"
        return format_html(
            "<table><tr><th>version</th><th>added</th><th></th><th></th></tr>{}</table>",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>', rows),
        )


class NoticeForm(CatalogueForm):
    text_de = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), label="Text (de)")
    text_en = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), label="Text (en)")

    class Meta:
        model = Notice
        fields = ("purpose", "version", "requires_reconsent")

    def clean(self) -> dict[str, Any]:
        purpose, version = self.cleaned_data.get("purpose"), self.cleaned_data.get("version")
        if purpose is not None and version and notice_version_taken(purpose=purpose.key, version=version):
            self.add_error("version", f"Version '{version}' exists; a new text needs a version of its own.")
        self.instance.texts = {"de": self.cleaned_data.get("text_de", ""), "en": self.cleaned_data.get("text_en", "")}
        self.instance.created_at = timezone.now()
        return super().clean()

    def build_edit(self) -> Edit:
        data = self.cleaned_data
        return edit_notice(
            purpose=data["purpose"].key,
            version=data["version"],
            requires_reconsent=data["requires_reconsent"],
            texts={"de": data["text_de"], "en": data["text_en"]},
        )

    def lookup(self) -> dict[str, Any]:
        return {"purpose": self.cleaned_data["purpose"], "version": self.cleaned_data["version"]}


@admin.register(Notice)
class NoticeAdmin(RequestAwareAdmin, CatalogueAdmin):
    """A notice version's texts never change: notices are added, never edited. The read-only page of a notice
    offers to start a new version from its texts."""

    form = NoticeForm
    list_display = ("purpose", "version", "requires_reconsent", "created_at")
    list_filter = ("purpose", "requires_reconsent")
    readonly_on_change = ()

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        if obj is None:
            return ("purpose", "version", "requires_reconsent", "text_de", "text_en")
        return ("purpose", "version", "requires_reconsent", "created_at", "text_de_shown", "text_en_shown", "next")

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        if obj is None:
            return ()
        return ("purpose", "version", "requires_reconsent", "created_at", "text_de_shown", "text_en_shown", "next")

    @admin.display(description="text (de)")
    def text_de_shown(self, obj: Notice) -> str:
        return str(obj.texts.get("de", ""))

    @admin.display(description="text (en)")
    def text_en_shown(self, obj: Notice) -> str:
        return str(obj.texts.get("en", ""))

    @admin.display(description="a new text")
    def next(self, obj: Notice) -> str:
        request = _request.get()
        if request is None or not self.has_add_permission(request):
            return "-"
        url = reverse("admin:consent_notice_add") + f"?from={obj.pk}"
        return format_html('<a class="button" href="{}">New version from this text</a>', url)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        source = request.GET.get("from", "")
        if source.isdigit():
            notice = Notice.objects.filter(pk=int(source)).first()
            if notice is not None:
                initial.update(
                    purpose=notice.purpose_id,
                    text_de=notice.texts.get("de", ""),
                    text_en=notice.texts.get("en", ""),
                )
        return initial


class SourceForm(CatalogueForm):
    class Meta:
        model = Source
        fields = ("key", "name", "system_of_record")

    def build_edit(self) -> Edit:
        return edit_source(
            key=self.key(), name=self.cleaned_data["name"], system_of_record=self.cleaned_data["system_of_record"]
        )

    def lookup(self) -> dict[str, Any]:
        return {"key": self.key()}


class HoldingInline(admin.TabularInline):
    model = SourceCategory
    fields = ("category", "delete_after_days", "legal_hold_years", "legal_hold_from", "legal_hold_law")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name_plural = "data categories held (edit each under Source categories)"

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(CatalogueAdmin):
    form = SourceForm
    list_display = ("key", "name", "system_of_record")
    search_fields = ("key", "name")
    inlines = (HoldingInline,)


class SourceCategoryForm(CatalogueForm):
    class Meta:
        model = SourceCategory
        fields = ("source", "category", "delete_after_days", "legal_hold_years", "legal_hold_from", "legal_hold_law")

    def _pair(self) -> tuple[str, str]:
        source = self.cleaned_data.get("source") or self.instance.source
        category = self.cleaned_data.get("category") or self.instance.category
        return source.key, category.key

    def build_edit(self) -> Edit:
        data = self.cleaned_data
        source, category = self._pair()
        return edit_holding(
            source=source,
            category=category,
            holding=holding_item(
                delete_after_days=data["delete_after_days"],
                legal_hold_years=data.get("legal_hold_years"),
                legal_hold_from=data.get("legal_hold_from") or "",
                legal_hold_law=data.get("legal_hold_law") or "",
            ),
        )

    def lookup(self) -> dict[str, Any]:
        source, category = self._pair()
        return {"source__key": source, "category__key": category}


@admin.register(SourceCategory)
class SourceCategoryAdmin(CatalogueAdmin):
    form = SourceCategoryForm
    list_display = ("source", "category", "delete_after_days", "legal_hold_years", "legal_hold_law")
    list_filter = ("source", "category")
    readonly_on_change = ("source", "category")


@admin.register(CatalogueRevision)
class CatalogueRevisionAdmin(ReadOnlyAdmin):
    list_display = ("pk", "applied_at", "digest")
    fields = ("applied_at", "digest", "merge_identifiers", "one_per_person", "document")
    readonly_fields = ("one_per_person",)

    @admin.display(description="one per person")
    def one_per_person(self, obj: CatalogueRevision) -> str:
        kinds = (obj.document or {}).get("one_per_person") if isinstance(obj.document, dict) else None
        return ", ".join(kinds) if kinds else "(none: any merge happens at once)"


# ---------------------------------------------------------------------------------------------------------
# API clients: the key is shown once, only its digest is stored and never shown
# ---------------------------------------------------------------------------------------------------------
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

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        data = form.cleaned_data
        client, key = client_create(name=data["name"], scopes=list(data["scopes"]), purposes=list(data["purposes"]))
        obj.pk = client.pk
        obj.__dict__.update({f.attname: getattr(client, f.attname) for f in ApiClient._meta.concrete_fields})
        request._assent_new_key = key  # type: ignore[attr-defined]  # shown by response_add, stored nowhere

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


# ---------------------------------------------------------------------------------------------------------
# The ledger and the logs: read-only
# ---------------------------------------------------------------------------------------------------------
@admin.register(ConsentEvent)
class ConsentEventAdmin(SubjectLogAdmin):
    list_display = (
        "subject_ref",
        "seq",
        "action",
        "purpose",
        "channel",
        "notice_version",
        "source",
        "actor",
        "occurred_at",
        "recorded_at",
    )
    list_filter = ("action", "actor", "purpose", "source")
    date_hierarchy = "occurred_at"
    # The evidence is personal data under the subject's key: it is shown, decrypted and audited, on the subject.
    fields = (
        "subject_ref",
        "seq",
        "action",
        "purpose",
        "channel",
        "notice_version",
        "source",
        "actor",
        "client",
        "related_subject",
        "occurred_at",
        "recorded_at",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields
    list_select_related = ("client",)


@admin.register(LedgerHead)
class LedgerHeadAdmin(SubjectLogAdmin):
    list_display = ("subject_ref", "last_seq", "last_hash")
    fields = ("subject_ref", "last_seq", "last_hash")
    readonly_fields = fields


@admin.register(ConsentState)
class ConsentStateAdmin(SubjectLogAdmin):
    list_display = ("subject_ref", "purpose", "channel", "status", "notice_version", "since", "confirmed")
    list_filter = ("purpose", "channel", "status", "confirmed")
    fields = (
        "subject_ref",
        "purpose",
        "channel",
        "status",
        "notice_version",
        "since",
        "granted_at",
        "confirmed",
        "actor",
        "suppressed",
        "seq",
    )
    readonly_fields = fields


@admin.register(Objection)
class ObjectionAdmin(SubjectLogAdmin):
    list_display = ("subject_ref", "purpose", "since")
    fields = ("subject_ref", "purpose", "since", "seq")
    readonly_fields = fields


@admin.register(ReadLog)
class ReadLogAdmin(SubjectLogAdmin):
    list_display = ("read_at", "subject_ref", "client", "purpose", "categories")
    list_filter = ("purpose", "client")
    date_hierarchy = "read_at"
    fields = ("subject_ref", "client", "purpose", "categories", "read_at")
    readonly_fields = fields
    list_select_related = ("client",)


@admin.register(Send)
class SendAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "campaign", "purpose", "channel", "client", "allowed_count", "blocked_count")
    list_filter = ("purpose", "channel", "client")
    search_fields = ("campaign",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "client",
        "campaign",
        "purpose",
        "channel",
        "created_at",
        "allowed_count",
        "blocked_count",
        "recipients",
    )
    readonly_fields = fields
    list_select_related = ("client",)

    @admin.display(description="recipients")
    def recipients(self, obj: Send) -> str:
        url = reverse("admin:consent_sendrecipient_changelist") + f"?send__id__exact={obj.pk}"
        return format_html('<a href="{}">each recipient\'s decision</a>', url)


@admin.register(SendRecipient)
class SendRecipientAdmin(SubjectLogAdmin):
    list_display = ("send", "index", "subject_ref", "allowed", "reason")
    list_filter = ("allowed", "reason")
    fields = ("send", "index", "subject_ref", "allowed", "reason")
    readonly_fields = fields


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("at", "username", "action", "object_type", "object_id", "detail")
    list_filter = ("action", "object_type")
    search_fields = ("=username", "=object_id")
    date_hierarchy = "at"
    fields = ("at", "username", "user_id", "action", "object_type", "object_id", "detail")
    readonly_fields = fields
