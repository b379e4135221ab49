"""The ledger and the logs in the admin, read-only and searched by subject id: consent events, chain heads,
consent states, objections and the read log."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from consent.admin.search import PrivateSearchChangeList, SubjectLogAdmin, subject_link
from consent.models import (
    ConsentEvent,
    ConsentState,
    LedgerHead,
    Objection,
    ReadLog,
)


class LedgerChangeList(PrivateSearchChangeList):
    """Sorted by subject, the ledger reads chain by chain: each subject's events follow in sequence order (the
    order of the unique (subject, seq) index)."""

    def get_ordering(self, request: HttpRequest, queryset: Any) -> list[Any]:
        ordering: list[Any] = list(super().get_ordering(request, queryset))
        for position, part in enumerate(ordering):
            if isinstance(part, str) and part.lstrip("-") == "subject_id":
                sign = "-" if part.startswith("-") else ""
                rest = [p for p in ordering[position + 1 :] if not (isinstance(p, str) and p.lstrip("-") == "seq")]
                return [*ordering[:position], part, f"{sign}seq", *rest]
        return ordering


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
    ordering = ("-recorded_at", "-pk")  # the newest first; a click on "subject" sorts by subject and sequence
    sortable_by = ("subject_ref", "seq", "occurred_at", "recorded_at")
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

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LedgerChangeList

    @admin.display(description=gettext_lazy("subject"), ordering="subject_id")
    def subject_ref(self, obj: Any) -> str:
        return subject_link(obj.subject_id)


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
