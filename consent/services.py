"""Writes to the consent ledger. Every consent change goes through `consent_record`, which validates the command
and hands it to the write kernel (consent.ledger.recording): the event, the chain head and the state projection in
one durable transaction under the subject's lock (read-your-writes: a check right after a write sees it)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import InvalidInputError
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, channel_check, purpose_get
from consent.clients import client_purpose_check
from consent.errors import (
    EvidenceRequiredError,
    IdempotencyConflictError,
    NoticeUnknownError,
    ReservedSourceError,
)
from consent.ledger.recording import (
    RESERVED_SOURCES,
    ConsentCommand,
    ConsentRecorded,
    client_confirms,
    consent_event_record,
    direct_marketing_objection_record,
)
from consent.models import IdempotencyKey
from consent.policy import Actor, LegalBasis
from subjects.locks import advisory_lock, lock_subject
from subjects.selectors import subject_get_survivor

API_ACTIONS = ("grant", "withdraw", "object", "confirm")
ACTORS = tuple(actor.value for actor in Actor)
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CLOCK_SKEW = timedelta(seconds=5)
MAX_EVIDENCE_BYTES = 16 * 1024


# ---------------------------------------------------------------------------------------------------------
# Validation: everything that can be said about a command before a row is touched
# ---------------------------------------------------------------------------------------------------------
def consent_validate(command: ConsentCommand, *, now: datetime, internal: bool = False) -> PurposeInfo:
    if command.action not in API_ACTIONS:
        raise InvalidInputError(f"'{command.action}' is not one of {', '.join(API_ACTIONS)}", field="action")
    snapshot, info = purpose_get(catalogue_snapshot(), command.purpose)
    client_purpose_check(purpose=command.purpose, client_purposes=command.client_purposes)
    if command.channel is None:
        if command.action != "object":
            raise InvalidInputError("is required (only an objection may leave it out)", field="channel")
    else:
        channel_check(snapshot, info, command.channel)
    consent_based = info.rule.legal_basis == LegalBasis.CONSENT
    if command.action in ("grant", "confirm", "withdraw") and not consent_based:
        raise InvalidInputError(
            f"purpose '{command.purpose}' rests on {info.rule.legal_basis.value}, not consent: "
            "it can be objected to, not granted or withdrawn",
            field="action",
        )
    if command.action == "grant" and not command.notice_version:
        raise InvalidInputError("is required for a grant: the notice text the person saw", field="notice_version")
    if command.notice_version and command.notice_version not in info.notice_versions:
        raise NoticeUnknownError(
            f"purpose '{command.purpose}' has no notice version '{command.notice_version}'", field="notice_version"
        )
    if command.occurred_at is not None and command.occurred_at > now + CLOCK_SKEW:
        raise InvalidInputError("must not be in the future", field="occurred_at")
    if not SLUG.match(command.source):
        raise InvalidInputError("must be a lower-case slug such as 'webshop' or 'pos'", field="source")
    if command.source in RESERVED_SOURCES and not internal:
        raise ReservedSourceError(f"'{command.source}' is reserved for Assent itself", field="source")
    if command.actor not in ACTORS:
        raise InvalidInputError(f"'{command.actor}' is not one of {', '.join(ACTORS)}", field="actor")
    if len(json.dumps(command.evidence)) > MAX_EVIDENCE_BYTES:
        raise InvalidInputError(f"larger than {MAX_EVIDENCE_BYTES} bytes", field="evidence")
    if client_confirms(command):
        _confirmation_evidence_check(command.evidence, now)
    return info


def _confirmation_evidence_check(evidence: dict[str, Any], now: datetime) -> None:
    """A client's confirmation is proof only with the when and the how of the person's act."""
    confirmed_at = evidence.get("confirmed_at")
    method = evidence.get("method")
    if not isinstance(confirmed_at, str) or not isinstance(method, str) or not method.strip():
        raise EvidenceRequiredError(
            "a confirmation needs evidence with 'confirmed_at' (ISO 8601) and 'method'", field="evidence"
        )
    try:
        when = datetime.fromisoformat(confirmed_at)
    except ValueError:
        raise EvidenceRequiredError("'confirmed_at' is not an ISO 8601 date and time", field="evidence") from None
    if when.utcoffset() is None or when > now + CLOCK_SKEW:
        raise EvidenceRequiredError("'confirmed_at' needs a time zone and must not be in the future", field="evidence")


# ---------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------
@transaction.atomic(durable=True)
def consent_record(*, command: ConsentCommand, internal: bool = False) -> ConsentRecorded:
    now = timezone.now()
    info = consent_validate(command, now=now, internal=internal)
    return consent_event_record(command, info, now)


def consent_record_idempotent(
    *, command: ConsentCommand, client_id: int, key: str, request_digest: str
) -> tuple[int, dict[str, Any]]:
    """A write under an Idempotency-Key: a replay returns the first status and body; the same key with another
    body is a conflict. The key row is written in the event's transaction, so it exists exactly when the event does."""
    now = timezone.now()
    # A replay, the usual reason to send a key again, is answered from the committed row without a transaction or
    # a lock: a stored key never changes until it expires, and an expired one takes the locked path below.
    replayed = _idempotent_replay(client_id, key, request_digest, now)
    if replayed is not None:
        return replayed
    with transaction.atomic(durable=True):
        advisory_lock(f"idem:{client_id}:{key}")
        existing = IdempotencyKey.objects.filter(client_id=client_id, key=key).first()
        if existing is not None and existing.created_at < idempotency_window_start(now):
            existing.delete()
            existing = None
        if existing is not None:
            return _idempotent_answer(existing, request_digest)
        info = consent_validate(command, now=now)
        recorded = consent_event_record(command, info, now)
        body = recorded.as_body()
        IdempotencyKey.objects.create(
            client_id=client_id, key=key, request_digest=request_digest, status=201, body=body, created_at=now
        )
        return 201, body


def _idempotent_replay(
    client_id: int, key: str, request_digest: str, now: datetime
) -> tuple[int, dict[str, Any]] | None:
    existing = IdempotencyKey.objects.filter(client_id=client_id, key=key).first()
    if existing is None or existing.created_at < idempotency_window_start(now):
        return None
    return _idempotent_answer(existing, request_digest)


def _idempotent_answer(existing: IdempotencyKey, request_digest: str) -> tuple[int, dict[str, Any]]:
    """The first answer to a key, or a conflict when the key came with another body."""
    if existing.request_digest != request_digest:
        raise IdempotencyConflictError(
            "this Idempotency-Key was used with another request body", field="Idempotency-Key"
        )
    return existing.status, dict(existing.body)


def idempotency_window_start(now: datetime) -> datetime:
    """Keys older than this are forgotten: a replay after the window is a new request."""
    return now - timedelta(hours=settings.ASSENT_IDEMPOTENCY_HOURS)


def idempotency_keys_purge() -> int:
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=idempotency_window_start(timezone.now())).delete()
    return deleted


@dataclass(frozen=True, slots=True)
class ObjectionRecorded:
    subject_id: uuid.UUID
    event_id: uuid.UUID | None  # None: the objection stood already, nothing was recorded


@transaction.atomic(durable=True)
def consent_object_direct_marketing(
    *, subject_id: uuid.UUID, source: str, evidence: dict[str, Any], actor: str = "subject"
) -> ObjectionRecorded:
    """Art. 21(2)-(3): an objection to direct marketing, absolute: afterwards the policy denies every marketing
    purpose on every channel, whatever consents exist. An `object` event with blank purpose and channel, and the
    Objection(purpose="") row the policy reads. Idempotent: a standing objection records nothing new."""
    survivor = subject_get_survivor(subject_id=subject_id)
    subject = lock_subject(survivor.id)
    event = direct_marketing_objection_record(
        subject, source=source, actor=actor, evidence=evidence, now=timezone.now()
    )
    return ObjectionRecorded(subject.id, event.id if event else None)


def request_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
