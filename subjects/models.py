from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _


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
        verbose_name = _("subject")
        verbose_name_plural = _("subjects")
        # The policy check reads these flags of up to 10,000 people per call (consent.selectors._CHECK_SQL): with
        # them in the index, each is an index-only probe that never visits the table (about 3 us less per person).
        indexes = [
            models.Index(
                fields=["id"],
                include=["merged_into", "status", "erased_at", "erasure_started_at", "restricted_at", "is_child"],
                name="subject_policy_flags",
            )
        ]

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

    # No index of its own: the unique (subject, blind_index) constraint's index serves per-subject lookups.
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="identifiers", db_index=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    blind_index = models.BinaryField()  # HMAC over kind || 0x00 || value: the kind is inside the hash
    value_enc = models.BinaryField()
    created_at = models.DateTimeField()
    # UWG §7(3): the address came from a purchase (an existing customer's e-mail or phone).
    purchase_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "blind_index"], name="identifier_once_per_subject")]
        # With the subject beside it: a check's lookup by blind index is an index-only probe.
        indexes = [models.Index(fields=["blind_index"], include=["subject"], name="identifier_blind_index")]

    def __str__(self) -> str:
        return f"{self.kind} identifier of {self.subject_id}"


class LinkedRecord(models.Model):
    """A record about the person held in one of the retailer's sources (an order, a till receipt, a call).
    Idempotent on (source, external_id); the data is JSON encrypted under the subject's key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="records", db_index=False)
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
    # What a split needs beyond the lists above: ids, kinds, flags and timestamps only, profiles encrypted.
    survivor_profile_enc = models.BinaryField(null=True)  # the survivor's profile before the merge, under its key
    duplicate_identifiers = models.JSONField(default=list)  # absorbed copies of identifiers the survivor already had
    repointed_ids = models.JSONField(default=list)  # subjects merged earlier into the absorbed one
    survivor_flags = models.JSONField(default=dict)  # the survivor's is_child and restricted_at before the merge

    class Meta:
        verbose_name = _("merge")
        verbose_name_plural = _("merges")

    def __str__(self) -> str:
        return f"merge of {self.absorbed_id} into {self.survivor_id}"


class MergeProposal(models.Model):
    """A merge of two existing people that would give the survivor two values of a `one_per_person` kind waits
    for the DPO. Holds references only (subjects, identifier row ids, kinds); `fingerprint` is a SHA-256 over the
    pair and the blind indexes that named them, so the same identifiers never propose the same pair twice."""

    class Status(models.TextChoices):
        OPEN = "open"
        APPROVED = "approved"
        REJECTED = "rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_a = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="+")  # the older one
    subject_b = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="+")
    fingerprint = models.BinaryField(unique=True)
    conflict_kinds = models.JSONField(default=list)
    identifier_ids = models.JSONField(default=list)  # Identifier rows of either side the record named
    source = models.CharField(max_length=64)
    external_id = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    survivor = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="mergeproposal_status_idx")]
        permissions = [("decide_mergeproposal", "Can approve or reject a merge proposal")]
        verbose_name = _("merge proposal")
        verbose_name_plural = _("merge proposals")

    def __str__(self) -> str:
        return f"merge proposal {self.id} ({self.status})"


class Suppression(models.Model):
    """Keyed hashes (the never-rotated suppression sub-key) of identifiers of erased people: a marketing grant
    for one of them from anyone but the person stays pending until the person confirms it."""

    digest = models.BinaryField(unique=True)
    kind = models.CharField(max_length=32)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"suppressed {self.kind}"


# ---------------------------------------------------------------------------------------------------------
# Data-subject rights (Art. 12-21): requests, their parts, exports, the restricted retention store, the erasure log
# ---------------------------------------------------------------------------------------------------------
# The statuses of a rights request still to be answered (the open-once constraint reads it too).
OPEN_STATUSES = ("received", "verified", "awaiting_approval", "processing")


class RightsRequestQuerySet(models.QuerySet["RightsRequest"]):
    def open(self) -> RightsRequestQuerySet:
        """Requests still to be answered (RightsRequest.OPEN_STATUSES)."""
        return self.filter(status__in=RightsRequest.OPEN_STATUSES)

    def with_effective_due(self) -> RightsRequestQuerySet:
        """Annotates `effective_due`: the extended due date (Art. 12(3)) where there is one, else the due date."""
        return self.annotate(effective_due=Coalesce("extended_until", "due_at"))


class RightsRequest(models.Model):
    """A person's rights request. Holds no personal data in clear: the subject is a reference, rectification
    details are encrypted under the subject's data key, and `fingerprint` is a keyed hash."""

    class Kind(models.TextChoices):
        ACCESS = "access", _("Access (Art. 15)")
        PORTABILITY = "portability", _("Portability (Art. 20)")
        ERASURE = "erasure", _("Erasure (Art. 17)")
        RECTIFICATION = "rectification", _("Rectification (Art. 16)")
        RESTRICTION = "restriction", _("Restriction (Art. 18)")
        OBJECTION = "objection", _("Objection (Art. 21)")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        VERIFIED = "verified", _("Verified")
        AWAITING_APPROVAL = "awaiting_approval", _("Awaiting approval")
        PROCESSING = "processing", _("Processing")
        COMPLETED = "completed", _("Completed")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    OPEN_STATUSES = OPEN_STATUSES

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RECEIVED)
    # NULL: nobody matched the reference (a request never creates a subject) and it completes with "no data found".
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    fingerprint = models.CharField(max_length=64)  # keyed hash of kind, person and details: one open request each
    channel = models.CharField(max_length=64)
    details = models.JSONField(default=dict, blank=True)  # only what is no personal data (objection, ground)
    details_enc = models.BinaryField(null=True)  # rectification values and evidence, under the subject's key
    opened_by = models.CharField(max_length=200)
    opened_by_client = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField()
    due_at = models.DateTimeField()
    extended_until = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=200, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    lift_requested_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)  # counts, names and dates only, never personal data
    # The language the person used when opening it (the portal's, or the API's Accept-Language): its mails speak it.
    language = models.CharField(max_length=8, blank=True)
    # An erasure's completion mail: the person's addresses, sealed under the request's mail vault key (not the data
    # key, which the erasure destroys) before the identifiers go; emptied, and the key destroyed, once it is sent.
    mail_to_enc = models.BinaryField(null=True)
    # Queue work in the admin: who on the staff is handling the request (never shown to the person or the API).
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("assigned to"),
    )

    objects = RightsRequestQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["fingerprint"],
                condition=models.Q(status__in=OPEN_STATUSES),
                name="rights_request_open_once",
            )
        ]
        indexes = [models.Index(fields=["status", "due_at"], name="rights_request_by_due")]
        # Steps beyond Django's add/change/delete/view, checked by the admin's request queue (consent.admin.staff
        # grants them to the DPO and "verify" to Support).
        permissions = [
            ("verify_rightsrequest", "Can verify a rights request (identity checked)"),
            ("approve_rightsrequest", "Can approve an erasure"),
            ("reject_rightsrequest", "Can reject a rights request with a reason"),
            ("extend_rightsrequest", "Can extend a rights request's deadline with a reason"),
            ("lift_rightsrequest", "Can lift a restriction"),
            ("retry_rightsrequest", "Can retry a rights request's failed parts"),
            ("assign_rightsrequest", "Can assign a rights request to a staff member"),
            ("note_rightsrequest", "Can add an internal note to a rights request"),
        ]
        verbose_name = _("rights request")
        verbose_name_plural = _("rights requests")

    def __str__(self) -> str:
        return f"{self.kind} request {self.id}"

    @property
    def due_by(self) -> datetime:
        """The extended due date (Art. 12(3)) where there is one, else the due date: `effective_due` in Python."""
        return self.extended_until or self.due_at


class RightsRequestEvent(models.Model):
    """The history of a request: every transition with who and when."""

    request = models.ForeignKey(RightsRequest, on_delete=models.CASCADE, related_name="history")
    event = models.CharField(max_length=32)
    status = models.CharField(max_length=24)
    at = models.DateTimeField()
    by = models.CharField(max_length=200)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.event} of {self.request_id}"


class RequestNote(models.Model):
    """A staff member's internal note on a rights request: for the team working the queue only, never shown to the
    person, in the portal or through the API. Its text is the staff member's words, not the person's data."""

    request = models.ForeignKey(RightsRequest, on_delete=models.CASCADE, related_name="notes")
    # The author's name is kept beside the link, so a note still says who wrote it after the account is gone.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    author_name = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"note {self.pk} on {self.request_id}"


class RightsRequestPart(models.Model):
    """One unit of a request's workflow (a source, the profile, the consent ledger, the final step), run by a
    Celery task that claims it with a conditional update carrying a lease."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        SKIPPED = "skipped"

    request = models.ForeignKey(RightsRequest, on_delete=models.CASCADE, related_name="parts")
    name = models.CharField(max_length=80)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    lease_token = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)  # an error class and our own words, never a value
    outcome = models.JSONField(default=dict, blank=True)  # progress and counts, saved with each batch

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "name"], name="rights_part_once")]
        indexes = [models.Index(fields=["status", "claimed_until"], name="rights_part_by_lease")]

    def __str__(self) -> str:
        return f"part {self.name} of {self.request_id}"


class RightsExport(models.Model):
    """An access or portability export: a zip encrypted at rest in chunks under a key derived from the subject's
    data key (so erasing the person crypto-shreds every copy, backups included), deleted after 30 days."""

    id = models.UUIDField(primary_key=True, editable=False)  # the request's id: one export per request
    request = models.OneToOneField(RightsRequest, on_delete=models.CASCADE, related_name="export")
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    key_kid = models.CharField(max_length=32, blank=True)  # master key kid when no subject key exists
    size = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="rights_export_by_expiry")]

    def __str__(self) -> str:
        return f"export {self.id}"


class VaultKey(models.Model):
    """A key of a restricted store (retention, consent evidence), random and wrapped by the master keyring like a
    subject's data key, but not that key: it outlives the erasure that destroys the subject's key, and is itself
    destroyed when its store is purged."""

    class Purpose(models.TextChoices):
        RETENTION = "retention"
        EVIDENCE = "evidence"
        MAIL = "mail"  # an erasure's completion mail, destroyed once it is sent (rights/mails.py)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    subject_id = models.UUIDField()
    key_kid = models.CharField(max_length=32)
    wrapped_key = models.BinaryField(null=True)  # NULL once destroyed
    created_at = models.DateTimeField()
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["purpose", "subject_id"], name="vault_key_once")]

    def __str__(self) -> str:
        return f"{self.purpose} key {self.id}"


class RetainedRecord(models.Model):
    """A record of a category for which Assent is itself the system of record and the law demands keeping it
    (e.g. §147 AO): after the person's erasure it stays unchanged but restricted (nothing reads it), encrypted
    under a retention key, until a scheduled purge deletes it at `retained_until`."""

    id = models.UUIDField(primary_key=True, editable=False)  # the LinkedRecord's id
    subject_id = models.UUIDField()
    vault = models.ForeignKey(VaultKey, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=64)
    category = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    retained_until = models.DateField()
    law = models.CharField(max_length=200)
    data_enc = models.BinaryField()  # {"external_id", "data"} under the retention key
    retained_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["retained_until"], name="retained_by_until")]

    def __str__(self) -> str:
        return f"retained {self.source} record {self.pk}"


class ErasureLog(models.Model):
    """Who was erased when, without personal data: after a backup restore `replay_erasures` re-applies these.
    The same lines go to an append-only file outside the database (settings.ASSENT_ERASURE_LOG)."""

    request_id = models.UUIDField(unique=True)
    subject_id = models.UUIDField()
    erased_at = models.DateTimeField()
    summary = models.JSONField(default=dict)  # counts only

    def __str__(self) -> str:
        return f"erasure of {self.subject_id}"


class IdentifierChange(models.Model):
    """A new e-mail address or phone number a person entered in the portal, waiting for proof that they control
    it: a link mailed to the address or a code sent by SMS to the number. Until then it changes nothing. The value
    is encrypted under the subject's data key like an Identifier's, and only a keyed hash of the link's token or
    the code is kept; both go once the change is settled."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        REFUSED = "refused"  # the value belongs to someone else (when asked for, or by the time it was confirmed)
        FAILED = "failed"  # too many wrong codes, or expired
        SUPERSEDED = "superseded"  # a newer change of the same kind replaced it

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="+", db_index=False)
    kind = models.CharField(max_length=32)
    blind_index = models.BinaryField(null=True)
    value_enc = models.BinaryField(null=True)  # NULL once settled
    secret_hash = models.CharField(max_length=64, blank=True)  # HMAC of the token or code; emptied once settled
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "kind"], condition=models.Q(status="pending"), name="identifier_change_pending_once"
            )
        ]
        indexes = [models.Index(fields=["subject", "requested_at"], name="identifier_change_by_subject")]

    def __str__(self) -> str:
        return f"{self.kind} change of {self.subject_id}"


class UndeliveredMail(models.Model):
    """A mail to a person that the mail server did not take (refused, or unreachable): kept for the DPO to see,
    until a retry delivers it. Holds no address: the subject where one is known (a double opt-in confirmation), a
    keyed hash of the address where not (a portal sign-in, which never looks the address up); the error is its
    type and SMTP code only, since a server's message may echo the address."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation"  # double opt-in link (consent/double_opt_in.py), retried by its task
        SIGNIN = "signin"  # portal sign-in link (subjects/portal/signin.py), retried by the person

    kind = models.CharField(max_length=16, choices=Kind.choices)
    reference = models.CharField(max_length=64)  # the confirmation's id, or the address's keyed hash
    subject = models.ForeignKey(Subject, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=120)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "reference"], condition=models.Q(delivered_at=None), name="undelivered_mail_open_once"
            )
        ]
        indexes = [models.Index(fields=["delivered_at", "last_failed_at"], name="undelivered_mail_open")]

    def __str__(self) -> str:
        return f"undelivered {self.kind} mail {self.pk}"


class SourceWriter(models.Model):
    """Which API client has written records of which source (Art. 19): a connected system that wrote a person's
    records holds them, so it is told of their rectification, restriction or erasure, and an Art. 19 event names
    the person's records of the sources its client has written. One row per pair, written the first time a client
    writes a source; no personal data."""

    client_id = models.BigIntegerField()  # consent.ApiClient's id; no foreign key: subjects never imports consent
    source = models.CharField(max_length=64)
    first_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client_id", "source"], name="source_writer_once")]
        indexes = [models.Index(fields=["source"], name="source_writer_by_source")]

    def __str__(self) -> str:
        return f"client {self.client_id} writes {self.source}"
