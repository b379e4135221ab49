"""The consent app's tables: the catalogue, the ledger and its state projection, API clients, the gates' logs, the
staff audit log and the restricted evidence store."""

from __future__ import annotations

import uuid
from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _

from consent.policy import Actor, ConsentStatus, LegalBasis
from subjects.models import Subject


def enum_choices(enum: type[StrEnum]) -> list[tuple[str, str]]:
    """A field's choices from a consent.policy enum (the one definition), labelled as TextChoices label them."""
    return [(member.value, member.name.replace("_", " ").title()) for member in enum]


# ---------------------------------------------------------------------------------------------------------
# Catalogue (privacy as code; loaded by apply_catalog, editable in admin)
# ---------------------------------------------------------------------------------------------------------
class CatalogueRevision(models.Model):
    """One applied catalogue file. Its id is the catalogue generation the policy caches are keyed on."""

    applied_at = models.DateTimeField()
    digest = models.CharField(max_length=64)  # SHA-256 of the canonical file
    merge_identifiers = models.JSONField(default=list)
    document = models.JSONField()

    class Meta:
        verbose_name = _("catalogue revision")
        verbose_name_plural = _("catalogue revisions")

    def __str__(self) -> str:
        return f"Catalogue revision {self.pk} ({self.applied_at:%Y-%m-%d %H:%M})"


class Channel(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    names = models.JSONField(null=True, blank=True)  # texts per language, when the catalogue gave several

    class Meta:
        verbose_name = _("channel")
        verbose_name_plural = _("channels")

    def __str__(self) -> str:
        return self.key


class DataCategory(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    names = models.JSONField(null=True, blank=True)  # texts per language, when the catalogue gave several
    profile = models.BooleanField(default=False)
    purchase = models.BooleanField(default=False)  # its records are purchases: UWG §7(3) existing customers

    class Meta:
        verbose_name = _("data category")
        verbose_name_plural = _("data categories")

    def __str__(self) -> str:
        return self.key


class Purpose(models.Model):
    LegalBasis = LegalBasis  # consent.policy's, nested as Django's choices usually are

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    names = models.JSONField(null=True, blank=True)  # texts per language, when the catalogue gave several
    legal_basis = models.CharField(max_length=32, choices=enum_choices(LegalBasis))
    marketing = models.BooleanField(default=False)
    channels = models.ManyToManyField(Channel, related_name="purposes")
    data_categories = models.ManyToManyField(DataCategory, related_name="purposes", blank=True)
    double_opt_in = models.JSONField(default=list, blank=True)  # channel keys
    consent_valid_days = models.PositiveIntegerField(null=True, blank=True)
    uwg_7_3 = models.BooleanField(default=False, verbose_name=_("existing-customer exemption (UWG §7(3))"))
    dpv = models.CharField(max_length=200, blank=True, verbose_name=_("DPV purpose (W3C Data Privacy Vocabulary)"))
    automated_decision = models.TextField(blank=True)
    automated_decision_texts = models.JSONField(null=True, blank=True)  # per language, when given so
    gpc = models.BooleanField(default=False, verbose_name=_("honours Global Privacy Control (GPC)"))
    tcf_purposes = models.JSONField(default=list, blank=True, verbose_name=_("TCF purposes"))
    reads_device_identifiers = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")

    def __str__(self) -> str:
        return self.key


class Notice(models.Model):
    """A versioned notice text. A version's texts never change: a new text is a new version."""

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="notices")
    version = models.CharField(max_length=64)
    requires_reconsent = models.BooleanField(default=False)
    texts = models.JSONField()  # {"de": ..., "en": ...}
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["purpose", "version"], name="notice_version_once")]
        ordering = ["purpose", "created_at", "pk"]
        verbose_name = _("notice")
        verbose_name_plural = _("notices")

    def __str__(self) -> str:
        return f"{self.purpose.key} notice {self.version}"


class Source(models.Model):
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    names = models.JSONField(null=True, blank=True)  # texts per language, when the catalogue gave several
    system_of_record = models.BooleanField(default=False)
    # How rights reach into the system itself (API.md, "Connectors"), as the catalogue gave it; null: none.
    connector = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")

    def __str__(self) -> str:
        return self.key


class SourceCategory(models.Model):
    """What one source holds of one data category, and how long (Art. 5(1)(e)); the legal hold if any."""

    class HoldFrom(models.TextChoices):
        END_OF_YEAR = "end_of_year"
        RECORD = "record"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="categories")
    category = models.ForeignKey(DataCategory, on_delete=models.PROTECT, related_name="sources")
    delete_after_days = models.PositiveIntegerField()
    legal_hold_years = models.PositiveIntegerField(null=True, blank=True)
    legal_hold_from = models.CharField(max_length=16, choices=HoldFrom.choices, blank=True)
    legal_hold_law = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "category"], name="source_category_once")]
        verbose_name = _("source category")
        verbose_name_plural = _("source categories")

    def __str__(self) -> str:
        return f"{self.source.key}/{self.category.key}"


# ---------------------------------------------------------------------------------------------------------
# The ledger: append-only events in a per-subject HMAC chain, and the state projection
# ---------------------------------------------------------------------------------------------------------
class ConsentEvent(models.Model):
    class Action(models.TextChoices):
        GRANT = "grant"
        WITHDRAW = "withdraw"
        CONFIRM = "confirm"
        OBJECT = "object"
        EXPIRE = "expire"
        MERGED = "merged"
        SPLIT = "split"  # a wrong merge undone: on both chains, related_subject names the other side
        ERASED = "erased"

    # Who acted: the person's side (consent.policy.Actor) or Assent itself (a merge, a split, an erasure, expiry).
    SYSTEM_ACTOR = "system"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # db_index off: event_seq_once leads with the subject and serves every lookup by subject; an index on the
    # column alone only cost every event one more random-page insert.
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, related_name="consent_events", db_index=False)
    seq = models.PositiveBigIntegerField()
    purpose = models.CharField(max_length=64, blank=True)  # catalogue key; blank for subject-wide events
    channel = models.CharField(max_length=64, blank=True)  # blank: every channel of the purpose
    action = models.CharField(max_length=16, choices=Action.choices)
    notice_version = models.CharField(max_length=64, blank=True)
    source = models.CharField(max_length=64)
    actor = models.CharField(
        max_length=32, choices=[*enum_choices(Actor), (SYSTEM_ACTOR, "System")], default=Actor.SUBJECT.value
    )
    client = models.ForeignKey("ApiClient", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    evidence_enc = models.BinaryField(null=True)  # JSON, encrypted under the subject's key (IP, user agent ...)
    related_subject = models.UUIDField(null=True, blank=True)  # merged: the other side of the merge
    # A grant or confirmation that met the suppression list when it was recorded (held for the person, DESIGN.md
    # Erasure). The replay needs it for every such event, not only the one a state row names now; hashed when set.
    suppressed = models.BooleanField(default=False)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "seq"], name="event_seq_once")]
        indexes = [
            models.Index(fields=["subject", "purpose", "channel", "occurred_at"], name="event_by_triple"),
            # consent.ledger.verification's incremental run: the subjects with events recorded since the last run.
            models.Index(fields=["recorded_at"], name="event_by_recorded"),
        ]
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")

    def __str__(self) -> str:
        return f"event {self.seq} of {self.subject_id}: {self.action}"


class LedgerHead(models.Model):
    """The last seq and hash of a subject's chain: a shortened or truncated chain no longer matches it."""

    subject = models.OneToOneField(Subject, primary_key=True, on_delete=models.PROTECT, related_name="ledger_head")
    last_seq = models.PositiveBigIntegerField()
    last_hash = models.CharField(max_length=64)

    class Meta:
        verbose_name = _("ledger head")
        verbose_name_plural = _("ledger heads")

    def __str__(self) -> str:
        return f"ledger head of {self.subject_id}"


class ConsentState(models.Model):
    """Projection: the state per subject x purpose x channel, written in the event's transaction."""

    Status = ConsentStatus  # consent.policy's, nested as Django's choices usually are

    # db_index off: state_once_per_triple leads with the subject and serves every lookup by subject; an index on the
    # column alone only cost every state write one more random-page insert.
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="consent_states", db_index=False)
    purpose = models.CharField(max_length=64)
    channel = models.CharField(max_length=64)
    status = models.CharField(max_length=32, choices=enum_choices(ConsentStatus))
    notice_version = models.CharField(max_length=64, blank=True)
    since = models.DateTimeField()  # occurred_at of the event that decided this state
    granted_at = models.DateTimeField(null=True)
    confirmed = models.BooleanField(default=False)
    actor = models.CharField(max_length=32, default=Actor.SUBJECT.value)
    suppressed = models.BooleanField(default=False)
    seq = models.PositiveBigIntegerField()
    # The event this state was projected from (the one at `seq` on this subject's chain, a merge's `merged` event
    # for a combined state): the state is inside the proof, and consent.ledger.verification re-projects it.
    event = models.ForeignKey(ConsentEvent, null=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        # The policy check reads these columns of up to 10,000 people per call (consent.selectors._CHECK_SQL): kept in
        # the unique index, each is an index-only probe that never visits the table.
        constraints = [
            models.UniqueConstraint(
                fields=["subject", "purpose", "channel"],
                include=["status", "confirmed", "actor", "suppressed", "granted_at", "notice_version"],
                name="state_once_per_triple",
            )
        ]
        indexes = [models.Index(fields=["purpose", "channel", "status"], name="state_by_purpose")]
        verbose_name = _("consent state")
        verbose_name_plural = _("consent states")

    def __str__(self) -> str:
        return f"{self.purpose}/{self.channel} of {self.subject_id}: {self.status}"


class LedgerVerification(models.Model):
    """One run of consent.ledger.verification: the chains and the state re-projected from them (the dashboard shows the
    last one). `problems`: [{"subject": ..., "kind": ..., "detail": ...}], capped (see verification.PROBLEM_CAP)."""

    class Kind(models.TextChoices):
        FULL = "full"
        INCREMENTAL = "incremental"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subjects_checked = models.PositiveIntegerField(default=0)
    problem_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(default=list)

    class Meta:
        indexes = [models.Index(fields=["-started_at"], name="ledger_verification_latest")]

    def __str__(self) -> str:
        return f"{self.kind} ledger verification at {self.started_at:%Y-%m-%d %H:%M}: {self.problem_count} problem(s)"


class Objection(models.Model):
    """Art. 21: an objection to one purpose, or (purpose blank) to all direct marketing, which is absolute."""

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="objections")
    purpose = models.CharField(max_length=64, blank=True)
    since = models.DateTimeField()
    seq = models.PositiveBigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["subject", "purpose"], name="objection_once")]
        verbose_name = _("objection")
        verbose_name_plural = _("objections")

    def __str__(self) -> str:
        return f"objection of {self.subject_id} to {self.purpose or 'direct marketing'}"


class Confirmation(models.Model):
    """A double opt-in waiting for the person's click; the link carries a signed token naming this row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="+")
    grant = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=64)
    channel = models.CharField(max_length=64)
    email_enc = models.BinaryField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    mailed_at = models.DateTimeField(null=True)
    used_at = models.DateTimeField(null=True)
    # Claimed by the task mailing the link, until then: two tasks (a retry and beat's resend, or a redelivery)
    # never both hand it to the mail server.
    send_claimed_until = models.DateTimeField(null=True, blank=True)
    # The language the person read when they chose ("" = the site's, LANGUAGE_CODE): the mail is sent later by a
    # worker, which has no request to take it from, and it speaks one language, theirs.
    language = models.CharField(max_length=8, blank=True, default="")

    def __str__(self) -> str:
        return f"confirmation {self.id}"


# ---------------------------------------------------------------------------------------------------------
# API clients and idempotency
# ---------------------------------------------------------------------------------------------------------
class ApiClient(models.Model):
    class Scope(models.TextChoices):
        CONSENT_CHECK = "consent:check"
        CONSENT_WRITE = "consent:write"
        CONSENT_READ = "consent:read"
        RECORDS_WRITE = "records:write"
        PROFILE_READ = "profile:read"
        SENDS_CREATE = "sends:create"
        REQUESTS_WRITE = "requests:write"
        REQUESTS_READ = "requests:read"
        REQUESTS_APPROVE = "requests:approve"
        WEBHOOKS_MANAGE = "webhooks:manage"

    name = models.CharField(max_length=200, unique=True)
    prefix = models.CharField(max_length=16)  # shown in admin to recognise a key; not secret
    key_digest = models.CharField(max_length=64, unique=True)  # SHA-256 hex of the whole key
    scopes = models.JSONField(default=list)
    purposes = models.JSONField(default=list, blank=True)  # empty: every purpose
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("API client")
        verbose_name_plural = _("API clients")

    def __str__(self) -> str:
        return self.name


class IdempotencyKey(models.Model):
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_digest = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    body = models.JSONField()  # ids and states only, never personal data
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="idempotency_key_once")]
        indexes = [models.Index(fields=["created_at"], name="idempotency_by_age")]

    def __str__(self) -> str:
        return f"idempotency key of client {self.client_id}"


# ---------------------------------------------------------------------------------------------------------
# Gates: every profile read and every send is logged with the calling client (Art. 15(1)(c) recipients)
# ---------------------------------------------------------------------------------------------------------
class ReadLog(models.Model):
    # db_index off: read_by_subject leads with the subject and serves every lookup by subject; an index on the
    # column alone only cost every logged read one more random-page insert.
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="+", db_index=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    purpose = models.CharField(max_length=64)
    categories = models.JSONField(default=list)
    read_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["subject", "read_at"], name="read_by_subject")]
        verbose_name = _("profile read")
        verbose_name_plural = _("profile reads")

    def __str__(self) -> str:
        return f"read {self.pk}"


class Send(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    campaign = models.CharField(max_length=200)
    purpose = models.CharField(max_length=64)
    channel = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    allowed_count = models.PositiveIntegerField(default=0)
    blocked_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("send")
        verbose_name_plural = _("sends")

    def __str__(self) -> str:
        return f"send {self.id}"


class SendRecipient(models.Model):
    """One recipient's decision in a send. No reference is stored: the index and the subject suffice."""

    send = models.ForeignKey(Send, on_delete=models.CASCADE, related_name="recipients")
    index = models.PositiveIntegerField()
    # No database constraint: a subject row is never deleted (erasure keeps it as a tombstone), and the check cost
    # a foreign-key probe per logged recipient at commit, a large share of a million-recipient send job.
    subject = models.ForeignKey(Subject, null=True, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    allowed = models.BooleanField()
    reason = models.CharField(max_length=32)

    class Meta:
        verbose_name = _("send recipient")
        verbose_name_plural = _("send recipients")

    def __str__(self) -> str:
        return f"recipient {self.index} of send {self.send_id}"


class SendJob(models.Model):
    """A large send (API.md `/api/v1/send-jobs`): the references uploaded as a file, gated by a worker in chunks of
    lines and logged as one Send. `checkpoint` says how far the committed chunks reached in the upload and in the
    result file (byte offsets), so a worker that takes over a dead one's job continues there and writes nothing
    twice. Files are named relative to settings.ASSENT_SEND_JOB_DIR."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(ApiClient, on_delete=models.PROTECT, related_name="+")
    campaign = models.CharField(max_length=200)
    purpose = models.CharField(max_length=64)
    channel = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField()  # lines uploaded
    processed = models.PositiveIntegerField(default=0)
    allowed = models.PositiveIntegerField(default=0)
    blocked = models.PositiveIntegerField(default=0)  # malformed lines included
    send = models.OneToOneField(Send, null=True, blank=True, on_delete=models.PROTECT, related_name="job")
    upload_file = models.CharField(max_length=200)
    result_file = models.CharField(max_length=200)
    checkpoint = models.JSONField(default=dict)  # {"input": byte offset, "result": byte offset}
    lease_token = models.UUIDField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "claimed_until"], name="send_job_by_status")]
        verbose_name = _("send job")
        verbose_name_plural = _("send jobs")

    def __str__(self) -> str:
        return f"send job {self.id}"


# ---------------------------------------------------------------------------------------------------------
# Staff audit log (Art. 32): every admin action and every view of a subject's decrypted data
# ---------------------------------------------------------------------------------------------------------
class AuditEntry(models.Model):
    """Who did what in the admin, and who looked at whose decrypted data. Objects are named by type and id only,
    never by a value, so the log itself holds no personal data of subjects. Append-only: the admin offers no
    change or delete, and on PostgreSQL a trigger refuses UPDATE and DELETE."""

    class Action(models.TextChoices):
        SIGN_IN = "sign_in"
        SIGN_OUT = "sign_out"
        ADD = "add"
        CHANGE = "change"
        DELETE = "delete"
        ACTION = "action"  # an admin action or button (revoke, split, verify ...): its name is in `detail`
        VIEW = "view"  # decrypted personal data was shown
        EXPORT = "export"

    at = models.DateTimeField()
    user_id = models.BigIntegerField(null=True)  # no foreign key: the entry outlives the staff account
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    object_type = models.CharField(max_length=100, blank=True)  # app_label.model
    object_id = models.CharField(max_length=64, blank=True)
    detail = models.CharField(max_length=300, blank=True)  # an action's name or changed field names, never a value

    class Meta:
        indexes = [
            models.Index(fields=["object_type", "object_id", "at"], name="audit_by_object"),
            models.Index(fields=["at"], name="audit_by_time"),
        ]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")

    def __str__(self) -> str:
        return f"{self.action} {self.object_type} {self.object_id} by {self.username}".replace("  ", " ")


# ---------------------------------------------------------------------------------------------------------
# The restricted evidence store: an erased person's consent proof, kept while claims can be raised
# ---------------------------------------------------------------------------------------------------------
class EvidenceArchive(models.Model):
    """The consent events of an erased person (their chains, closed with an `erased` event), moved out of the
    ledger and encrypted under their own key (subjects.VaultKey, purpose evidence): nothing reads them but a
    dispute. Kept to the end of the third year after last use (§§195, 199 BGB), five years for phone consent
    (§7a UWG), then purged with the key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subject_id = models.UUIDField(unique=True)  # no foreign key: the subject row is shredded, the proof stays
    request_id = models.UUIDField(null=True, blank=True)
    vault = models.ForeignKey("subjects.VaultKey", on_delete=models.PROTECT, related_name="+")
    events_enc = models.BinaryField()  # JSON: every chain's events with their hashes and evidence
    event_count = models.PositiveIntegerField()
    last_hash = models.CharField(max_length=64)
    last_used_at = models.DateTimeField()
    phone = models.BooleanField(default=False)
    keep_until = models.DateField()
    archived_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["keep_until"], name="evidence_by_keep_until")]

    def __str__(self) -> str:
        return f"consent evidence of {self.subject_id}"


# The outbox and webhook subscriptions live in their own module (consent.webhooks.models); Django finds models
# through this one.
from consent.webhooks.models import WebhookDelivery, WebhookEvent, WebhookSubscription  # noqa: E402, F401
