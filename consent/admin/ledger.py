"""The ledger and the logs in the admin, read-only and searched by subject id: consent events, chain heads,
consent states, objections and the read log."""

from __future__ import annotations

from django.contrib import admin

from consent.admin.search import SubjectLogAdmin
from consent.models import (
    ConsentEvent,
    ConsentState,
    LedgerHead,
    Objection,
    ReadLog,
)


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
