"""The write kernel of the consent ledger: one validated command becomes one event on the subject's chain, the
state projection moves with it, objections and the suppression list follow, and a double opt-in is asked for.

Every function here runs inside the caller's transaction, under the subject's lock it takes or the caller holds:
consent.services wraps them in its durable transactions; the double opt-in, the unsubscribe link, expiry and the
rights adapter call them inside their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils.translation import get_language

from config.metrics import CONSENT_EVENTS
from consent.catalogue.snapshot import PurposeInfo
from consent.errors import EmailNotLinkedError, EmailRequiredError, NothingToConfirmError
from consent.ledger import projection
from consent.ledger.chain import NewEvent, ledger_append, ledger_event, stamped_under_lock
from consent.ledger.replay import state_refold
from consent.ledger.state_rows import fact_of, state_values
from consent.ledger.storage import event_store, write_inputs
from consent.models import Confirmation, ConsentEvent, ConsentState, Objection
from consent.task_names import SEND_CONFIRMATION
from consent.webhooks.outbox import outbox_consent_changed
from subjects.columns import CONFIRMATION_EMAIL, IDENTIFIER_VALUE
from subjects.errors import AmbiguousSubjectError, SubjectErasedError, SubjectNotFoundError
from subjects.identity import Reference
from subjects.keys import blind_index, data_key, decrypt_field, encrypt_field
from subjects.locks import lock_identifiers, lock_subject, lock_subjects_named, lock_survivor
from subjects.models import Subject
from subjects.selectors import subject_identifiers, subject_resolve
from subjects.services import subject_create
from subjects.suppression import identifiers_suppressed, suppression_digests, suppression_lift

# API.md reserves the first five; the rest are what Assent itself writes (expiry, merges, rights requests).
RESERVED_SOURCES = frozenset(
    {"portal", "double-opt-in", "unsubscribe-link", "gpc", "admin", "expiry", "merge", "split", "rights-request"}
)


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


def client_confirms(command: ConsentCommand) -> bool:
    """A `confirm` a client posts for its own form's double opt-in (Assent's own sources are all reserved)."""
    return command.action == "confirm" and command.source not in RESERVED_SOURCES


def subject_for_write(reference: Reference, now: datetime) -> tuple[Subject, bool, list[tuple[int, str, bytes]] | None]:
    """The locked subject the reference names, created when nothing resolves (only from identifiers); whether it
    was created; its identifiers (id, kind, value_enc) as the locking statement read them, when it read them."""
    index = blind_index()
    digests = [index.lookup(kind, value) for kind, value in reference.identifiers]
    if len(digests) + (reference.subject_id is not None) == 1:
        # One name (nearly every write): resolved and locked in one statement. With several names the resolution
        # rules (unknown identifiers ignored, all the known ones agreeing) need the owners of each: below.
        locked = lock_subjects_named(digest=digests[0] if digests else None, subject_id=reference.subject_id)
        if locked is not None and len(locked) > 1:
            raise AmbiguousSubjectError("the id and identifiers name different subjects", field="subject")
        if locked:
            subject = _writable(locked[0].subject)
            return subject, False, locked[0].identifiers if subject is locked[0].subject else None
        if locked is not None and reference.subject_id is not None:
            raise SubjectNotFoundError("no subject with this id", field="subject.id")
    # Two first writes for the same new person must not create two subjects: lock on the identifiers first.
    lock_identifiers(digests)
    subject_id = subject_resolve(reference=reference)
    if subject_id is None:
        if reference.subject_id is not None:
            raise SubjectNotFoundError("no subject with this id", field="subject.id")
        return subject_create(reference=reference, now=now), True, None
    return _writable(lock_subject(subject_id)), False, None


def _writable(subject: Subject) -> Subject:
    """A locked subject, or the survivor when a merge absorbed it between resolving and locking (its chain is
    closed; the survivor takes the write); never an erased one."""
    if subject.merged_into_id is not None:
        subject = lock_survivor(subject.merged_into_id)
    if subject.erased_at is not None or subject.wrapped_key is None:
        # Only an id still names an erased person (their identifiers are gone); their chain is in the evidence
        # store and their key destroyed, so nothing more can be recorded on them (a 500 before; the soak found it).
        raise SubjectErasedError("this subject was erased; name the person by an identifier", field="subject.id")
    return subject


def consent_event_record(command: ConsentCommand, info: PurposeInfo, now: datetime) -> ConsentRecorded:
    """Record a validated command: the event, its objection or lifted objection, the projection of every channel
    it covers, and the double opt-in a pending grant asks for. Reads in one statement and writes in one
    (consent.ledger.storage), under the subject's lock."""
    subject, created, known = subject_for_write(command.reference, now)
    # A withdrawal dated before the wait, queued behind a grant that came later, answered "granted" (the soak found it).
    now = stamped_under_lock(now)
    channels = [command.channel] if command.channel else sorted(info.rule.channels)
    key = data_key(subject)
    considered = _suppression_considered(command, info)
    held: list[tuple[str, str]] = []  # the subject's identifiers, for the suppression list
    if considered and not created:
        # A subject this write created holds exactly the reference's identifiers.
        held = _decrypted(subject, key, known) if known is not None else subject_identifiers(subject=subject, key=key)
    inputs = write_inputs(
        subject=subject,
        purpose=info.rule.key,
        channels=channels,
        email=command.reference.email,
        suppression=suppression_digests([*command.reference.identifiers, *held]) if considered else None,
    )
    suppressed = inputs.suppressed
    if considered and known is not None and inputs.identifier_ids != [pk for pk, _, _ in known]:
        # An identifier was attached or moved while the lock waited (the locking statement read them before): read
        # them again, under the lock.
        held = subject_identifiers(subject=subject, key=key)
        suppressed = identifiers_suppressed(identifiers=[*command.reference.identifiers, *held])
    if client_confirms(command):
        # The confirmed address must be the person's: another's address in the reference proves nothing for them.
        email_linked(command.reference, inputs.email_linked, required=True)
    if command.action == "confirm" and not command.notice_version:
        pending = inputs.states.get(command.channel or "")
        if pending is None or pending.status != projection.PENDING:
            # A bare confirm confirms a pending grant; without one it would record an event that changes nothing.
            raise NothingToConfirmError("nothing waits for confirmation on this purpose and channel", field="action")
    occurred_at = command.occurred_at or now
    event = ledger_event(
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
            suppressed=suppressed,
        ),
        recorded_at=now,
        head=inputs.head,
    )
    state = ""
    step = _step_of(event, suppressed)
    if any(step.order < (row.since, row.seq) for row in inputs.states.values()):
        # An event older than a state it moves (a late upload): that state is folded again from the whole
        # history, which needs the event stored first.
        event_store(event=event, state_purpose=info.rule.key, states=[])
        for channel in channels:
            fact = state_project(subject, info, channel, event, suppressed=suppressed)
            state = fact.status if fact else state
    else:
        rows = []
        for channel in channels:
            current = inputs.states.get(channel)
            fact = projection.apply_event(
                fact_of(current) if current else None,
                step,
                event.source,
                double_opt_in=channel in info.rule.double_opt_in,
            )
            if fact is not None:
                rows.append((channel, _state_row(subject, event, fact)))
                state = fact.status
        event_store(event=event, state_purpose=info.rule.key, states=rows)
    _objections_follow(subject, key, command, info, event, occurred_at)
    if command.action == "object" and command.channel is None:
        state = projection.OBJECTED
    if (
        state == projection.PENDING
        and command.action == "grant"
        # A suppressed grant on a channel without double opt-in is confirmed by mail when there is an address,
        # else it waits for the person's own grant in the portal.
        and (not suppressed or command.reference.email is not None or command.channel in info.rule.double_opt_in)
    ):
        confirmation_request(
            subject,
            key,
            command,
            event,
            now,
            linked=inputs.email_linked,
            required=command.channel in info.rule.double_opt_in or not suppressed,
        )
    outbox_consent_changed(
        subject_id=subject.id,
        purpose=command.purpose,
        channel=command.channel,
        state=state,
        event_id=event.id,
        subscribed=inputs.webhooks,
    )
    # Counted once the event is durable: a write rolled back (a lost race, a later error) recorded nothing.
    transaction.on_commit(CONSENT_EVENTS.labels(str(command.action)).inc)
    return ConsentRecorded(event.id, subject.id, state or "")


def _step_of(event: ConsentEvent, suppressed: bool) -> projection.Step:
    return projection.Step(
        event.action, event.notice_version, event.actor, event.occurred_at, event.seq, suppressed=suppressed
    )


def _state_row(subject: Subject, event: ConsentEvent, fact: projection.Fact) -> dict[str, Any]:
    """A state row's values for a fact: the state names the event it was projected from, so
    consent.ledger.verification can prove it from the chain."""
    return {
        **state_values(fact),
        "event_id": event.id
        if fact.seq == event.seq
        else ConsentEvent.objects.filter(subject=subject, seq=fact.seq).values_list("pk", flat=True).first(),
    }


def _decrypted(subject: Subject, key: bytes, rows: list[tuple[int, str, bytes]] | None) -> list[tuple[str, str]]:
    return [(kind, decrypt_field(subject, key, IDENTIFIER_VALUE, blob, row_id=pk)) for pk, kind, blob in rows or []]


def _objections_follow(
    subject: Subject,
    key: bytes,
    command: ConsentCommand,
    info: PurposeInfo,
    event: ConsentEvent,
    occurred_at: datetime,
) -> None:
    """An objection stands from its event; the person's own later grant lifts it (and their suppression)."""
    if command.action == "object":
        Objection.objects.update_or_create(
            subject=subject, purpose=command.purpose, defaults={"since": occurred_at, "seq": event.seq}
        )
    elif command.action in ("grant", "confirm") and projection.by_person(command.source, command.actor):
        # Art. 21: the person's own later grant lifts their objection to that purpose.
        Objection.objects.filter(subject=subject, purpose=command.purpose, since__lte=occurred_at).delete()
        if info.rule.marketing:
            _suppression_lift(subject, key)


def direct_marketing_objection_record(
    subject: Subject, *, source: str, actor: str, evidence: dict[str, Any], now: datetime
) -> ConsentEvent | None:
    """Art. 21(2)-(3): an objection to direct marketing on a locked subject, absolute: afterwards the policy denies
    every marketing purpose on every channel, whatever consents exist. An `object` event with blank purpose and
    channel, and the Objection(purpose="") row the policy reads. None: the objection stood already, nothing is
    recorded."""
    if Objection.objects.filter(subject=subject, purpose="").exists():
        return None
    now = stamped_under_lock(now)
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
    outbox_consent_changed(
        subject_id=subject.id, purpose="", channel=None, state=projection.OBJECTED, event_id=event.id
    )
    return event


def state_project(
    subject: Subject, info: PurposeInfo, channel: str, event: ConsentEvent, *, suppressed: bool = False
) -> projection.Fact | None:
    """Move the projection of one (purpose, channel) by one stored event: incrementally when the event is the
    newest, else by folding the triple's whole history (a late upload of an older event)."""
    double_opt_in = channel in info.rule.double_opt_in
    row = ConsentState.objects.filter(subject=subject, purpose=info.rule.key, channel=channel).first()
    current = fact_of(row) if row else None
    step = _step_of(event, suppressed)
    if current is None or step.order >= current.order:
        fact = projection.apply_event(current, step, event.source, double_opt_in=double_opt_in)
    else:
        # The event is stored and says itself whether it met the suppression list; for events recorded before
        # ConsentEvent.suppressed existed, the state row remembers the one that decides it now.
        marked = {row.seq} if row is not None and row.suppressed else set()
        # The fold takes in the chains merged into this subject, as the merge combined them.
        fact = state_refold(
            subject_id=subject.id,
            purpose=info.rule.key,
            channel=channel,
            double_opt_in=double_opt_in,
            marked=frozenset(marked),
        )
    if fact is None:
        return None
    values = _state_row(subject, event, fact)
    if row is None:
        ConsentState.objects.create(subject=subject, purpose=info.rule.key, channel=channel, **values)
    else:
        ConsentState.objects.filter(pk=row.pk).update(**values)
    return fact


# ---------------------------------------------------------------------------------------------------------
# Suppression list (DESIGN.md, Erasure): identifiers of erased people. A later marketing grant for one of them
# from anyone but the person stays pending (reason `suppressed`) until the person confirms it themselves.
# ---------------------------------------------------------------------------------------------------------
def _suppression_considered(command: ConsentCommand, info: PurposeInfo) -> bool:
    """Whether the suppression list can hold this command back: a marketing grant or confirmation from anyone but
    the person (read against the reference's identifiers and every identifier the subject holds)."""
    return (
        info.rule.marketing
        and command.action in ("grant", "confirm")
        and not projection.by_person(command.source, command.actor)
    )


def _suppression_lift(subject: Subject, key: bytes) -> None:
    """The person's own marketing grant or confirmation takes their identifiers off the list: only those the
    subject holds (a new subject holds the reference's), never an unlinked identifier of the reference."""
    suppression_lift(identifiers=subject_identifiers(subject=subject, key=key))


# ---------------------------------------------------------------------------------------------------------
# Double opt-in
# ---------------------------------------------------------------------------------------------------------
def email_linked(reference: Reference, linked: bool, *, required: bool) -> str | None:
    """The reference's e-mail if it is an identifier of the subject (`linked`, as consent.ledger.storage read it
    under the lock; a subject this write created holds it). Required: 400 without one, 409 for an address that is
    not the subject's; else None for either."""
    email = reference.email
    if email is None:
        if required:
            raise EmailRequiredError(
                "a double opt-in needs an e-mail address of the subject in the subject reference",
                field="subject.email",
            )
        return None
    if not linked:
        if required:
            # The message names no owner: whether the address is someone else's is not the caller's to learn.
            raise EmailNotLinkedError(
                "this e-mail address is not an identifier of the subject; attach it through /records first",
                field="subject.email",
            )
        return None
    return email


def confirmation_request(
    subject: Subject,
    key: bytes,
    command: ConsentCommand,
    event: ConsentEvent,
    now: datetime,
    *,
    linked: bool,
    required: bool,
) -> None:
    """UWG §7(2) Nr. 2: e-mail marketing needs the address owner's confirmation. The Confirmation row is the
    outbox: the mail is sent after commit, and a periodic task re-sends any the worker missed. The link goes
    only to an address of the subject; `required` False (a suppressed grant off double opt-in) mails only
    when there is one, else the grant waits for the person in the portal."""
    email = email_linked(command.reference, linked, required=required)
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
        # The page's language (the portal's choice, or the Accept-Language of an API call): the mail's.
        language=(get_language() or "")[:8],
    )
    # Enqueued on commit, by name: the task module (an edge) imports this kernel, not the other way round. The
    # signature runs the registered task (eagerly in the demo) and falls back to send_task where it is not loaded.
    # The task reads ids only.
    send = current_app.signature(SEND_CONFIRMATION, args=(str(confirmation.id),))
    transaction.on_commit(send.delay)
