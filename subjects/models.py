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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "blind_index"], name="identifier_once_per_subject")]
        indexes = [models.Index(fields=["blind_index"], name="identifier_blind_index")]

    def __str__(self) -> str:
        return f"{self.kind} identifier of {self.subject_id}"
