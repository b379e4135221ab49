"""The outbox and webhook tables. Imported by consent.models (the app's model module); foreign keys by name so this
module never imports consent.models back."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class WebhookSubscription(models.Model):
    """An API client's endpoint for events. The signing secret is kept sealed under the master keyring (it must be
    read to sign: a hash would not do); it is shown to the client once, when the subscription is made."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey("consent.ApiClient", on_delete=models.PROTECT, related_name="+")
    url = models.CharField(max_length=2000)
    events = models.JSONField(default=list)  # event types, or ["*"]
    secret_kid = models.CharField(max_length=32)
    secret_sealed = models.BinaryField()
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Set at the first failed attempt since the last success, cleared by a success: the dashboard names endpoints
    # failing for hours.
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["client", "created_at"], name="webhook_sub_by_client")]
        verbose_name = _("webhook subscription")
        verbose_name_plural = _("webhook subscriptions")

    def __str__(self) -> str:
        return f"webhook {self.id}"


class WebhookEvent(models.Model):
    """One outbox row, written in the transaction of the change it reports. `data` holds ids and keys only, never
    an identifier's value. The id orders a subject's events: they are written under the subject's lock."""

    class Type(models.TextChoices):
        CONSENT_CHANGED = "consent.changed"
        SUBJECT_MERGED = "subject.merged"
        SUBJECT_SPLIT = "subject.split"
        SUBJECT_RECTIFIED = "subject.rectified"
        SUBJECT_RESTRICTED = "subject.restricted"
        SUBJECT_RESTRICTION_LIFTED = "subject.restriction_lifted"
        SUBJECT_ERASED = "subject.erased"
        REQUEST_COMPLETED = "request.completed"

    type = models.CharField(max_length=40, choices=Type.choices)
    subject_id = models.UUIDField(null=True, blank=True)  # the order key; no foreign key, as the proof outlives it
    data = models.JSONField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.type} event {self.pk}"


class WebhookDelivery(models.Model):
    """One event for one subscription: retried with backoff until acknowledged (any 2xx) or 24 hours have passed
    since its first attempt, then dead (a dead letter admin can replay)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        DEAD = "dead"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    subject_id = models.UUIDField(null=True, blank=True)  # the event's, copied: the order check reads this table only
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)  # a sender's lease
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)  # the endpoint's HTTP status
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "subscription"], name="webhook_delivery_once")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="webhook_due", condition=models.Q(status="pending")),
            # Per-subject order: an earlier pending delivery of the same subject to the same endpoint holds later ones.
            models.Index(
                fields=["subscription", "subject_id", "event"],
                name="webhook_pending_by_subject",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["subscription", "status"], name="webhook_by_status"),
            # A merge moves the absorbed person's waiting deliveries to the survivor's line.
            models.Index(fields=["subject_id"], name="webhook_pending_subject", condition=models.Q(status="pending")),
        ]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.status})"
