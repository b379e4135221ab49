"""The gates: profile reads and marketing sends, both decided by the policy and both logged with the calling
client, so that an access request can name the recipients (Art. 15(1)(c)) and an erasure can tell them (Art. 19).

A profile read is not tied to a channel (decide_read) and returns only the data categories the purpose
declares (Art. 5(1)(b)-(c), purpose limitation and data minimisation). A send decides every recipient on its one
channel in a fixed number of queries and hands out a one-click unsubscribe link per allowed recipient.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from config.errors import InvalidInputError, UnavailableError
from consent.checks import CheckResult, consent_check_many
from consent.errors import ForbiddenPurposeError, PolicyDeniedError
from consent.models import ReadLog, Send, SendRecipient
from consent.policy import Action, Decision, Reason, decide_read
from consent.selectors import PurposeInfo, catalogue_snapshot, subject_states_for_policy
from consent.services import channel_check, purpose_get
from consent.unsubscribe import unsubscribe_tokens, unsubscribe_url
from subjects.columns import RECORD_DATA
from subjects.identity import Reference
from subjects.keys import data_key, decrypt_field
from subjects.models import LinkedRecord
from subjects.profile import profile_read
from subjects.selectors import identifier_owners, subject_get_survivor

CAMPAIGN_MAX_LENGTH = 200
# The identifier kind a channel delivers to: a recipient naming one is named as the destination of the send.
DESTINATION_KINDS = {"email": "email", "sms": "phone", "phone": "phone"}


class PurposeNotMarketingError(InvalidInputError):
    code = "purpose_not_marketing"
    title = "Sends are for direct-marketing purposes"


# ---------------------------------------------------------------------------------------------------------
# Profile reads
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProfileRead:
    subject_id: uuid.UUID
    purpose: str
    data: dict[str, Any]  # category -> profile attributes (profile categories) or list of records
    withheld: list[str]  # categories the subject has data in that the purpose does not declare

    def as_body(self) -> dict[str, Any]:
        return {"subject": str(self.subject_id), "purpose": self.purpose, "data": self.data, "withheld": self.withheld}


def profile_read_for_purpose(
    *,
    subject_id: uuid.UUID,
    purpose: str,
    client_id: int,
    client_purposes: frozenset[str],
    now: datetime | None = None,
) -> ProfileRead:
    """The subject's data in the categories `purpose` declares, if the policy allows the purpose to read it.

    400 unknown purpose, 403 a client restricted to other purposes, 404 unknown subject (an absorbed id reads
    the survivor), 403 `policy_denied` with the reason. Every allowed read writes one ReadLog row; a denied read
    discloses nothing and is not a recipient's read.
    """
    now = now or timezone.now()
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    if client_purposes and purpose not in client_purposes:
        raise ForbiddenPurposeError(f"this API client may not act for purpose '{purpose}'")
    subject = subject_get_survivor(subject_id=subject_id)
    try:
        state = subject_states_for_policy(subject_ids=[subject.id], purposes=[purpose]).get(subject.id)
    except Exception as exc:  # a state that cannot be read (or the database gone): fail closed, 503
        raise UnavailableError("cannot decide now", allowed=False, reason=Reason.UNAVAILABLE.value) from exc
    decision = decide_read(state, info.rule, now)
    if decision.reason == Reason.UNAVAILABLE:
        raise UnavailableError("cannot decide now", allowed=False, reason=Reason.UNAVAILABLE.value)
    if not decision.allowed:
        raise PolicyDeniedError(
            f"purpose '{purpose}' may not read this subject's data ({decision.reason.value})",
            reason=decision.reason.value,
        )

    profile_categories = {key for key, profile in snapshot.categories.items() if profile}
    declared = set(info.data_categories)
    record_categories = set(
        LinkedRecord.objects.filter(subject=subject).order_by().values_list("category", flat=True).distinct()
    )
    key = data_key(subject)
    profile = profile_read(subject, key)

    data: dict[str, Any] = {}
    for category in sorted(declared & profile_categories):
        data[category] = dict(profile)
    wanted = sorted(declared - profile_categories)
    for category in wanted:
        data[category] = []
    if wanted and record_categories & set(wanted):
        rows = (
            LinkedRecord.objects.filter(subject=subject, category__in=wanted)
            .order_by("occurred_at", "source", "external_id")
            .values_list("pk", "category", "source", "external_id", "occurred_at", "data_enc")
        )
        for pk, category, source, external_id, occurred_at, blob in rows:
            data[category].append(
                {
                    "source": source,
                    "external_id": external_id,
                    "occurred_at": occurred_at,
                    "data": json.loads(decrypt_field(subject, key, RECORD_DATA, bytes(blob), row_id=pk)),
                }
            )

    held = record_categories | (profile_categories if profile else set())
    disclosed = sorted(category for category, value in data.items() if value)
    # One insert in autocommit: the read is logged before the data leaves, and nothing else rides on it.
    ReadLog.objects.create(subject=subject, client_id=client_id, purpose=purpose, categories=disclosed, read_at=now)
    return ProfileRead(subject.id, purpose, data, sorted(held - declared))


# ---------------------------------------------------------------------------------------------------------
# Marketing sends
# ---------------------------------------------------------------------------------------------------------
def send_target(*, purpose: str, channel: str, client_purposes: frozenset[str]) -> PurposeInfo:
    """A send is a write-like act: unknown purpose or channel, a purpose that is not direct marketing, and a
    channel the purpose does not list are 400 (unlike a check, which answers channel_not_permitted)."""
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    if client_purposes and purpose not in client_purposes:
        raise ForbiddenPurposeError(f"this API client may not act for purpose '{purpose}'")
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
    """One statement for 10,000 recipients on PostgreSQL (arrays through unnest), no model instances."""
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
        cursor.execute(
            "INSERT INTO consent_sendrecipient (send_id, index, subject_id, allowed, reason) "
            "SELECT %s, * FROM unnest(%s::int[], %s::uuid[], %s::bool[], %s::text[])",
            [
                send_id,
                list(range(len(results))),
                [str(r.subject_id) if r.subject_id else None for r in results],
                [r.decision.allowed for r in results],
                [r.decision.reason.value for r in results],
            ],
        )


def _destinations_checked(
    results: list[CheckResult], references: Sequence[Reference], channel: str
) -> list[CheckResult]:
    """A recipient is selected by any identifier, but the address the client will deliver to must be the
    subject's: another consent does not cover an address that is not theirs (a customer number with a stranger's
    e-mail). Such a recipient is blocked as unknown at that address. One query for the whole send."""
    kind = DESTINATION_KINDS.get(channel)
    if kind is None:
        return results
    named = [
        (index, (kind, value))
        for index, (result, reference) in enumerate(zip(results, references, strict=True))
        if result.decision.allowed
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
