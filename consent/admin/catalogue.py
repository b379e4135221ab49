"""The catalogue in the admin: channels, data categories, sources and what they hold, and the revisions. Every
save is an edit of the catalogue document, applied by catalogue_edit as a new revision (purposes and notices:
consent.admin.purposes)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest

from config.errors import DomainError
from consent.admin.bases import ReadOnlyAdmin, ServiceBackedAdmin, ViewOnly
from consent.catalogue.edit import (
    Edit,
    catalogue_edit,
    catalogue_edit_problems,
    edit_category,
    edit_channel,
    edit_holding,
    edit_source,
    holding_item,
)
from consent.models import (
    CatalogueRevision,
    Channel,
    DataCategory,
    Source,
    SourceCategory,
)


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

    def service_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> models.Model:
        try:
            result = catalogue_edit(edit=form.edit)
        except DomainError as exc:  # another editor changed the catalogue in between; rare, told plainly
            raise PermissionDenied(f"the catalogue edit was refused: {exc.detail}") from exc
        obj.pk = type(obj)._default_manager.values_list("pk", flat=True).get(**form.lookup())
        if result.changed:
            summary = "; ".join(result.changes[:8]) + (" ..." if len(result.changes) > 8 else "")
            self.message_user(request, f"Catalogue revision {result.revision_id}: {summary}", messages.INFO)
        return obj


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


class HoldingInline(ViewOnly, admin.TabularInline):
    model = SourceCategory
    fields = ("category", "delete_after_days", "legal_hold_years", "legal_hold_from", "legal_hold_law")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    verbose_name_plural = "data categories held (edit each under Source categories)"


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
