"""Purposes and their notices in the admin: edited through the catalogue (consent.admin.catalogue), with the
consents that stand on outdated notice versions beside them. A notice version's texts never change."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from consent.admin.catalogue import CatalogueAdmin, CatalogueForm
from consent.admin.dashboard import outdated_notice_consents
from consent.catalogue.edit import (
    Edit,
    edit_notice,
    edit_purpose,
    notice_item,
    notice_version_taken,
    purpose_item,
)
from consent.models import (
    Channel,
    Notice,
    Purpose,
)

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

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        token = _request.set(request)
        try:
            response: HttpResponse = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _request.reset(token)


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
