"""Subjects in the admin: found by an identifier through the blind index (never by scanning decrypted data), shown
read-only with everything Assent holds about them; every view of the decrypted page is audited. A wrong merge can
be split from here."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from config.errors import DomainError
from consent.admin.audit import Action, audit_entries_for, audit_record, object_type_of
from consent.admin.search import PrivateSearchAdmin
from consent.admin.subject_overview import subject_overview
from consent.dpv_record import MEDIA_TYPE as DPV_MEDIA_TYPE
from consent.dpv_record import consent_record_jsonld
from subjects.merge import subject_split
from subjects.models import MergeAudit, RightsRequest, Subject
from subjects.selectors import subject_ids_for_term


class RestrictedFilter(admin.SimpleListFilter):
    title = "restriction (Art. 18)"
    parameter_name = "restricted"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "restricted"), ("no", "not restricted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Subject]) -> QuerySet[Subject]:
        if self.value() == "yes":
            return queryset.filter(restricted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(restricted_at__isnull=True)
        return queryset


_PHONE_LIKE = re.compile(r"\+?[0-9 ()/.-]{6,}")


@admin.register(Subject)
class SubjectAdmin(PrivateSearchAdmin):
    list_display = ("id", "status", "created_at", "is_child", "restricted_at", "erased_at")
    list_filter = ("status", "is_child", RestrictedFilter)
    search_fields = ("id",)  # shows the search box; the search itself is get_search_results
    search_help_text = (
        "An identifier, exactly as the person gives it (e-mail, phone, customer number, loyalty card, CRM id, "
        "cookie id, social handle), or a subject id. Found through the blind index: parts of a value find nothing."
    )
    ordering = ("-created_at",)
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Subject], search_term: str
    ) -> tuple[QuerySet[Subject], bool]:
        if not search_term.strip():
            return queryset, False
        return queryset.filter(pk__in=subject_ids_for_term(search_term)), False

    def search_kind(self, term: str) -> str:
        term = term.strip()
        if "@" in term:
            return "e-mail"
        if _PHONE_LIKE.fullmatch(term) and (term.startswith(("+", "0"))):
            return "phone"
        return super().search_kind(term)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:object_id>/consent-record.jsonld",
                self.admin_site.admin_view(self.consent_record_view),
                name="subjects_subject_consent_record",
            ),
            path(
                "<path:object_id>/split/<int:audit_id>/",
                self.admin_site.admin_view(self.split_view),
                name="subjects_subject_split",
            ),
            *super().get_urls(),
        ]

    def has_split_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("subjects.change_mergeaudit"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        subject = self.shown_object(request, object_id, Subject)  # GET only: nothing about a subject is changed here
        if isinstance(subject, HttpResponse):
            return subject  # no such object: Django's redirect
        # Audited before anything is decrypted: a view that fails half-way is still on record.
        audit_record(user=request.user, action=Action.VIEW, obj=subject, detail="decrypted subject page")
        overview = subject_overview(subject=subject, now=timezone.now())
        context = {
            "title": f"Subject {subject.pk}",
            "subtitle": None,
            "original": subject,
            "o": overview,
            "may_split": self.has_split_permission(request),
            "requests": self.requests_for(subject),
            "audit": audit_entries_for(object_type=object_type_of(subject), object_id=subject.pk, limit=20),
            "has_view_permission": True,
            **(extra_context or {}),
        }
        return self.render_page(request, "assent_admin/subject_detail.html", context)

    def consent_record_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        """The person's consent record as JSON-LD in the DPV profile of ISO/IEC TS 27560 (consent.dpv_record), for
        an auditor or another system: audited like the page itself."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        subject = Subject.objects.filter(pk=object_id).first()
        if subject is None:
            raise Http404("no such subject")
        audit_record(user=request.user, action=Action.VIEW, obj=subject, detail="consent record (JSON-LD)")
        body = json.dumps(consent_record_jsonld(subject_id=subject.pk), ensure_ascii=False, indent=2)
        response = HttpResponse(body, content_type=f"{DPV_MEDIA_TYPE}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="consent-record-{subject.pk}.jsonld"'
        return response

    def requests_for(self, subject: Subject) -> list[RightsRequest]:
        return list(RightsRequest.objects.filter(subject=subject).order_by("-received_at")[:50])

    def split_view(self, request: HttpRequest, object_id: str, audit_id: int) -> HttpResponse:
        if request.method != "POST" or not self.has_split_permission(request):
            raise PermissionDenied
        merge = MergeAudit.objects.filter(pk=audit_id).first()
        if merge is None or str(object_id) not in (str(merge.survivor_id), str(merge.absorbed_id)):
            raise PermissionDenied
        try:
            survivor, restored = subject_split(audit_id=audit_id, now=timezone.now())
        except DomainError as exc:
            self.message_user(request, f"The merge was not split: {exc.detail}", messages.ERROR)
        else:
            audit_record(user=request.user, action=Action.ACTION, obj=merge, detail="split")
            self.message_user(request, f"Merge split: subject {restored.pk} is restored beside {survivor.pk}.")
        return HttpResponseRedirect(reverse("admin:subjects_subject_change", args=[object_id]))
