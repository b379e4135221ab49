"""Webhooks in the admin (DPO): subscriptions made (the secret shown once) and ended through
consent.webhooks.subscriptions; deliveries read-only, dead letters replayed one by one or all of an endpoint."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from config.errors import DomainError
from consent.admin.bases import ReadOnlyAdmin, ServiceBackedAdmin
from consent.models import ApiClient, WebhookDelivery, WebhookSubscription
from consent.webhooks.delivery import deliveries_replay_dead, delivery_replay
from consent.webhooks.outbox import ALL, EVENT_TYPES
from consent.webhooks.subscriptions import subscription_create, subscription_end
from consent.webhooks.urls import url_resolve

Status = WebhookDelivery.Status


class WebhookSubscriptionForm(forms.ModelForm):
    client = forms.ModelChoiceField(queryset=ApiClient.objects.filter(revoked_at__isnull=True).order_by("name"))
    url = forms.CharField(max_length=2000, help_text="https; private and link-local addresses are refused")
    events = forms.MultipleChoiceField(
        choices=[(ALL, "every event"), *((t, t) for t in EVENT_TYPES)], widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ("client", "url", "events")

    def clean_url(self) -> str:
        """The service's URL rules as a form error (the service checks again when it saves)."""
        url: str = self.cleaned_data["url"]
        try:
            url_resolve(url)
        except DomainError as exc:
            raise forms.ValidationError(exc.detail) from None
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(ServiceBackedAdmin):
    form = WebhookSubscriptionForm
    list_display = ("id", "client", "url", "event_list", "created_at", "ended_at", "failing_since", "waiting", "dead")
    list_filter = (("ended_at", admin.EmptyFieldListFilter), ("failing_since", admin.EmptyFieldListFilter))
    list_select_related = ("client",)
    search_fields = ("url", "client__name")
    actions = ("end_selected", "replay_dead_selected")
    # The sealed secret is in no list, form or page.
    shown = ("id", "client", "url", "events", "created_at", "ended_at", "failing_since", "deliveries_link")

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookSubscription]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                waiting_count=Count("deliveries", filter=Q(deliveries__status=Status.PENDING)),
                dead_count=Count("deliveries", filter=Q(deliveries__status=Status.DEAD)),
            )
        )

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # a subscription is fixed: end it and make another

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("consent.change_webhooksubscription"))

    def get_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        return ("client", "url", "events") if obj is None else self.shown

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> Any:
        return () if obj is None else self.shown

    @admin.display(description="events")
    def event_list(self, obj: WebhookSubscription) -> str:
        return ", ".join(obj.events)

    @admin.display(description="waiting")
    def waiting(self, obj: Any) -> int:
        return int(getattr(obj, "waiting_count", 0))

    @admin.display(description="dead letters")
    def dead(self, obj: Any) -> int:
        return int(getattr(obj, "dead_count", 0))

    @admin.display(description="deliveries")
    def deliveries_link(self, obj: WebhookSubscription) -> str:
        url = reverse("admin:consent_webhookdelivery_changelist") + f"?subscription__id__exact={obj.pk}"
        return format_html('<a href="{}">every delivery to this endpoint</a>', url)

    def service_save(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> models.Model:
        data = form.cleaned_data
        created = subscription_create(client_id=data["client"].pk, url=data["url"], events=list(data["events"]))
        request._assent_new_secret = created.secret  # type: ignore[attr-defined]  # shown by response_add only
        return created.subscription

    def response_add(self, request: HttpRequest, obj: models.Model, post_url_continue: str | None = None) -> Any:
        secret = getattr(request, "_assent_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "title": "Webhook created",
            "opts": self.opts,
            "subscription": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "assent_admin/webhook_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="End the selected webhooks", permissions=["manage"])
    def end_selected(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        ended = list(queryset.filter(ended_at__isnull=True))
        for subscription in ended:
            subscription_end(subscription_id=subscription.pk)
        self.audit_action(request, "end", ended)
        self.message_user(request, f"{len(ended)} webhook(s) ended; nothing more is sent to them.")

    @admin.action(description="Replay every dead letter of the selected endpoints", permissions=["manage"])
    def replay_dead_selected(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        subscriptions = list(queryset.filter(ended_at__isnull=True))
        count = sum(deliveries_replay_dead(subscription_id=s.pk) for s in subscriptions)
        self.audit_action(request, "replay_dead", subscriptions)
        self.message_user(request, f"{count} dead letter(s) queued again, in order.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "event_type",
        "subscription",
        "subject_id",
        "status",
        "attempts",
        "last_status",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "event__type")
    list_select_related = ("event", "subscription")
    fields = (
        "id",
        "event_type",
        "event_data",
        "subscription",
        "subject_id",
        "status",
        "attempts",
        "first_attempt_at",
        "last_attempt_at",
        "last_status",
        "last_error",
        "next_attempt_at",
        "delivered_at",
    )
    readonly_fields = fields
    actions = ("replay_selected",)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("consent.change_webhookdelivery"))

    @admin.display(description="event")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="data (ids and keys only)")
    def event_data(self, obj: WebhookDelivery) -> str:
        return str(obj.event.data)

    @admin.action(description="Replay the selected dead letters", permissions=["replay"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        dead = list(queryset.filter(status=Status.DEAD))
        count = sum(delivery_replay(delivery_id=d.pk) for d in dead)
        self.audit_action(request, "replay", dead)
        self.message_user(request, f"{count} dead letter(s) queued again.")
