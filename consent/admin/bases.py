"""The base classes every Assent ModelAdmin uses, so that each staff action lands in the audit log: audited,
read-only, and service-backed change forms (whose saves go through a service in its own durable transaction).

Every page of the admin is an edge: writes go through services, and each staff action is audited."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from consent.admin.audit import Action, audit_record, audit_record_many

M = TypeVar("M", bound=models.Model)


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

    def response_action(self, request: HttpRequest, queryset: Any) -> Any:
        """Django builds `pk__in=<the ticked ids>` from the form as posted; an id that is no id (an edited form,
        `_selected_action=`) raised in the query and answered a 500. Such ids are dropped first: none left is
        Django's own "Items must be selected" message."""
        pk = self.model._meta.pk
        assert pk is not None
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        valid = []
        for value in selected:
            try:
                pk.to_python(value)
            except (ValidationError, ValueError, TypeError):
                continue
            valid.append(value)
        if len(valid) != len(selected):
            posted = request.POST.copy()
            posted.setlist(ACTION_CHECKBOX_NAME, valid)
            request.POST = posted  # type: ignore[assignment]
        return super().response_action(request, queryset)

    def audit_action(self, request: HttpRequest, name: str, objects: Sequence[models.Model]) -> None:
        """For admin actions and buttons: one entry per object, the action's name as detail."""
        audit_record_many(user=request.user, action=Action.ACTION, objects=objects, detail=name)


class ViewOnly:
    """For ModelAdmins and inlines: nothing is added, changed or deleted through these pages."""

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ViewOnly, AuditedAdmin):
    """Ledger and logs: shown, never added, changed or deleted through the admin (a POST to a change or delete
    page is a 403). Subclasses with a page of their own build it with shown_object and render_page."""

    actions: Sequence[Any] | None = None

    def shown_object(self, request: HttpRequest, object_id: str, model: type[M]) -> M | HttpResponse:
        """The object a page of its own shows, read with a GET only (anything else is a 403), by a staff member
        allowed to view it (else a 403); Django's redirect with a message if there is no such object."""
        if request.method != "GET":
            raise PermissionDenied  # nothing is changed through these pages: their steps have views of their own
        obj = self.get_object(request, unquote(object_id))
        if not isinstance(obj, model):  # None: there is no such object
            response: HttpResponse = self._get_obj_does_not_exist_redirect(  # type: ignore[attr-defined]
                request, self.opts, object_id
            )
            return response
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return obj

    def render_page(self, request: HttpRequest, template: str, context: dict[str, Any]) -> TemplateResponse:
        """A page of this admin, with the site's context and this model's options."""
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, template, {**self.admin_site.each_context(request), "opts": self.opts, **context}
        )


class FormValidated(Exception):
    """A service-backed change form passed validation inside Django's atomic block, where nothing was written;
    it carries the form out of the block so that the service saves it (see ServiceBackedAdmin.changeform_view)."""

    def __init__(self, form: Any, formsets: Any) -> None:
        super().__init__("the change form is valid")
        self.form = form
        self.formsets = formsets


class ServiceBackedAdmin(AuditedAdmin):
    """A ModelAdmin whose saves go through a service (service_save calls it; relations are the service's job too).
    Nothing is deleted through these pages."""

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Django validates and saves the form inside an atomic block; our services open their own durable
        # transaction, which must not be nested, and commit the write with everything it implies (a revision, a
        # cache reset). So Django's view stops once the form is valid (save_related raises FormValidated before
        # anything is written) and the save, its log entries and the response follow here, outside that block.
        # (Django's view checks the CSRF token before it reads the form.)
        try:
            response: HttpResponse = super().changeform_view(request, object_id, form_url, extra_context)
        except FormValidated as valid:
            add = object_id is None or "_saveasnew" in request.POST  # as Django decides it
            return self.service_save_and_respond(request, valid.form, valid.formsets, add=add)
        return response

    def service_save_and_respond(self, request: HttpRequest, form: Any, formsets: Any, *, add: bool) -> HttpResponse:
        """What Django's change form does after a valid POST, with the save done by the service first."""
        obj = self.service_save(request, form.instance, form, not add)
        message = self.construct_change_message(request, form, formsets, add)
        if add:
            self.log_addition(request, obj, message)
            response: HttpResponse = self.response_add(request, obj)
        else:
            self.log_change(request, obj, message)
            response = self.response_change(request, obj)
        return response

    def service_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> models.Model:
        """Save the form through the service (outside any transaction) and return the object as stored."""
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        """Nothing is written inside Django's atomic block: service_save does it after (changeform_view)."""

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The form and its formsets are valid: leave Django's atomic block for service_save."""
        raise FormValidated(form, formsets)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
