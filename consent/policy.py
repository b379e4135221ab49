"""The policy check: one pure function that every check, profile read and send goes through.

No Django and no I/O here, so the rules can be tested table-driven without a database and called
10,000 times per bulk request. The rules and their order are those of DESIGN.md, "The policy check".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache

__all__ = [
    "Action",
    "Actor",
    "ConsentFact",
    "ConsentStatus",
    "Decision",
    "LegalBasis",
    "PurposeRule",
    "Reason",
    "SubjectState",
    "decide",
    "decide_read",
]

logger = logging.getLogger(__name__)


class Reason(StrEnum):
    # Allowed.
    GRANTED = "granted"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    # Denied.
    NO_CONSENT = "no_consent"
    PENDING_CONFIRMATION = "pending_confirmation"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    NOTICE_OUTDATED = "notice_outdated"
    OBJECTED = "objected"
    RESTRICTED = "restricted"
    ERASED = "erased"
    CHANNEL_NOT_PERMITTED = "channel_not_permitted"
    PARENTAL_CONSENT_REQUIRED = "parental_consent_required"
    NO_EXISTING_CUSTOMER = "no_existing_customer"
    UNKNOWN_SUBJECT = "unknown_subject"
    AMBIGUOUS_SUBJECT = "ambiguous_subject"
    SUPPRESSED = "suppressed"
    UNAVAILABLE = "unavailable"


class LegalBasis(StrEnum):
    CONSENT = "consent"
    LEGITIMATE_INTEREST = "legitimate_interest"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"


class Action(StrEnum):
    CHECK = "check"
    SEND = "send"
    READ = "read"
    STORE = "store"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    PENDING_CONFIRMATION = "pending_confirmation"
    WITHDRAWN = "withdrawn"
    OBJECTED = "objected"
    EXPIRED = "expired"


class Actor(StrEnum):
    SUBJECT = "subject"
    AGENT = "agent"
    PARENTAL_GUARDIAN = "parental_guardian"


@dataclass(frozen=True, slots=True)
class PurposeRule:
    """What the catalogue says about one purpose."""

    key: str
    legal_basis: LegalBasis
    marketing: bool
    channels: frozenset[str]
    double_opt_in: frozenset[str] = frozenset()
    consent_valid_days: int | None = None  # None: a grant never expires by age
    # Notice versions outdated by a later version that `requires_reconsent`.
    outdated_notice_versions: frozenset[str] = frozenset()
    uwg_7_3: bool = False


@dataclass(frozen=True, slots=True)
class ConsentFact:
    """The projected ledger state for one (purpose, channel) of one subject."""

    status: ConsentStatus
    notice_version: str | None
    # When the consent became effective (the grant, or its confirmation); validity counts from here.
    granted_at: datetime | None
    confirmed: bool = False  # double opt-in confirmed
    actor: Actor = Actor.SUBJECT  # who gave the grant
    suppressed: bool = False  # pending because the identifier is on the suppression list


@dataclass(frozen=True, slots=True)
class SubjectState:
    erased: bool = False
    erasure_in_progress: bool = False
    restricted: bool = False
    is_child: bool = False
    objects_to_direct_marketing: bool = False
    objected_purposes: frozenset[str] = frozenset()
    # (purpose_key, channel_key) -> fact
    consents: Mapping[tuple[str, str], ConsentFact] = field(default_factory=dict)
    # Channels whose address came from a purchase and where the person was told of the right to object
    # (UWG §7(3)).
    existing_customer_channels: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason
    legal_basis: LegalBasis | None

    @classmethod
    def deny(cls, reason: Reason, legal_basis: LegalBasis | None = None) -> Decision:
        if reason in _ALLOWED_REASONS:
            raise ValueError(f"{reason!r} is a reason to allow, not to deny")
        cached = _DENIALS.get(legal_basis, {}).get(reason)
        return cached if cached is not None else cls(False, reason, legal_basis)


_ALLOWED_REASONS = frozenset({Reason.GRANTED, Reason.LEGITIMATE_INTEREST, Reason.CONTRACT, Reason.LEGAL_OBLIGATION})

# Every Decision decide() can return is built once here: the bulk check calls decide() 10,000 times per
# request and must not allocate a Decision per call.
_ALLOW_CONSENT = Decision(True, Reason.GRANTED, LegalBasis.CONSENT)
_ALLOW_LEGITIMATE_INTEREST = Decision(True, Reason.LEGITIMATE_INTEREST, LegalBasis.LEGITIMATE_INTEREST)
_ALLOW_CONTRACT = Decision(True, Reason.CONTRACT, LegalBasis.CONTRACT)
_ALLOW_LEGAL_OBLIGATION = Decision(True, Reason.LEGAL_OBLIGATION, LegalBasis.LEGAL_OBLIGATION)
_UNAVAILABLE = Decision(False, Reason.UNAVAILABLE, None)

_DENIALS: dict[LegalBasis | None, dict[Reason, Decision]] = {
    basis: {reason: Decision(False, reason, basis) for reason in Reason if reason not in _ALLOWED_REASONS}
    for basis in (*LegalBasis, None)
}

# A ledger status other than granted or pending maps straight to its reason.
_STATUS_DENIALS: dict[ConsentStatus, Reason] = {
    ConsentStatus.WITHDRAWN: Reason.WITHDRAWN,
    ConsentStatus.OBJECTED: Reason.OBJECTED,
    ConsentStatus.EXPIRED: Reason.EXPIRED,
}

# UWG §7(2): advertising by electronic mail (e-mail, SMS) needs prior consent, unless §7(3) (existing customer)
# applies.
_ELECTRONIC_MAIL_CHANNELS = frozenset({"email", "sms"})


@cache
def _validity(days: int) -> timedelta:
    return timedelta(days=days)


def consent_expiry_cutoff(purpose: PurposeRule, now: datetime) -> datetime | None:
    """A grant that became effective at or before this instant is too old for `purpose` at `now`; None: the
    purpose's grants never expire by age. The policy reads a grant's time through this comparison only, so two
    grants on the same side of the cutoff decide alike (consent.selectors relies on it to share states)."""
    days = purpose.consent_valid_days
    return None if days is None else now - _validity(days)


def decide(
    state: SubjectState | None,
    purpose: PurposeRule,
    channel: str | None,
    action: Action,
    now: datetime,
) -> Decision:
    """Decide whether `action` on `purpose` over `channel` is lawful for this subject at `now`.

    Fails closed: any error (a malformed state, a naive `now`) is a denial with reason `unavailable`,
    which the API answers with 503.
    """
    try:
        _require_aware(now)
        return _decide(state, purpose, channel, action, now)
    except Exception:
        logger.warning("policy check failed closed", exc_info=True)
        return _UNAVAILABLE


def decide_many(
    states: Sequence[SubjectState | None],
    purpose: PurposeRule,
    channel: str | None,
    action: Action,
    now: datetime,
) -> list[Decision]:
    """`decide` for many subjects at one `now` (a bulk check, a send): the same rules, with `now` validated once
    per call instead of once per subject. Each subject fails closed on its own."""
    try:
        _require_aware(now)
    except Exception:
        logger.warning("policy check failed closed", exc_info=True)
        return [_UNAVAILABLE] * len(states)
    # The policy is pure: one state object decided once is decided for every subject that shares it. Callers
    # share a SubjectState between subjects whose rows are alike (consent.selectors.policy_inputs), so a call of
    # 10,000 subjects asks `_decide` a few dozen times. Keyed by identity: the objects live until we return.
    by_state: dict[int, Decision] = {}
    decisions = []
    for state in states:
        decision = by_state.get(id(state))
        if decision is None:
            try:
                decision = _decide(state, purpose, channel, action, now)
            except Exception:
                logger.warning("policy check failed closed", exc_info=True)
                decision = _UNAVAILABLE
            by_state[id(state)] = decision
        decisions.append(decision)
    return decisions


def decide_read(state: SubjectState | None, purpose: PurposeRule, now: datetime) -> Decision:
    """Decide a profile read, which is not tied to a channel.

    The read is allowed when the purpose's legal basis holds on at least one of its channels. Otherwise
    the denial for the first channel in sorted order is returned, so the answer is deterministic.
    """
    try:
        _require_aware(now)
        first_denial: Decision | None = None
        for channel in sorted(purpose.channels):
            decision = decide(state, purpose, channel, Action.READ, now)
            if decision.allowed:
                return decision
            if first_denial is None:
                first_denial = decision
        if first_denial is None:  # a purpose without channels cannot be read through any
            return _DENIALS[purpose.legal_basis][Reason.CHANNEL_NOT_PERMITTED]
        return first_denial
    except Exception:
        logger.warning("policy read check failed closed", exc_info=True)
        return _UNAVAILABLE


def _require_aware(now: datetime) -> None:
    # A naive clock would compare against aware grant times only on some paths; refuse it on all of them
    # so that the mistake shows at once instead of as scattered 503s.
    if now.utcoffset() is None:
        raise ValueError("decide() needs a timezone-aware `now`")


def _decide(
    state: SubjectState | None,
    purpose: PurposeRule,
    channel: str | None,
    action: Action,
    now: datetime,
) -> Decision:
    # An unknown legal basis raises KeyError here, which decide() turns into `unavailable`.
    denials = _DENIALS[purpose.legal_basis]

    # 0. A channel the purpose does not list is never lawful, whoever the subject is.
    if channel is None or channel not in purpose.channels:
        return denials[Reason.CHANNEL_NOT_PERMITTED]
    if state is None:
        return denials[Reason.UNKNOWN_SUBJECT]

    # 1. Art. 17: nothing more happens to an erased person. Art. 18: restricted data may only be stored.
    if state.erased or state.erasure_in_progress:
        return denials[Reason.ERASED]
    if state.restricted and action != Action.STORE:
        return denials[Reason.RESTRICTED]

    # 2. Art. 21: an objection to this purpose, or to direct marketing (21(3): absolute, it beats any
    # consent or legitimate interest).
    if purpose.key in state.objected_purposes or (purpose.marketing and state.objects_to_direct_marketing):
        return denials[Reason.OBJECTED]

    basis = purpose.legal_basis
    # 3. Art. 6(1)(a), 7, 8.
    if basis == LegalBasis.CONSENT:
        return _decide_consent(state, purpose, channel, now, denials)

    # 4. Art. 6(1)(f); for e-mail and SMS advertising UWG §7(3) is the only way around consent.
    if basis == LegalBasis.LEGITIMATE_INTEREST:
        if (
            purpose.marketing
            and channel in _ELECTRONIC_MAIL_CHANNELS
            and not (purpose.uwg_7_3 and channel in state.existing_customer_channels)
        ):
            return denials[Reason.NO_EXISTING_CUSTOMER]
        return _ALLOW_LEGITIMATE_INTEREST

    # 5. Art. 6(1)(b) and (c): service messages and what the law demands.
    if basis == LegalBasis.CONTRACT:
        return _ALLOW_CONTRACT
    if basis == LegalBasis.LEGAL_OBLIGATION:
        return _ALLOW_LEGAL_OBLIGATION
    raise ValueError(f"unknown legal basis {basis!r}")


def _decide_consent(
    state: SubjectState,
    purpose: PurposeRule,
    channel: str,
    now: datetime,
    denials: Mapping[Reason, Decision],
) -> Decision:
    fact = state.consents.get((purpose.key, channel))
    if fact is None:
        return denials[Reason.NO_CONSENT]

    status = fact.status
    if status == ConsentStatus.PENDING_CONFIRMATION:
        return denials[Reason.SUPPRESSED if fact.suppressed else Reason.PENDING_CONFIRMATION]
    if status != ConsentStatus.GRANTED:
        # An unknown status raises KeyError: fail closed.
        return denials[_STATUS_DENIALS[status]]

    if channel in purpose.double_opt_in and not fact.confirmed:
        return denials[Reason.PENDING_CONFIRMATION]
    # Checked here at `now`, not only by the expiry task, so that a grant is no longer valid the moment
    # it is too old, whether or not the task has recorded an expiry event.
    cutoff = consent_expiry_cutoff(purpose, now)
    if cutoff is not None and (fact.granted_at is None or fact.granted_at <= cutoff):
        return denials[Reason.EXPIRED]
    if fact.notice_version in purpose.outdated_notice_versions:
        return denials[Reason.NOTICE_OUTDATED]
    # Art. 8: below 16 the consent must be given or authorised by the holder of parental responsibility.
    if state.is_child and fact.actor != Actor.PARENTAL_GUARDIAN:
        return denials[Reason.PARENTAL_CONSENT_REQUIRED]
    return _ALLOW_CONSENT
