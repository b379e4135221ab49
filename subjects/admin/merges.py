"""Merges in the admin: what each merge moved (split from the subject's page), and the merge proposals that wait
for the DPO, both people side by side."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from config.errors import DomainError
from consent.admin.audit import Action, audit_record
from consent.admin.bases import ReadOnlyAdmin
from consent.admin.subject_overview import subject_overview
from subjects.merge_proposals import merge_proposal_approve, merge_proposal_reject
from subjects.models import MergeAudit, MergeProposal


@admin.register(MergeAudit)
class MergeAuditAdmin(ReadOnlyAdmin):
    """What each merge moved (kinds and row ids, never values); split from the subject's page."""

    list_display = ("merged_at", "survivor", "absorbed", "reason", "split_at")
    list_filter = (("split_at", admin.EmptyFieldListFilter),)
    fields = ("merged_at", "survivor", "absorbed", "reason", "identifier_kinds", "record_ids", "split_at")
    readonly_fields = fields
    ordering = ("-merged_at",)


@admin.register(MergeProposal)
class MergeProposalAdmin(ReadOnlyAdmin):
    """Merges that would give one person two customer numbers (or another `one_per_person` kind) wait here for the
    DPO: both people side by side, decrypted (so the page is audited), approve merges, reject is remembered."""

    list_display = ("created_at", "status", "conflict_kinds", "source", "external_id", "subject_a", "subject_b")
    list_filter = ("status",)
    ordering = ("status", "-created_at")
    show_full_result_count = False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/decide/<str:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="subjects_mergeproposal_decide",
            ),
            *super().get_urls(),
        ]

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("subjects.decide_mergeproposal"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        proposal = self.shown_object(request, object_id, MergeProposal)  # GET only: decisions go through decide_view
        if isinstance(proposal, HttpResponse):
            return proposal  # no such object: Django's redirect
        sides = [proposal.subject_a, proposal.subject_b]
        # Audited before anything is decrypted, for the proposal and for each person shown.
        audit_record(user=request.user, action=Action.VIEW, obj=proposal, detail="merge proposal side by side")
        for subject in sides:
            audit_record(user=request.user, action=Action.VIEW, obj=subject, detail=f"merge proposal {proposal.pk}")
        now = timezone.now()
        context = {
            "title": f"Merge proposal {proposal.pk}",
            "subtitle": None,
            "original": proposal,
            "sides": [subject_overview(subject=subject, now=now) for subject in sides],
            "may_decide": self.has_decide_permission(request) and proposal.status == MergeProposal.Status.OPEN,
            "has_view_permission": True,
            **(extra_context or {}),
        }
        return self.render_page(request, "assent_admin/merge_proposal_detail.html", context)

    def decide_view(self, request: HttpRequest, object_id: str, decision: str) -> HttpResponse:
        if request.method != "POST" or not self.has_decide_permission(request):
            raise PermissionDenied
        decide = {"approve": merge_proposal_approve, "reject": merge_proposal_reject}.get(decision)
        if decide is None:
            raise PermissionDenied
        try:
            proposal_id = uuid.UUID(str(object_id))
            proposal = decide(proposal_id=proposal_id, decided_by=request.user.get_username())
        except ValueError:
            raise PermissionDenied from None
        except DomainError as exc:
            self.message_user(request, f"Nothing was decided: {exc.detail}", messages.ERROR)
        else:
            audit_record(user=request.user, action=Action.ACTION, obj=proposal, detail=decision)
            self.message_user(request, f"Merge proposal {proposal.status}.")
        return HttpResponseRedirect(reverse("admin:subjects_mergeproposal_change", args=[object_id]))
