"""The policy check as other services call it: resolve the people, read their state, ask `decide`.
Single and bulk checks share one path, in a fixed number of queries whatever the count."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from config.metrics import decisions_count
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, channel_check, purpose_get
from consent.clients import client_purpose_check
from consent.errors import undecidable
from consent.policy import Action, Decision, PurposeRule, Reason, SubjectState, decide_many
from consent.selectors import policy_inputs, policy_inputs_by_digest
from subjects.identity import Reference
from subjects.selectors import plain_reference_digests, single_identifier_digests

logger = logging.getLogger(__name__)

AMBIGUOUS = Decision(False, Reason.AMBIGUOUS_SUBJECT, None)
UNDECIDABLE = Decision(False, Reason.UNAVAILABLE, None)


class CheckResult(NamedTuple):
    # A tuple, not a dataclass: a bulk check builds 10,000 and a tuple costs a third of a frozen dataclass to make.
    subject_id: uuid.UUID | None
    decision: Decision


def check_target(*, purpose: str, channel: str, client_purposes: frozenset[str]) -> PurposeInfo:
    """Validate purpose and channel (400 when unknown), and the client's purpose grant (403).
    A channel the purpose does not list is not an error here: the check answers channel_not_permitted."""
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    client_purpose_check(purpose=purpose, client_purposes=client_purposes)
    channel_check(snapshot, info, channel, listed=False)
    return info


def consent_check_many(
    *,
    references: Sequence[Reference],
    info: PurposeInfo,
    channel: str,
    action: Action = Action.CHECK,
    now: datetime | None = None,
) -> list[CheckResult]:
    """One decision per reference, in order. Fails closed (API.md: a check that cannot decide answers 503):
    when the inputs cannot be read at all (the database unreachable, any error while reading) or no reference
    can be decided, UnavailableError; a reference that alone cannot be decided is a denial `unavailable`."""
    if connection.vendor == "postgresql" and (digests := single_identifier_digests(references)) is not None:
        return consent_check_digests(digests=digests, info=info, channel=channel, action=action, now=now)
    now = now or timezone.now()
    try:
        resolutions, states, unreadable = policy_inputs(references=references, rule=info.rule, channel=channel, now=now)
    except Exception as exc:  # DatabaseError included: whatever it was, nothing can be decided
        logger.warning("check cannot read its inputs", exc_info=True)
        raise undecidable() from exc
    rule = info.rule
    ambiguous = Decision.deny(Reason.AMBIGUOUS_SUBJECT, rule.legal_basis)
    # Everyone the policy decides, in one call (fails closed itself, per subject: `unavailable`).
    decidable = [r for r in resolutions if not r.ambiguous and r.subject_id not in unreadable]
    decided = iter(
        decide_many([states.get(r.subject_id) if r.subject_id else None for r in decidable], rule, channel, action, now)
    )
    results: list[CheckResult] = []
    for resolution in resolutions:
        if resolution.ambiguous:
            decision = ambiguous
        elif resolution.subject_id is not None and resolution.subject_id in unreadable:
            decision = UNDECIDABLE
        else:
            decision = next(decided)
        results.append(CheckResult(resolution.subject_id, decision))
    return _counted(results, rule, channel, action)


def plain_digests(items: Sequence[object]) -> list[bytes] | None:
    """The blind indexes of raw references for `consent_check_digests` when every item is a plain e-mail reference
    (subjects.selectors.plain_reference_digests) and the database is PostgreSQL; else None: parse each item and
    call `consent_check_many` (the demo's SQLite takes that path)."""
    return plain_reference_digests(items) if connection.vendor == "postgresql" else None


def consent_check_digests(
    *,
    digests: Sequence[bytes],
    info: PurposeInfo,
    channel: str,
    action: Action = Action.CHECK,
    now: datetime | None = None,
) -> list[CheckResult]:
    """`consent_check_many` for references that each name one identifier and no id, given as their blind indexes
    (subjects.selectors.plain_reference_digests): the same answers, failing closed the same way, without the
    per-person objects of the general path. Each distinct state is decided once, by the one policy function."""
    now = now or timezone.now()
    rule = info.rule
    try:
        held, shared = policy_inputs_by_digest(digests=digests, rule=rule, channel=channel, now=now)
    except Exception as exc:  # DatabaseError included: whatever it was, nothing can be decided
        logger.warning("check cannot read its inputs", exc_info=True)
        raise undecidable() from exc
    # The distinct states (None: nobody), decided in one call; an unreadable state is no decision's input.
    distinct: dict[int, SubjectState | None] = {id(s): s for _sid, s in held.values() if s is not None}
    distinct[id(None)] = None
    states = list(distinct.values())
    decision_of = dict(zip(distinct, decide_many(states, rule, channel, action, now), strict=True))
    unknown = CheckResult(None, decision_of[id(None)])
    ambiguous = CheckResult(None, Decision.deny(Reason.AMBIGUOUS_SUBJECT, rule.legal_basis))
    results: list[CheckResult] = []
    for digest in digests:
        hit = held.get(digest)
        if hit is None:
            results.append(unknown)
        elif digest in shared:
            results.append(ambiguous)
        else:
            sid, state = hit
            results.append(CheckResult(sid, UNDECIDABLE if state is None else decision_of[id(state)]))
    return _counted(results, rule, channel, action)


def _counted(results: list[CheckResult], rule: PurposeRule, channel: str, action: Action) -> list[CheckResult]:
    """Count the call's decisions (config.metrics) and fail closed when none of them could be decided."""
    # One tally per call, one increment per reason: the bulk check's hot path pays ~1 ms per 10,000 people for it,
    # not one locked increment each.
    decisions_count(
        purpose=rule.key, channel=channel, action=str(action.value), reasons=[r.decision.reason for r in results]
    )
    if results and all(r.decision.reason == Reason.UNAVAILABLE for r in results):
        raise undecidable()
    return results
