"""The rights-request queue in the admin (Art. 12): due dates, colours, filters, and the same services as the API."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.errors import DomainError
from consent.admin.audit import Action, audit_record
from consent.admin.search import PrivateSearchAdmin, uuid_or_none
from subjects import ports
from subjects.admin.request_report import request_report
from subjects.admin.stored_words import channel_name, part_name, stored_text
from subjects.identity import parse_reference
from subjects.models import Identifier, RightsRequest, RightsRequestPart
from subjects.request_queue import (
    NOTE_MAX,
    request_assign,
    request_note_add,
    request_notes,
    staff_assignable,
    subjects_masked,
)
from subjects.rights import requests as rights
from subjects.rights.art19 import art19_notices, result_public
from subjects.rights.calendar import DUE_SOON
from subjects.rights.details import details_parse
from subjects.rights.erasure_plan import ErasurePlan, erasure_plan
from subjects.rights.requests import Actor

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # the type checker's name for a str or a lazy translation

OPEN = RightsRequest.OPEN_STATUSES
STATUS_LABELS: dict[str, StrOrPromise] = dict(RightsRequest.Status.choices)  # lazy labels: translated where shown
# A history row's event is a status or one of these; a part's status is one of PART_LABELS.
EVENT_LABELS: dict[str, StrOrPromise] = {
    **STATUS_LABELS,
    "approved": gettext_lazy("Approved"),
    "extended": gettext_lazy("Deadline extended"),
    "lift_requested": gettext_lazy("Lifting requested"),
    "lifted": gettext_lazy("Restriction lifted"),
    "overdue": gettext_lazy("Overdue"),
    "person_told": gettext_lazy("Person told"),
    "reminder": gettext_lazy("Reminder"),
}
PART_LABELS: dict[str, StrOrPromise] = {
    "pending": gettext_lazy("Waiting"),
    "running": gettext_lazy("Running"),
    "done": gettext_lazy("Done"),
    "failed": gettext_lazy("Failed"),
    "skipped": gettext_lazy("Skipped"),
}
STEP_LABELS: dict[str, StrOrPromise] = {
    "verify": gettext_lazy("Verify"),
    "approve": gettext_lazy("Approve"),
    "reject": gettext_lazy("Reject"),
    "extend": gettext_lazy("Extend"),
    "lift": gettext_lazy("Lift the restriction"),
    "retry": gettext_lazy("Retry"),
}
# An erasure's plan is shown while it can still be approved or rejected; approving asks that it was read.
PLANNED = (RightsRequest.Status.RECEIVED, RightsRequest.Status.VERIFIED, RightsRequest.Status.AWAITING_APPROVAL)
PLAN_SEEN = "plan_seen"
PLAN_UNSEEN = gettext_lazy("Approve: tick that you have read the plan of this erasure, then approve again.")


def staff_actor(request: HttpRequest) -> Actor:
    return Actor(label=f"staff:{request.user.get_username()}")


class OpenFilter(admin.SimpleListFilter):
    title = gettext_lazy("open or closed")
    parameter_name = "open"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", _("open")), ("no", _("closed"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> QuerySet[RightsRequest]:
        if self.value() == "yes":
            return queryset.filter(status__in=OPEN)
        if self.value() == "no":
            return queryset.exclude(status__in=OPEN)
        return queryset


class DeadlineFilter(admin.SimpleListFilter):
    title = gettext_lazy("deadline (Art. 12(3))")
    parameter_name = "deadline"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("overdue", _("overdue")), ("soon", _("due within 7 days"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> QuerySet[RightsRequest]:
        now = timezone.now()
        if self.value() == "overdue":
            return queryset.filter(status__in=OPEN, **{"effective_due__lt": now})
        if self.value() == "soon":
            soon = {"effective_due__gte": now, "effective_due__lt": now + DUE_SOON}  # an annotation (get_queryset)
            return queryset.filter(status__in=OPEN, **soon)
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = gettext_lazy("assigned to")
    parameter_name = "assignee"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        staff = [(str(user.pk), user.get_username()) for user in staff_assignable()]
        return [("me", _("assigned to me")), ("nobody", _("nobody")), *staff]

    def queryset(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> QuerySet[RightsRequest]:
        value = self.value()
        if value == "me":
            return queryset.filter(assigned_to_id=request.user.pk)
        if value == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        if value is not None and value.isdigit():
            return queryset.filter(assigned_to_id=int(value))
        return queryset


class OpenRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=RightsRequest.Kind.choices, label=gettext_lazy("kind"))
    identifier_kind = forms.ChoiceField(
        choices=[("id", gettext_lazy("subject id")), *Identifier.Kind.choices], label=gettext_lazy("the person, by")
    )
    identifier = forms.CharField(
        max_length=320,
        label=gettext_lazy("identifier"),
        help_text=gettext_lazy("Exactly as the person gave it; never stored in clear."),
    )
    channel = forms.SlugField(
        max_length=64,
        initial="phone",
        label=gettext_lazy("channel"),
        help_text=gettext_lazy("How the request reached us: phone, letter ..."),
    )
    verified = forms.BooleanField(
        required=False,
        label=gettext_lazy("verified"),
        help_text=gettext_lazy("I checked the person's identity (Art. 12(6)); recorded with my name."),
    )
    details = forms.JSONField(
        required=False,
        initial=dict,
        label=gettext_lazy("details"),
        help_text='Objection: {"scope": "direct_marketing"} or {"purpose": "newsletter"}. Restriction: '
        '{"ground": "18(1)(a)"}. Rectification: {"identifiers": {...}, "profile": {...}}.',
    )


def part_note(part: RightsRequestPart) -> str:
    """What a part is doing where its status alone misleads: a connector part waiting for the system's callback,
    or for its next attempt, is `running` but held by no worker."""
    outcome = part.outcome or {}
    if part.status != RightsRequestPart.Status.RUNNING or part.lease_token is not None:
        return ""
    if outcome.get("waiting_since") and str(outcome.get("last_answer", "")).startswith("HTTP 202"):
        return _("waiting for the system's callback since %(since)s") % {"since": _moment(outcome["waiting_since"])}
    if outcome.get("last_answer"):
        words = {"attempt": outcome.get("attempts", part.attempts), "answer": outcome["last_answer"]}
        if part.claimed_until:
            words["then"] = f"{timezone.localtime(part.claimed_until):%Y-%m-%d %H:%M}"
            return _("attempt %(attempt)s failed, next attempt at %(then)s; last answer: %(answer)s") % words
        return _("attempt %(attempt)s failed, next attempt soon; last answer: %(answer)s") % words
    return ""


def _moment(iso: str) -> str:
    return iso[:16].replace("T", " ")


@admin.register(RightsRequest)
class RightsRequestAdmin(PrivateSearchAdmin):
    list_display = ("kind", "status", "received_at", "due", "days_left", "subject_ref", "assignee", "opened_by")
    list_filter = (OpenFilter, DeadlineFilter, AssigneeFilter, "status", "kind")
    list_select_related = ("assigned_to",)
    list_display_links = ("kind",)
    search_fields = ("id",)
    search_help_text = "A request id or a subject id, exactly."
    actions = ("verify_selected", "approve_selected", "retry_selected")

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        return ("effective_due",)  # the most urgent first (an annotation, so not `ordering`)

    def get_queryset(self, request: HttpRequest) -> QuerySet[RightsRequest]:
        # An extended request is due at its extension (Art. 12(3)); annotated before the admin orders by it.
        queryset = RightsRequest.objects.with_effective_due()
        return queryset.order_by(*self.get_ordering(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RightsRequest], search_term: str
    ) -> tuple[QuerySet[RightsRequest], bool]:
        wanted = uuid_or_none(search_term)
        if wanted is None:
            return (queryset.none() if search_term.strip() else queryset), False
        return queryset.filter(models.Q(pk=wanted) | models.Q(subject_id=wanted)), False

    # ------------------------------------------------------------------ columns
    @admin.display(description=gettext_lazy("due"), ordering="effective_due")
    def due(self, obj: RightsRequest) -> str:
        due_at = obj.due_by
        extended = " " + _("(extended)") if obj.extended_until else ""
        return f"{timezone.localtime(due_at):%Y-%m-%d}{extended}"

    @admin.display(description=gettext_lazy("days left"), ordering="effective_due")
    def days_left(self, obj: RightsRequest) -> str:
        if obj.status not in OPEN:
            return "-"
        left = obj.due_by - timezone.now()
        days = math.floor(left.total_seconds() / 86400)
        if left.total_seconds() < 0:
            style, text = "background:#d1242f;color:#fff", _("overdue %(days)s d") % {"days": abs(days)}
        elif left < DUE_SOON:
            style, text = "background:#f2cc60;color:#24292f", _("%(days)s d") % {"days": days}
        else:
            style, text = "", _("%(days)s d") % {"days": days}
        css = "overdue" if left.total_seconds() < 0 else ("soon" if left < DUE_SOON else "ok")
        return format_html(
            '<span class="assent-due assent-due-{}" style="padding:1px 6px;border-radius:3px;white-space:nowrap;{}">'
            "{}</span>",
            css,
            style,
            text,
        )

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's requests get their person's masked e-mail address, decrypted for the page at once (a fixed
        number of queries whatever the page's length); the full value is never shown in the queue."""
        changelist = super().get_changelist_instance(request)
        shown = list(changelist.result_list)  # evaluates the page's queryset: the rows the template iterates
        masked = subjects_masked(subject_ids=[r.subject_id for r in shown if r.subject_id])
        for row in shown:
            row.masked_subject = masked.get(row.subject_id) if row.subject_id else None
        return changelist

    @admin.display(description=gettext_lazy("subject"))
    def subject_ref(self, obj: RightsRequest) -> str:
        if obj.subject_id is None:
            return _("(nobody matched)")
        url = reverse("admin:subjects_subject_change", args=[obj.subject_id])
        label = getattr(obj, "masked_subject", None) or str(obj.subject_id)[:8]
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description=gettext_lazy("assigned to"), ordering="assigned_to__username")
    def assignee(self, obj: RightsRequest) -> str:
        return obj.assigned_to.get_username() if obj.assigned_to else "-"

    # ------------------------------------------------------------------ permissions
    def _may(self, request: HttpRequest, step: str) -> bool:
        return bool(request.user.has_perm(f"subjects.{step}_rightsrequest"))

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._may(request, "add")

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "verify")

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "approve")

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return self._may(request, "retry")

    # ------------------------------------------------------------------ queue work: assignee and notes
    def assign_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        if request.method != "POST" or not self._may(request, "assign"):
            raise PermissionDenied
        raw = request.POST.get("assignee", "")
        assignee = int(raw) if raw.isdigit() else None
        if raw and assignee is None:
            self.message_user(request, _("Please choose a staff member from the list."), messages.ERROR)
            return self._back(object_id)
        try:
            assigned = request_assign(request_id=object_id, assignee_id=assignee)
        except DomainError as exc:
            if exc.status == 404:
                raise PermissionDenied from None
            self.message_user(request, exc.detail, messages.ERROR)
            return self._back(object_id)
        # The audit names the assignee by account id: the staff member, never the person.
        detail = f"assign to user {assignee}" if assignee is not None else "assign to nobody"
        audit_record(user=request.user, action=Action.ACTION, obj=assigned, detail=detail)
        self.message_user(request, _("Assignment saved."))
        return self._back(object_id)

    def note_view(self, request: HttpRequest, object_id: uuid.UUID) -> HttpResponse:
        if request.method != "POST" or not self._may(request, "note") or not request.user.is_authenticated:
            raise PermissionDenied
        try:
            note = request_note_add(request_id=object_id, author=request.user, text=request.POST.get("text", ""))
        except DomainError as exc:
            if exc.status == 404:
                raise PermissionDenied from None
            self.message_user(request, exc.detail, messages.ERROR)
            return self._back(object_id)
        audit_record(user=request.user, action=Action.ADD, obj=note, detail="internal note")
        self.message_user(request, _("Note added."))
        return self._back(object_id)

    @staticmethod
    def _back(object_id: uuid.UUID) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:subjects_rightsrequest_change", args=[object_id]))

    # ------------------------------------------------------------------ steps: the API's services
    STEPS = ("verify", "approve", "reject", "extend", "lift", "retry")

    def _step(self, request: HttpRequest, step: str, rights_request: RightsRequest) -> None:
        """Run one step through the rights engine's service; a refusal becomes a message, never a 500."""
        actor = staff_actor(request)
        post = request.POST
        try:
            if step == "verify":
                rights.request_verify(request_id=rights_request.pk, actor=actor)
            elif step == "approve":
                # A request the step cannot apply to gets the service's own refusal below.
                if post.get(PLAN_SEEN) != "1" and rights_request.status == RightsRequest.Status.AWAITING_APPROVAL:
                    self.message_user(request, PLAN_UNSEEN, messages.ERROR)
                    return
                rights.request_approve(request_id=rights_request.pk, actor=actor)
            elif step == "reject":
                rights.request_reject(request_id=rights_request.pk, reason=post.get("reason", ""), actor=actor)
            elif step == "extend":
                months = int(post.get("months", "0")) if post.get("months", "").isdigit() else 0
                rights.request_extend(
                    request_id=rights_request.pk, months=months, reason=post.get("reason", ""), actor=actor
                )
            elif step == "lift":
                rights.request_lift(request_id=rights_request.pk, actor=actor)
            elif step == "retry":
                rights.request_retry(request_id=rights_request.pk, actor=actor)
        except DomainError as exc:
            refused = _("%(step)s: %(detail)s") % {"step": STEP_LABELS.get(step, step), "detail": exc.detail}
            self.message_user(request, refused, messages.ERROR)
            return
        audit_record(user=request.user, action=Action.ACTION, obj=rights_request, detail=step)
        self.message_user(
            request,
            _("%(step)s: done (%(kind)s, request %(id)s).")
            % {"step": STEP_LABELS.get(step, step), "kind": rights_request.get_kind_display(), "id": rights_request.pk},
        )

    def _bulk(self, request: HttpRequest, queryset: QuerySet[RightsRequest], step: str) -> None:
        for rights_request in queryset:
            self._step(request, step, rights_request)

    @admin.action(description=gettext_lazy("Verify the selected requests (identity checked)"), permissions=["verify"])
    def verify_selected(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> None:
        self._bulk(request, queryset, "verify")

    @admin.action(
        description=gettext_lazy("Approve the selected erasures (after seeing their plans)"), permissions=["approve"]
    )
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> HttpResponse | None:
        """First the plan of each selected erasure and a confirmation; the approvals only with `plan_seen`."""
        if request.POST.get(PLAN_SEEN) == "1":
            self._bulk(request, queryset, "approve")
            return None
        waiting = list(queryset.filter(status=RightsRequest.Status.AWAITING_APPROVAL).order_by("received_at"))
        context = {
            "title": _("Approve these erasures?"),
            "plans": [(r, erasure_plan(request=r)) for r in waiting],
            "skipped": queryset.exclude(status=RightsRequest.Status.AWAITING_APPROVAL).count(),
            "action": "approve_selected",
            "selected": [str(r.pk) for r in waiting],
        }
        return self.render_page(request, "assent_admin/rightsrequest_approve.html", context)

    @admin.action(description=gettext_lazy("Retry the failed parts of the selected requests"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[RightsRequest]) -> None:
        self._bulk(request, queryset, "retry")

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<uuid:object_id>/step/<str:step>/",
                self.admin_site.admin_view(self.step_view),
                name="subjects_rightsrequest_step",
            ),
            path(
                "<uuid:object_id>/assign/",
                self.admin_site.admin_view(self.assign_view),
                name="subjects_rightsrequest_assign",
            ),
            path(
                "<uuid:object_id>/note/",
                self.admin_site.admin_view(self.note_view),
                name="subjects_rightsrequest_note",
            ),
            *super().get_urls(),
        ]

    def step_view(self, request: HttpRequest, object_id: uuid.UUID, step: str) -> HttpResponse:
        if request.method != "POST" or step not in self.STEPS or not self._may(request, step):
            raise PermissionDenied
        rights_request = RightsRequest.objects.filter(pk=object_id).first()
        if rights_request is None:
            raise PermissionDenied
        self._step(request, step, rights_request)
        return HttpResponseRedirect(reverse("admin:subjects_rightsrequest_change", args=[object_id]))

    # ------------------------------------------------------------------ pages
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Open a request for a person who asked by phone, letter or at the till: rights.request_open, as the API."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = OpenRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            opened = self._open(request, form)
            if opened is not None:
                return HttpResponseRedirect(reverse("admin:subjects_rightsrequest_change", args=[opened.pk]))
        context = {"title": _("Open a rights request"), "form": form}
        return self.render_page(request, "assent_admin/rightsrequest_open.html", context)

    def _open(self, request: HttpRequest, form: OpenRequestForm) -> RightsRequest | None:
        data = form.cleaned_data
        try:
            reference = parse_reference({data["identifier_kind"]: data["identifier"]}, field="identifier")
            details = details_parse(kind=data["kind"], raw=data["details"] or {})
            opened = rights.request_open(
                kind=data["kind"],
                reference=reference,
                channel=data["channel"],
                verified=data["verified"],
                details=details,
                actor=staff_actor(request),
            )
        except DomainError as exc:
            existing = exc.extra.get("id")
            form.add_error(None, f"{exc.detail}{f' (request {existing})' if existing else ''}")
            return None
        audit_record(user=request.user, action=Action.ADD, obj=opened, detail=f"opened {opened.kind}")
        self.message_user(
            request,
            _("%(kind)s: request opened, due %(due)s.")
            % {"kind": opened.get_kind_display(), "due": f"{timezone.localtime(opened.due_at):%Y-%m-%d}"},
        )
        return opened

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        rights_request = self.shown_object(request, object_id, RightsRequest)  # GET only: steps go through step_view
        if isinstance(rights_request, HttpResponse):
            return rights_request  # no such object: Django's redirect
        now = timezone.now()
        due_at = rights_request.due_by
        is_open = rights_request.status in OPEN
        sources = {key: facts.name for key, facts in ports.consent_rights.catalogue().sources.items()}
        context = {
            "title": _("Rights request: %(kind)s") % {"kind": rights_request.get_kind_display()},
            "original": rights_request,
            "r": rights_request,
            "due_at": due_at,
            "overdue": is_open and due_at < now,
            "due_soon": is_open and now <= due_at < now + DUE_SOON,
            "parts": [
                (part, part_name(part.name, sources), PART_LABELS.get(part.status, part.status), part_note(part))
                for part in rights_request.parts.order_by("pk")
            ],
            "history": [
                (h, EVENT_LABELS.get(h.event, h.event), STATUS_LABELS.get(h.status, h.status), stored_text(h.note))
                for h in rights_request.history.order_by("at", "pk")
            ],
            "status_label": STATUS_LABELS.get(rights_request.status, rights_request.status),
            "channel": channel_name(rights_request.channel),
            "result": json.dumps(
                result_public(rights_request.result, rights_request.pk), indent=2, ensure_ascii=False, default=str
            ),
            "report": request_report(rights_request),
            "notices": art19_notices(rights_request.result, rights_request.pk),
            "masked_subject": (
                subjects_masked(subject_ids=[rights_request.subject_id]).get(rights_request.subject_id)
                if rights_request.subject_id
                else None
            ),
            "notes": request_notes(request_id=rights_request.pk),
            "note_max": NOTE_MAX,
            "may_note": self._may(request, "note"),
            "may_assign": self._may(request, "assign"),
            "assignable": staff_assignable() if self._may(request, "assign") else [],
            "plan": self._plan(rights_request),
            "steps": self._available_steps(request, rights_request, now),
            "max_extension": range(1, 3),
        }
        return self.render_page(request, "assent_admin/rightsrequest_detail.html", context)

    @staticmethod
    def _plan(rights_request: RightsRequest) -> ErasurePlan | None:
        if rights_request.kind != RightsRequest.Kind.ERASURE or rights_request.status not in PLANNED:
            return None
        return erasure_plan(request=rights_request)

    def _available_steps(self, request: HttpRequest, r: RightsRequest, now: datetime) -> set[str]:
        """Steps this staff member may take on this request now (the service decides again when it runs)."""
        status = RightsRequest.Status
        possible = {
            "verify": r.status == status.RECEIVED,
            "approve": r.status == status.AWAITING_APPROVAL,
            "reject": r.status in (status.RECEIVED, status.VERIFIED, status.AWAITING_APPROVAL),
            "extend": r.status in OPEN and r.extended_until is None and now <= r.due_at,
            "lift": r.kind == RightsRequest.Kind.RESTRICTION
            and r.status == status.COMPLETED
            and r.lifted_at is None
            and r.lift_requested_at is None,
            "retry": r.status == status.FAILED,
        }
        return {step for step, ok in possible.items() if ok and self._may(request, step)}
