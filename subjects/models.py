from __future__ import annotations

import uuid

from django.db import models


class Subject(models.Model):
    """The golden record of one person. Holds no personal data in clear: only its wrapped data key."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        MERGED = "merged"
        ERASED = "erased"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # Always the final survivor, so resolving an absorbed id is one hop.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    key_kid = models.CharField(max_length=32)
    wrapped_key = models.BinaryField(null=True)  # NULL once crypto-shredded
    is_child = models.BooleanField(default=False)  # Art. 8: under 16, from a birth date (identity issue)
    restricted_at = models.DateTimeField(null=True, blank=True)  # Art. 18
    erasure_started_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    # Profile attributes from categories marked `profile` (name, birth date ...): JSON under the data key.
    profile_enc = models.BinaryField(null=True)
    merged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["merged_into"])]

    def __str__(self) -> str:
        return f"Subject {self.id}"


class Identifier(models.Model):
    """An identifier of a subject: encrypted under the subject's data key, found by its blind index only."""

    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"
        CUSTOMER_NUMBER = "customer_number"
        LOYALTY_CARD = "loyalty_card"
        CRM_ID = "crm_id"
        COOKIE_ID = "cookie_id"
        SOCIAL_HANDLE = "social_handle"

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    blind_index = models.BinaryField()  # HMAC over kind || 0x00 || value: the kind is inside the hash
    value_enc = models.BinaryField()
    created_at = models.DateTimeField()
    # UWG §7(3): the address came from a purchase (an existing customer's e-mail or phone).
    purchase_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "blind_index"], name="identifier_once_per_subject")]
        indexes = [models.Index(fields=["blind_index"], name="identifier_blind_index")]

    def __str__(self) -> str:
        return f"{self.kind} identifier of {self.subject_id}"


class LinkedRecord(models.Model):
    """A record about the person held in one of the retailer's sources (an order, a till receipt, a call).
    Idempotent on (source, external_id); the data is JSON encrypted under the subject's key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="records")
    source = models.CharField(max_length=64)  # catalogue source key
    external_id = models.CharField(max_length=200)
    category = models.CharField(max_length=64)  # catalogue data category key
    data_enc = models.BinaryField()
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "external_id"], name="record_once_per_source")]
        indexes = [
            models.Index(fields=["subject", "source"], name="record_by_subject"),
            models.Index(fields=["source", "category", "occurred_at"], name="record_by_age"),
        ]

    def __str__(self) -> str:
        return f"{self.source} record {self.pk}"


class MergeAudit(models.Model):
    """What a merge moved from which side (kinds and row ids, never values), so a wrong merge can be split."""

    survivor = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="+")
    absorbed = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="+")
    merged_at = models.DateTimeField()
    reason = models.CharField(max_length=200)  # e.g. "record pos/R-17 shares email"
    identifier_ids = models.JSONField(default=list)
    identifier_kinds = models.JSONField(default=list)
    record_ids = models.JSONField(default=list)
    absorbed_profile_enc = models.BinaryField(null=True)  # the absorbed side's profile, under the survivor's key
    split_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"merge of {self.absorbed_id} into {self.survivor_id}"


class Suppression(models.Model):
    """Keyed hashes (the never-rotated suppression sub-key) of identifiers of erased people: a marketing grant
    for one of them from anyone but the person stays pending until the person confirms it."""

    digest = models.BinaryField(unique=True)
    kind = models.CharField(max_length=32)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"suppressed {self.kind}"
