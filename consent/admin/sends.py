"""Sends in the admin, read-only: each bulk send's counts and each recipient's decision, and the send jobs with their
progress (the DPO's: a job's files hold the references as uploaded)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from consent.admin.bases import ReadOnlyAdmin
from consent.admin.search import SubjectLogAdmin
from consent.models import (
    Send,
    SendJob,
    SendRecipient,
)


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


@admin.register(SendJob)
class SendJobAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "campaign",
        "purpose",
        "channel",
        "client",
        "status",
        "progress",
        "allowed",
        "blocked",
    )
    list_filter = ("status", "purpose", "channel", "client")
    search_fields = ("campaign",)
    date_hierarchy = "created_at"
    fields = (
        "id",
        "client",
        "campaign",
        "purpose",
        "channel",
        "status",
        "progress",
        "total",
        "processed",
        "allowed",
        "blocked",
        "send",
        "attempts",
        "claimed_until",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields
    list_select_related = ("client",)

    @admin.display(description="progress")
    def progress(self, obj: SendJob) -> str:
        share = obj.processed / obj.total if obj.total else 1.0
        return f"{obj.processed:,} of {obj.total:,} ({share:.0%})"
