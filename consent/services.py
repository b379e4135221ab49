"""Writes to the consent ledger. Every consent change goes through `consent_record`, which appends the event,
moves the chain head and updates the state projection in one durable transaction under the subject's lock
(read-your-writes: a check right after a write sees it)."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import InvalidInputError
from consent import projection
from consent.errors import (
    ChannelNotPermittedError,
    ChannelUnknownError,
    EmailNotLinkedError,
    EmailRequiredError,
    EvidenceRequiredError,
    ForbiddenPurposeError,
    IdempotencyConflictError,
    NothingToConfirmError,
    NoticeUnknownError,
    PurposeUnknownError,
    ReservedSourceError,
)
from consent.ledger import NewEvent, ledger_append
from consent.models import Confirmation, ConsentEvent, ConsentState, IdempotencyKey, Objection
from consent.policy import LegalBasis
from consent.selectors import CatalogueSnapshot, PurposeInfo, catalogue_snapshot
from subjects.columns import CONFIRMATION_EMAIL
from subjects.errors import SubjectNotFoundError
from subjects.identity import Reference
from subjects.keys import blind_index, data_key, encrypt_field
from subjects.locks import advisory_lock, advisory_locks, lock_subject
from subjects.models import Subject
from subjects.selectors import identifier_owners, subject_get_survivor, subject_identifiers, subject_resolve
from subjects.services import subject_create
from subjects.suppression import identifiers_suppressed, suppression_lift

# API.md reserves the first five; the rest are what Assent itself writes (expiry, merges, rights requests).
RESERVED_SOURCES = frozenset(
    {"portal", "double-opt-in", "unsubscribe-link", "gpc", "admin", "expiry", "merge", "split", "rights-request"}
)
PERSON_SOURCES = frozenset({"portal", "double-opt-in"})  # the person's own act (lifts an objection)
API_ACTIONS = ("grant", "withdraw", "object", "confirm")
ACTORS = ("subject", "agent", "parental_guardian")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
CLOCK_SKEW = timedelta(seconds=5)
MAX_EVIDENCE_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ConsentCommand:
    reference: Reference
    purpose: str
    action: str
    source: str
    channel: str | None = None
    notice_version: str | None = None
    occurred_at: datetime | None = None
    actor: str = "subject"
    evidence: dict[str, Any] = field(default_factory=dict)
    client_id: int | None = None
    client_purposes: frozenset[str] = frozenset()  # empty: every purpose


@dataclass(frozen=True, slots=True)
class ConsentRecorded:
    event_id: uuid.UUID
    subject_id: uuid.UUID
    state: str

    def as_body(self) -> dict[str, str]:
        return {"event": str(self.event_id), "subject": str(self.subject_id), "state": self.state}


# ---------------------------------------------------------------------------------------------------------
# Validation: everything that can be said about a command before a row is touched
# ---------------------------------------------------------------------------------------------------------
def purpose_get(
    snapshot: CatalogueSnapshot, key: str, *, field_name: str = "purpose"
) -> tuple[CatalogueSnapshot, PurposeInfo]:
    info = snapshot.purposes.get(key)
    if info is None:
        snapshot = catalogue_snapshot(refresh=True)
        info = snapshot.purposes.get(key)
    if info is None:
        raise PurposeUnknownError(f"'{key}' is not a purpose of the catalogue", field=field_name)
    return snapshot, info


def channel_check(
    snapshot: CatalogueSnapshot,
    info: PurposeInfo,
    channel: str,
    *,
    field_name: str = "channel",
    listed: bool = True,
) -> None:
    """400 for a channel the catalogue does not know; with `listed`, also for one the purpose does not use
    (a check answers that as a denial instead)."""
    if channel not in snapshot.channels and channel not in catalogue_snapshot(refresh=True).channels:
        raise ChannelUnknownError(f"'{channel}' is not a channel of the catalogue", field=field_name)
    if listed and channel not in info.rule.channels:
        raise ChannelNotPermittedError(
            f"purpose '{info.rule.key}' does not use channel '{channel}' "
            f"(it uses {', '.join(sorted(info.rule.channels))})",
            field=field_name,
        )


def consent_validate(command: ConsentCommand, *, now: datetime, internal: bool = False) -> PurposeInfo:
    if command.action not in API_ACTIONS:
        raise InvalidInputError(f"'{command.action}' is not one of {', '.join(API_ACTIONS)}", field="action")
    snapshot, info = purpose_get(catalogue_snapshot(), command.purpose)
    if command.client_purposes and command.purpose not in command.client_purposes:
        raise ForbiddenPurposeError(f"this API client may not act for purpose '{command.purpose}'")
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
    if _client_confirms(command):
        _confirmation_evidence_check(command.evidence, now)
    return info


def _client_confirms(command: ConsentCommand) -> bool:
    """A `confirm` a client posts for its own form's double opt-in (Assent's own sources are all reserved)."""
    return command.action == "confirm" and command.source not in RESERVED_SOURCES


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
    return _record(command, info, now)


def consent_record_idempotent(
    *, command: ConsentCommand, client_id: int, key: str, request_digest: str
) -> tuple[int, dict[str, Any]]:
    """A write under an Idempotency-Key: a replay returns the first status and body; the same key with another
    body is a conflict. The key row is written in the event's transaction, so it exists exactly when the event does."""
    now = timezone.now()
    with transaction.atomic(durable=True):
        advisory_lock(f"idem:{client_id}:{key}")
        existing = IdempotencyKey.objects.filter(client_id=client_id, key=key).first()
        if existing is not None and existing.created_at < now - timedelta(hours=settings.ASSENT_IDEMPOTENCY_HOURS):
            existing.delete()
            existing = None
        if existing is not None:
            if existing.request_digest != request_digest:
                raise IdempotencyConflictError(
                    "this Idempotency-Key was used with another request body", field="Idempotency-Key"
                )
            return existing.status, dict(existing.body)
        info = consent_validate(command, now=now)
        recorded = _record(command, info, now)
        body = recorded.as_body()
        IdempotencyKey.objects.create(
            client_id=client_id, key=key, request_digest=request_digest, status=201, body=body, created_at=now
        )
        return 201, body


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
    if Objection.objects.filter(subject=subject, purpose="").exists():
        return ObjectionRecorded(subject.id, None)
    now = timezone.now()
    event = ledger_append(
        subject=subject,
        key=data_key(subject),
        new=NewEvent(
            purpose="",
            channel="",
            action="object",
            notice_version="",
            source=source,
            actor=actor,
            occurred_at=now,
            evidence=evidence,
        ),
        recorded_at=now,
    )
    Objection.objects.create(subject=subject, purpose="", since=now, seq=event.seq)
    return ObjectionRecorded(subject.id, event.id)


def request_digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _subject_for_write(reference: Reference, now: datetime) -> tuple[Subject, bool]:
    """The locked subject the reference names, created when nothing resolves (only from identifiers)."""
    index = blind_index()
    # Two first writes for the same new person must not create two subjects: lock on the identifiers first.
    advisory_locks({"ident:" + index.lookup(kind, value).hex() for kind, value in reference.identifiers})
    subject_id = subject_resolve(reference=reference)
    if subject_id is None:
        if reference.subject_id is not None:
            raise SubjectNotFoundError("no subject with this id", field="subject.id")
        return subject_create(reference=reference, now=now), True
    subject = lock_subject(subject_id)
    if subject.merged_into_id is not None:
        # Merged between resolving and locking: its chain is closed, the survivor takes the write.
        subject = lock_subject(subject.merged_into_id)
    return subject, False


def _record(command: ConsentCommand, info: PurposeInfo, now: datetime) -> ConsentRecorded:
    subject, _created = _subject_for_write(command.reference, now)
    if _client_confirms(command):
        # The confirmed address must be the person's: another's address in the reference proves nothing for them.
        _linked_email(subject, command.reference, required=True)
    if (
        command.action == "confirm"
        and not command.notice_version
        and not ConsentState.objects.filter(
            subject=subject, purpose=command.purpose, channel=command.channel, status=projection.PENDING
        ).exists()
    ):
        # A bare confirm confirms a pending grant; without one it would record an event that changes nothing.
        raise NothingToConfirmError("nothing waits for confirmation on this purpose and channel", field="action")
    key = data_key(subject)
    occurred_at = command.occurred_at or now
    channels = [command.channel] if command.channel else sorted(info.rule.channels)
    suppressed = _suppression_applies(subject, key, command, info)
    event = ledger_append(
        subject=subject,
        key=key,
        new=NewEvent(
            purpose=command.purpose,
            channel=command.channel or "",
            action=command.action,
            notice_version=command.notice_version or "",
            source=command.source,
            actor=command.actor,
            occurred_at=occurred_at,
            evidence=command.evidence,
            client_id=command.client_id,
        ),
        recorded_at=now,
    )
    if command.action == "object":
        Objection.objects.update_or_create(
            subject=subject, purpose=command.purpose, defaults={"since": occurred_at, "seq": event.seq}
        )
    elif command.action in ("grant", "confirm") and command.source in PERSON_SOURCES and command.actor == "subject":
        # Art. 21: the person's own later grant lifts their objection to that purpose.
        Objection.objects.filter(subject=subject, purpose=command.purpose, since__lte=occurred_at).delete()
        if info.rule.marketing:
            _suppression_lift(subject, key)
    state = ""
    for channel in channels:
        fact = _project(subject, info, channel, event, suppressed=suppressed)
        state = fact.status if fact else state
    if command.action == "object" and command.channel is None:
        state = projection.OBJECTED
    if (
        state == projection.PENDING
        and command.action == "grant"
        # A suppressed grant on a channel without double opt-in is confirmed by mail when there is an address,
        # else it waits for the person's own grant in the portal.
        and (not suppressed or command.reference.email is not None or command.channel in info.rule.double_opt_in)
    ):
        _ask_for_confirmation(
            subject, key, command, event, now, required=command.channel in info.rule.double_opt_in or not suppressed
        )
    return ConsentRecorded(event.id, subject.id, state or "")


def _project(
    subject: Subject, info: PurposeInfo, channel: str, event: ConsentEvent, *, suppressed: bool = False
) -> projection.Fact | None:
    """Move the projection of one (purpose, channel) by one event: incrementally when the event is the newest,
    else by folding the triple's whole history (a late upload of an older event)."""
    double_opt_in = channel in info.rule.double_opt_in
    row = ConsentState.objects.filter(subject=subject, purpose=info.rule.key, channel=channel).first()
    current = _fact_of(row) if row else None
    step = projection.Step(
        event.action, event.notice_version, event.actor, event.occurred_at, event.seq, suppressed=suppressed
    )
    if current is None or step.order >= current.order:
        fact = _apply(current, step, event.source, double_opt_in=double_opt_in)
    else:
        # The ledger does not say which grants met the suppression list; the state row remembers the one that
        # decides it now, and this event says it of itself.
        marked = {event.seq} if suppressed else set()
        if row is not None and row.suppressed:
            marked.add(row.seq)
        # The fold takes in the chains merged into this subject, as the merge combined them (consent/merging.py);
        # imported here because merging builds on this module.
        from consent.merging import state_refold

        fact = state_refold(
            subject_id=subject.id,
            purpose=info.rule.key,
            channel=channel,
            double_opt_in=double_opt_in,
            marked=frozenset(marked),
        )
    if fact is None:
        return None
    values = {
        "status": fact.status,
        "notice_version": fact.notice_version,
        "since": fact.since,
        "granted_at": fact.granted_at,
        "confirmed": fact.confirmed,
        "actor": fact.actor,
        "suppressed": fact.suppressed,
        "seq": fact.seq,
        # The state names the event it was projected from, so consent.verification can prove it from the chain.
        "event_id": event.id
        if fact.seq == event.seq
        else ConsentEvent.objects.filter(subject=subject, seq=fact.seq).values_list("pk", flat=True).first(),
    }
    if row is None:
        ConsentState.objects.create(subject=subject, purpose=info.rule.key, channel=channel, **values)
    else:
        ConsentState.objects.filter(pk=row.pk).update(**values)
    return fact


def _apply(
    current: projection.Fact | None, step: projection.Step, source: str, *, double_opt_in: bool
) -> projection.Fact | None:
    """projection.apply, but a suppressed grant waits for the person: nobody else's confirmation releases it."""
    if step.action == "confirm" and not _by_person(source, step.actor):
        if step.suppressed:  # a client's own double opt-in for a suppressed identifier counts as a grant
            notice = step.notice_version or (current.notice_version if current else "")
            return projection.apply(
                current, replace(step, action="grant", notice_version=notice), double_opt_in=double_opt_in
            )
        if current is not None and current.suppressed:
            return current
    return projection.apply(current, step, double_opt_in=double_opt_in)


def _by_person(source: str, actor: str) -> bool:
    return source in PERSON_SOURCES and actor == "subject"


# ---------------------------------------------------------------------------------------------------------
# Suppression list (DESIGN.md, Erasure): identifiers of erased people. A later marketing grant for one of them
# from anyone but the person stays pending (reason `suppressed`) until the person confirms it themselves.
# ---------------------------------------------------------------------------------------------------------
def _identifiers_of(subject: Subject, key: bytes, reference: Reference) -> list[tuple[str, str]]:
    """The reference's identifiers and every identifier the subject holds."""
    return [*reference.identifiers, *subject_identifiers(subject=subject, key=key)]


def _suppression_applies(subject: Subject, key: bytes, command: ConsentCommand, info: PurposeInfo) -> bool:
    if (
        not info.rule.marketing
        or command.action not in ("grant", "confirm")
        or _by_person(command.source, command.actor)
    ):
        return False
    return identifiers_suppressed(identifiers=_identifiers_of(subject, key, command.reference))


def _suppression_lift(subject: Subject, key: bytes) -> None:
    """The person's own marketing grant or confirmation takes their identifiers off the list: only those the
    subject holds (a new subject holds the reference's), never an unlinked identifier of the reference."""
    suppression_lift(identifiers=subject_identifiers(subject=subject, key=key))


def _fact_of(row: ConsentState) -> projection.Fact:
    return projection.Fact(
        status=row.status,
        notice_version=row.notice_version,
        since=row.since,
        seq=row.seq,
        granted_at=row.granted_at,
        confirmed=row.confirmed,
        actor=row.actor,
        suppressed=row.suppressed,
    )


def _linked_email(subject: Subject, reference: Reference, *, required: bool) -> str | None:
    """The reference's e-mail if it is an identifier of the subject (a subject this write created holds it).
    Required: 400 without one, 409 for an address that is not the subject's; else None for either."""
    email = reference.email
    if email is None:
        if required:
            raise EmailRequiredError(
                "a double opt-in needs an e-mail address of the subject in the subject reference",
                field="subject.email",
            )
        return None
    if subject.id not in identifier_owners(identifiers=[("email", email)])[0]:
        if required:
            # The message names no owner: whether the address is someone else's is not the caller's to learn.
            raise EmailNotLinkedError(
                "this e-mail address is not an identifier of the subject; attach it through /records first",
                field="subject.email",
            )
        return None
    return email


def _ask_for_confirmation(
    subject: Subject, key: bytes, command: ConsentCommand, event: ConsentEvent, now: datetime, *, required: bool
) -> None:
    """UWG §7(2) Nr. 2: e-mail marketing needs the address owner's confirmation. The Confirmation row is the
    outbox: the mail is sent after commit, and a periodic task re-sends any the worker missed. The link goes
    only to an address of the subject; `required` False (a suppressed grant off double opt-in) mails only
    when there is one, else the grant waits for the person in the portal."""
    email = _linked_email(subject, command.reference, required=required)
    if email is None:
        return
    row_id = uuid.uuid4()  # before the insert: the e-mail is bound to the row
    confirmation = Confirmation.objects.create(
        id=row_id,
        subject=subject,
        grant=event,
        purpose=command.purpose,
        channel=event.channel,
        email_enc=encrypt_field(subject, key, CONFIRMATION_EMAIL, email, row_id=row_id),
        created_at=now,
        expires_at=now + timedelta(days=settings.ASSENT_CONFIRMATION_DAYS),
    )
    from consent.tasks import send_confirmation  # enqueued on commit; the task reads ids only

    confirmation_id = str(confirmation.id)
    transaction.on_commit(lambda: send_confirmation.delay(confirmation_id))
