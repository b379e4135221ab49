"""Marketing sends: every recipient decided by the policy on the send's one channel in a fixed number of queries,
logged with the calling client (Art. 15(1)(c) recipients, Art. 19), and a one-click unsubscribe link per allowed
recipient.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from config.errors import InvalidInputError
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, channel_check, purpose_get
from consent.clients import client_purpose_check
from consent.gates.check import CheckResult, consent_check_many
from consent.gates.unsubscribe import unsubscribe_tokens, unsubscribe_url
from consent.models import Send, SendRecipient
from consent.policy import Action, Decision, Reason
from subjects.identity import Reference
from subjects.selectors import identifier_owners

CAMPAIGN_MAX_LENGTH = 200
# The identifier kind a channel delivers to: a recipient naming one is named as the destination of the send.
DESTINATION_KINDS = {"email": "email", "sms": "phone", "phone": "phone"}


class PurposeNotMarketingError(InvalidInputError):
    code = "purpose_not_marketing"
    title = "Sends are for direct-marketing purposes"


def send_target(*, purpose: str, channel: str, client_purposes: frozenset[str]) -> PurposeInfo:
    """A send is a write-like act: unknown purpose or channel, a purpose that is not direct marketing, and a
    channel the purpose does not list are 400 (unlike a check, which answers channel_not_permitted)."""
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    client_purpose_check(purpose=purpose, client_purposes=client_purposes)
    if not info.rule.marketing:
        raise PurposeNotMarketingError(
            f"purpose '{purpose}' is not direct marketing: service messages need no send gate", field="purpose"
        )
    channel_check(snapshot, info, channel)
    return info


@dataclass(frozen=True, slots=True)
class SendRecipientOutcome:
    index: int
    subject_id: uuid.UUID | None
    allowed: bool
    reason: str
    unsubscribe_url: str | None  # allowed recipients only


@dataclass(frozen=True, slots=True)
class SendCreated:
    send_id: uuid.UUID
    recipients: list[SendRecipientOutcome]


def _log_recipients(send_id: uuid.UUID, results: list[CheckResult]) -> None:
    """The send's decisions, one row per recipient: COPY on PostgreSQL (no statement to plan, no array to build),
    no model instances."""
    if connection.vendor != "postgresql":
        SendRecipient.objects.bulk_create(
            SendRecipient(
                send_id=send_id,
                index=index,
                subject_id=result.subject_id,
                allowed=result.decision.allowed,
                reason=result.decision.reason.value,
            )
            for index, result in enumerate(results)
        )
        return
    with connection.cursor() as cursor:
        copy_sql = "COPY consent_sendrecipient (send_id, index, subject_id, allowed, reason) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            for index, result in enumerate(results):
                d = result.decision
                copy.write_row((send_id, index, result.subject_id, d.allowed, d.reason.value))


def _destinations_checked(
    results: list[CheckResult], references: Sequence[Reference], channel: str
) -> list[CheckResult]:
    """A recipient is selected by any identifier, but the address the client will deliver to must be the
    subject's: another consent does not cover an address that is not theirs (a customer number with a stranger's
    e-mail). Such a recipient is blocked as unknown at that address. One query for the whole send."""
    kind = DESTINATION_KINDS.get(channel)
    if kind is None:
        return results
    # A reference that is nothing but the destination resolved through it, to its one holder: already proven.
    named = [
        (index, (kind, value))
        for index, (result, reference) in enumerate(zip(results, references, strict=True))
        if result.decision.allowed and (reference.subject_id is not None or len(reference.identifiers) > 1)
        for ref_kind, value in reference.identifiers
        if ref_kind == kind
    ]
    if not named:
        return results
    owners = identifier_owners(identifiers=[identifier for _, identifier in named])
    foreign = {
        index for (index, _), holders in zip(named, owners, strict=True) if results[index].subject_id not in holders
    }
    return [
        CheckResult(r.subject_id, Decision(False, Reason.UNKNOWN_SUBJECT, r.decision.legal_basis))
        if index in foreign
        else r
        for index, r in enumerate(results)
    ]


def send_create(
    *,
    client_id: int,
    campaign: str,
    info: PurposeInfo,
    channel: str,
    references: Sequence[Reference],
    now: datetime | None = None,
) -> SendCreated:
    """Decide every recipient (Action.SEND), log the send and each decision, and hand out unsubscribe links.
    A fixed number of queries whatever the count: resolution and states in bulk, one insert for the Send and
    one bulk insert for its recipients. The log holds indexes, subjects and reasons, never a reference."""
    now = now or timezone.now()
    results: list[CheckResult] = consent_check_many(
        references=references, info=info, channel=channel, action=Action.SEND, now=now
    )
    results = _destinations_checked(results, references, channel)
    send_id = uuid.uuid4()
    allowed_count = sum(1 for r in results if r.decision.allowed)
    with transaction.atomic(durable=True):
        Send.objects.create(
            id=send_id,
            client_id=client_id,
            campaign=campaign,
            purpose=info.rule.key,
            channel=channel,
            created_at=now,
            allowed_count=allowed_count,
            blocked_count=len(results) - allowed_count,
        )
        _log_recipients(send_id, results)
    allowed_ids = [r.subject_id for r in results if r.decision.allowed and r.subject_id is not None]
    urls = iter(unsubscribe_url(t) for t in unsubscribe_tokens(subject_ids=allowed_ids, send_id=send_id))
    outcomes: list[SendRecipientOutcome] = []
    for index, result in enumerate(results):
        allowed = result.decision.allowed and result.subject_id is not None
        outcomes.append(
            SendRecipientOutcome(
                index=index,
                subject_id=result.subject_id,
                allowed=allowed,
                reason=result.decision.reason.value,
                unsubscribe_url=next(urls) if allowed else None,
            )
        )
    return SendCreated(send_id, outcomes)
