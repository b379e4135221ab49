"""The policy check, table-driven and without a database (DESIGN.md, "The policy check").

Each row of the tables below names the rule it pins down; the rows are chosen so that dropping any single
rule, or swapping two of them, makes at least one row fail.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consent import policy
from consent.policy import (
    Action,
    Actor,
    ConsentFact,
    ConsentStatus,
    Decision,
    LegalBasis,
    PurposeRule,
    Reason,
    SubjectState,
    decide,
    decide_many,
    decide_read,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")

ALLOWED_REASONS = {Reason.GRANTED, Reason.LEGITIMATE_INTEREST, Reason.CONTRACT, Reason.LEGAL_OBLIGATION}

# Consent, marketing, double opt-in on e-mail only, valid two years, notice v1 outdated by v2.
NEWSLETTER = PurposeRule(
    key="newsletter",
    legal_basis=LegalBasis.CONSENT,
    marketing=True,
    channels=frozenset({"email", "sms", "post"}),
    double_opt_in=frozenset({"email"}),
    consent_valid_days=730,
    outdated_notice_versions=frozenset({"v1"}),
)
# Consent, not marketing, no double opt-in, no expiry.
ANALYTICS = PurposeRule(
    key="analytics",
    legal_basis=LegalBasis.CONSENT,
    marketing=False,
    channels=frozenset({"web", "app"}),
)
# Legitimate interest, marketing, may use the existing-customer exemption.
OFFERS = PurposeRule(
    key="offers",
    legal_basis=LegalBasis.LEGITIMATE_INTEREST,
    marketing=True,
    channels=frozenset({"email", "sms", "post"}),
    uwg_7_3=True,
)
OFFERS_WITHOUT_UWG = replace(OFFERS, key="offers_without_uwg", uwg_7_3=False)
# Legitimate interest, not marketing.
SECURITY_NOTICES = PurposeRule(
    key="security_notices",
    legal_basis=LegalBasis.LEGITIMATE_INTEREST,
    marketing=False,
    channels=frozenset({"email"}),
)
ORDER_UPDATES = PurposeRule(
    key="order_updates",
    legal_basis=LegalBasis.CONTRACT,
    marketing=False,
    channels=frozenset({"email", "sms"}),
)
TAX_RECORDS = PurposeRule(
    key="tax_records",
    legal_basis=LegalBasis.LEGAL_OBLIGATION,
    marketing=False,
    channels=frozenset({"in_store"}),
)


def fact(
    status: ConsentStatus = ConsentStatus.GRANTED,
    *,
    notice_version: str | None = "v2",
    granted_at: datetime | None = NOW - timedelta(days=10),
    confirmed: bool = True,
    actor: Actor = Actor.SUBJECT,
    suppressed: bool = False,
) -> ConsentFact:
    """A valid, confirmed, current grant unless told otherwise."""
    return ConsentFact(
        status=status,
        notice_version=notice_version,
        granted_at=granted_at,
        confirmed=confirmed,
        actor=actor,
        suppressed=suppressed,
    )


def subject(consents: Mapping[tuple[str, str], ConsentFact] | None = None, **flags: Any) -> SubjectState:
    return SubjectState(consents=consents or {}, **flags)


def granted_on(purpose: PurposeRule, channel: str, **flags: Any) -> SubjectState:
    """A subject holding a valid grant for exactly this purpose and channel."""
    return subject({(purpose.key, channel): fact()}, **flags)


def with_fact(purpose: PurposeRule, channel: str, consent: ConsentFact, **flags: Any) -> SubjectState:
    return subject({(purpose.key, channel): consent}, **flags)


@dataclass(frozen=True)
class Row:
    id: str
    state: SubjectState | None
    purpose: PurposeRule
    channel: str | None
    reason: Reason
    action: Action = Action.CHECK
    now: datetime = NOW

    @property
    def allowed(self) -> bool:
        return self.reason in ALLOWED_REASONS


ROWS = [
    # Rule 0: the channel must be one the purpose lists; this beats everything, even an unknown subject.
    Row(
        "unlisted channel is not permitted",
        granted_on(NEWSLETTER, "email"),
        NEWSLETTER,
        "fax",
        Reason.CHANNEL_NOT_PERMITTED,
    ),
    Row(
        "no channel is not permitted outside a read",
        granted_on(NEWSLETTER, "email"),
        NEWSLETTER,
        None,
        Reason.CHANNEL_NOT_PERMITTED,
    ),
    Row("unlisted channel beats unknown subject", None, NEWSLETTER, "fax", Reason.CHANNEL_NOT_PERMITTED),
    Row(
        "unlisted channel beats erased",
        subject(erased=True),
        ORDER_UPDATES,
        "post",
        Reason.CHANNEL_NOT_PERMITTED,
    ),
    Row("unlisted channel beats contract", subject(), ORDER_UPDATES, "post", Reason.CHANNEL_NOT_PERMITTED),
    # Rule 0b: no such subject.
    Row("unknown subject", None, NEWSLETTER, "email", Reason.UNKNOWN_SUBJECT),
    Row("unknown subject even for a contract", None, ORDER_UPDATES, "email", Reason.UNKNOWN_SUBJECT),
    # Rule 1: erasure, then restriction.
    Row(
        "erased beats a valid grant",
        granted_on(NEWSLETTER, "email", erased=True),
        NEWSLETTER,
        "email",
        Reason.ERASED,
    ),
    Row(
        "erasure in progress beats a valid grant",
        granted_on(NEWSLETTER, "email", erasure_in_progress=True),
        NEWSLETTER,
        "email",
        Reason.ERASED,
    ),
    Row("erased beats a contract", subject(erased=True), ORDER_UPDATES, "email", Reason.ERASED),
    Row(
        "erased is not lifted for storage",
        granted_on(NEWSLETTER, "email", erased=True),
        NEWSLETTER,
        "email",
        Reason.ERASED,
        Action.STORE,
    ),
    Row(
        "erased beats restricted",
        subject(erased=True, restricted=True),
        ORDER_UPDATES,
        "email",
        Reason.ERASED,
    ),
    Row(
        "erased beats objected",
        granted_on(NEWSLETTER, "email", erased=True, objects_to_direct_marketing=True),
        NEWSLETTER,
        "email",
        Reason.ERASED,
    ),
    Row(
        "restricted beats a valid grant on check",
        granted_on(NEWSLETTER, "email", restricted=True),
        NEWSLETTER,
        "email",
        Reason.RESTRICTED,
    ),
    Row(
        "restricted beats a valid grant on send",
        granted_on(NEWSLETTER, "email", restricted=True),
        NEWSLETTER,
        "email",
        Reason.RESTRICTED,
        Action.SEND,
    ),
    Row(
        "restricted beats a valid grant on read",
        granted_on(NEWSLETTER, "email", restricted=True),
        NEWSLETTER,
        "email",
        Reason.RESTRICTED,
        Action.READ,
    ),
    Row("restricted beats a contract", subject(restricted=True), ORDER_UPDATES, "email", Reason.RESTRICTED),
    Row(
        "restricted beats a legal obligation",
        subject(restricted=True),
        TAX_RECORDS,
        "in_store",
        Reason.RESTRICTED,
    ),
    Row(
        "restricted beats objected",
        granted_on(NEWSLETTER, "email", restricted=True, objects_to_direct_marketing=True),
        NEWSLETTER,
        "email",
        Reason.RESTRICTED,
    ),
    Row(
        "storage on a restricted subject with a grant is allowed",
        granted_on(NEWSLETTER, "email", restricted=True),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
        Action.STORE,
    ),
    Row(
        "storage on a restricted subject still needs consent",
        subject(restricted=True),
        NEWSLETTER,
        "email",
        Reason.NO_CONSENT,
        Action.STORE,
    ),
    Row(
        "storage on a restricted subject for a contract is allowed",
        subject(restricted=True),
        ORDER_UPDATES,
        "email",
        Reason.CONTRACT,
        Action.STORE,
    ),
    # Rule 2: objection, to direct marketing (absolute) or to this purpose.
    Row(
        "direct marketing objection beats a confirmed grant",
        granted_on(NEWSLETTER, "email", objects_to_direct_marketing=True),
        NEWSLETTER,
        "email",
        Reason.OBJECTED,
    ),
    Row(
        "direct marketing objection beats a missing consent",
        subject(objects_to_direct_marketing=True),
        NEWSLETTER,
        "email",
        Reason.OBJECTED,
    ),
    Row(
        "direct marketing objection beats legitimate interest on post",
        subject(objects_to_direct_marketing=True),
        OFFERS,
        "post",
        Reason.OBJECTED,
    ),
    Row(
        "direct marketing objection beats the existing customer exemption",
        subject(objects_to_direct_marketing=True, existing_customer_channels=frozenset({"email"})),
        OFFERS,
        "email",
        Reason.OBJECTED,
    ),
    Row(
        "direct marketing objection does not touch non-marketing consent",
        granted_on(ANALYTICS, "web", objects_to_direct_marketing=True),
        ANALYTICS,
        "web",
        Reason.GRANTED,
    ),
    Row(
        "direct marketing objection does not touch a contract",
        subject(objects_to_direct_marketing=True),
        ORDER_UPDATES,
        "email",
        Reason.CONTRACT,
    ),
    Row(
        "objection to a non-marketing consent purpose beats its grant",
        granted_on(ANALYTICS, "web", objected_purposes=frozenset({"analytics"})),
        ANALYTICS,
        "web",
        Reason.OBJECTED,
    ),
    Row(
        "objection to a legitimate interest purpose",
        subject(objected_purposes=frozenset({"security_notices"})),
        SECURITY_NOTICES,
        "email",
        Reason.OBJECTED,
    ),
    Row(
        "objection to another purpose does not count",
        granted_on(ANALYTICS, "web", objected_purposes=frozenset({"newsletter"})),
        ANALYTICS,
        "web",
        Reason.GRANTED,
    ),
    # Rule 3: consent, by ledger status.
    Row("no consent recorded", subject(), NEWSLETTER, "email", Reason.NO_CONSENT),
    Row(
        "a grant on another channel does not count",
        granted_on(NEWSLETTER, "sms"),
        NEWSLETTER,
        "email",
        Reason.NO_CONSENT,
    ),
    Row(
        "a grant for another purpose does not count",
        granted_on(ANALYTICS, "web"),
        NEWSLETTER,
        "email",
        Reason.NO_CONSENT,
    ),
    Row(
        "pending confirmation",
        with_fact(NEWSLETTER, "email", fact(ConsentStatus.PENDING_CONFIRMATION, confirmed=False)),
        NEWSLETTER,
        "email",
        Reason.PENDING_CONFIRMATION,
    ),
    Row(
        "pending because suppressed",
        with_fact(NEWSLETTER, "email", fact(ConsentStatus.PENDING_CONFIRMATION, confirmed=False, suppressed=True)),
        NEWSLETTER,
        "email",
        Reason.SUPPRESSED,
    ),
    Row(
        "withdrawn",
        with_fact(NEWSLETTER, "email", fact(ConsentStatus.WITHDRAWN)),
        NEWSLETTER,
        "email",
        Reason.WITHDRAWN,
    ),
    Row(
        "objected in the ledger",
        with_fact(NEWSLETTER, "email", fact(ConsentStatus.OBJECTED)),
        NEWSLETTER,
        "email",
        Reason.OBJECTED,
    ),
    Row(
        "expired in the ledger",
        with_fact(NEWSLETTER, "email", fact(ConsentStatus.EXPIRED)),
        NEWSLETTER,
        "email",
        Reason.EXPIRED,
    ),
    Row(
        "expired in the ledger on a purpose without expiry",
        with_fact(ANALYTICS, "web", fact(ConsentStatus.EXPIRED)),
        ANALYTICS,
        "web",
        Reason.EXPIRED,
    ),
    # Rule 3: consent, a grant and its conditions.
    Row(
        "a confirmed grant on a double opt-in channel",
        granted_on(NEWSLETTER, "email"),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
    ),
    Row(
        "an unconfirmed grant on a double opt-in channel",
        with_fact(NEWSLETTER, "email", fact(confirmed=False)),
        NEWSLETTER,
        "email",
        Reason.PENDING_CONFIRMATION,
    ),
    Row(
        "an unconfirmed grant on a channel without double opt-in",
        with_fact(NEWSLETTER, "sms", fact(confirmed=False)),
        NEWSLETTER,
        "sms",
        Reason.GRANTED,
    ),
    Row(
        "a grant older than its validity with no expiry event",
        with_fact(NEWSLETTER, "email", fact(granted_at=NOW - timedelta(days=731))),
        NEWSLETTER,
        "email",
        Reason.EXPIRED,
    ),
    Row(
        "a grant exactly at the end of its validity",
        with_fact(NEWSLETTER, "email", fact(granted_at=NOW - timedelta(days=730))),
        NEWSLETTER,
        "email",
        Reason.EXPIRED,
    ),
    Row(
        "a grant one second before the end of its validity",
        with_fact(NEWSLETTER, "email", fact(granted_at=NOW - timedelta(days=730) + timedelta(seconds=1))),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
    ),
    Row(
        "a grant in another time zone is compared by instant",
        with_fact(NEWSLETTER, "email", fact(granted_at=(NOW - timedelta(days=730, seconds=-1)).astimezone(BERLIN))),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
    ),
    Row(
        "a grant without a date on a purpose with validity",
        with_fact(NEWSLETTER, "email", fact(granted_at=None)),
        NEWSLETTER,
        "email",
        Reason.EXPIRED,
    ),
    Row(
        "a ten year old grant on a purpose without validity",
        with_fact(ANALYTICS, "web", fact(granted_at=NOW - timedelta(days=3650))),
        ANALYTICS,
        "web",
        Reason.GRANTED,
    ),
    Row(
        "a grant without a date on a purpose without validity",
        with_fact(ANALYTICS, "web", fact(granted_at=None)),
        ANALYTICS,
        "web",
        Reason.GRANTED,
    ),
    Row(
        "a grant under an outdated notice",
        with_fact(NEWSLETTER, "email", fact(notice_version="v1")),
        NEWSLETTER,
        "email",
        Reason.NOTICE_OUTDATED,
    ),
    Row(
        "a grant by an agent for a child",
        with_fact(NEWSLETTER, "email", fact(actor=Actor.AGENT), is_child=True),
        NEWSLETTER,
        "email",
        Reason.PARENTAL_CONSENT_REQUIRED,
    ),
    Row(
        "a grant by the child itself",
        with_fact(NEWSLETTER, "email", fact(actor=Actor.SUBJECT), is_child=True),
        NEWSLETTER,
        "email",
        Reason.PARENTAL_CONSENT_REQUIRED,
    ),
    Row(
        "a grant by a parental guardian for a child",
        with_fact(NEWSLETTER, "email", fact(actor=Actor.PARENTAL_GUARDIAN), is_child=True),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
    ),
    Row(
        "a grant by an agent for an adult",
        with_fact(NEWSLETTER, "email", fact(actor=Actor.AGENT)),
        NEWSLETTER,
        "email",
        Reason.GRANTED,
    ),
    # Rule 3: the order of the grant's conditions.
    Row(
        "unconfirmed beats expired",
        with_fact(NEWSLETTER, "email", fact(confirmed=False, granted_at=NOW - timedelta(days=800))),
        NEWSLETTER,
        "email",
        Reason.PENDING_CONFIRMATION,
    ),
    Row(
        "expired beats outdated notice",
        with_fact(NEWSLETTER, "email", fact(notice_version="v1", granted_at=NOW - timedelta(days=800))),
        NEWSLETTER,
        "email",
        Reason.EXPIRED,
    ),
    Row(
        "outdated notice beats parental consent",
        with_fact(NEWSLETTER, "email", fact(notice_version="v1"), is_child=True),
        NEWSLETTER,
        "email",
        Reason.NOTICE_OUTDATED,
    ),
    # Rule 4: legitimate interest, and UWG §7(3) for e-mail and SMS advertising.
    Row(
        "legitimate interest e-mail marketing to an existing customer",
        subject(existing_customer_channels=frozenset({"email"})),
        OFFERS,
        "email",
        Reason.LEGITIMATE_INTEREST,
    ),
    Row(
        "legitimate interest SMS marketing to an existing customer",
        subject(existing_customer_channels=frozenset({"sms"})),
        OFFERS,
        "sms",
        Reason.LEGITIMATE_INTEREST,
    ),
    Row(
        "legitimate interest e-mail marketing to a non-customer",
        subject(),
        OFFERS,
        "email",
        Reason.NO_EXISTING_CUSTOMER,
    ),
    Row(
        "legitimate interest e-mail marketing to a customer known only by SMS",
        subject(existing_customer_channels=frozenset({"sms"})),
        OFFERS,
        "email",
        Reason.NO_EXISTING_CUSTOMER,
    ),
    Row(
        "legitimate interest e-mail marketing without uwg 7(3)",
        subject(existing_customer_channels=frozenset({"email"})),
        OFFERS_WITHOUT_UWG,
        "email",
        Reason.NO_EXISTING_CUSTOMER,
    ),
    Row(
        "legitimate interest post marketing needs no customer",
        subject(),
        OFFERS_WITHOUT_UWG,
        "post",
        Reason.LEGITIMATE_INTEREST,
    ),
    Row(
        "legitimate interest e-mail that is not marketing",
        subject(),
        SECURITY_NOTICES,
        "email",
        Reason.LEGITIMATE_INTEREST,
    ),
    # Rule 5: contract and legal obligation.
    Row("contract", subject(), ORDER_UPDATES, "sms", Reason.CONTRACT),
    Row(
        "contract ignores a withdrawn consent record",
        with_fact(ORDER_UPDATES, "email", fact(ConsentStatus.WITHDRAWN)),
        ORDER_UPDATES,
        "email",
        Reason.CONTRACT,
    ),
    Row("legal obligation", subject(), TAX_RECORDS, "in_store", Reason.LEGAL_OBLIGATION, Action.STORE),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_decide_applies_the_rules_in_order(row: Row) -> None:
    decision = decide(row.state, row.purpose, row.channel, row.action, row.now)

    assert decision == Decision(row.allowed, row.reason, row.purpose.legal_basis)


def test_the_table_covers_every_reason_decide_can_produce() -> None:
    # Ambiguity is found while resolving references, before the policy runs; unavailable has its own tests.
    producible = set(Reason) - {Reason.AMBIGUOUS_SUBJECT, Reason.UNAVAILABLE}

    assert {row.reason for row in ROWS} == producible


def test_row_ids_are_unique() -> None:
    ids = [row.id for row in ROWS]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("action", list(Action), ids=str)
def test_check_allows_a_valid_grant_for_every_action(action: Action) -> None:
    decision = decide(granted_on(NEWSLETTER, "email"), NEWSLETTER, "email", action, NOW)

    assert decision == Decision(True, Reason.GRANTED, LegalBasis.CONSENT)


# decide_read: a profile read holds when the legal basis holds on at least one channel.

READ_ROWS = [
    Row(
        "allowed via a second channel",
        subject(
            {
                ("newsletter", "email"): fact(ConsentStatus.WITHDRAWN),
                ("newsletter", "post"): fact(ConsentStatus.PENDING_CONFIRMATION),
                ("newsletter", "sms"): fact(),
            }
        ),
        NEWSLETTER,
        None,
        Reason.GRANTED,
    ),
    Row(
        "all channels denied gives the first channel's denial in sorted order",
        subject(
            {
                ("newsletter", "email"): fact(ConsentStatus.WITHDRAWN),
                ("newsletter", "sms"): fact(ConsentStatus.PENDING_CONFIRMATION),
            }
        ),
        NEWSLETTER,
        None,
        Reason.WITHDRAWN,
    ),
    Row(
        "all channels denied with the first sorted channel unrecorded",
        subject(
            {
                ("newsletter", "sms"): fact(ConsentStatus.WITHDRAWN),
            }
        ),
        NEWSLETTER,
        None,
        Reason.NO_CONSENT,
    ),
    Row(
        "legitimate interest read through post when e-mail and SMS lack a customer",
        subject(),
        OFFERS_WITHOUT_UWG,
        None,
        Reason.LEGITIMATE_INTEREST,
    ),
    Row("read of an unknown subject", None, NEWSLETTER, None, Reason.UNKNOWN_SUBJECT),
    Row(
        "read of an erased subject",
        granted_on(NEWSLETTER, "sms", erased=True),
        NEWSLETTER,
        None,
        Reason.ERASED,
    ),
    Row(
        "read of a restricted subject",
        granted_on(NEWSLETTER, "sms", restricted=True),
        NEWSLETTER,
        None,
        Reason.RESTRICTED,
    ),
    Row(
        "read after an objection to direct marketing",
        granted_on(NEWSLETTER, "sms", objects_to_direct_marketing=True),
        NEWSLETTER,
        None,
        Reason.OBJECTED,
    ),
    Row("read for a contract", subject(), ORDER_UPDATES, None, Reason.CONTRACT),
    Row(
        "read for a purpose without channels",
        subject(),
        replace(ORDER_UPDATES, channels=frozenset()),
        None,
        Reason.CHANNEL_NOT_PERMITTED,
    ),
]


@pytest.mark.parametrize("row", READ_ROWS, ids=[row.id for row in READ_ROWS])
def test_decide_read_allows_when_any_channel_allows(row: Row) -> None:
    decision = decide_read(row.state, row.purpose, row.now)

    assert decision == Decision(row.allowed, row.reason, row.purpose.legal_basis)


def test_decide_read_evaluates_channels_as_reads() -> None:
    # A read is not storage, so restriction applies even though storage would pass it.
    state = granted_on(ANALYTICS, "web", restricted=True)

    assert decide_read(state, ANALYTICS, NOW).reason == Reason.RESTRICTED
    assert decide(state, ANALYTICS, "web", Action.STORE, NOW).allowed


# Failing closed.


class ExplodingConsents(Mapping[tuple[str, str], ConsentFact]):
    """A consents mapping that breaks on any use, and remembers whether it was used."""

    def __init__(self) -> None:
        self.touched = False

    def _corrupt(self) -> RuntimeError:
        self.touched = True
        return RuntimeError("ledger projection is corrupt")

    def __getitem__(self, key: tuple[str, str]) -> ConsentFact:
        raise self._corrupt()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        raise self._corrupt()

    def __len__(self) -> int:
        raise self._corrupt()

    def get(self, key: object, default: object = None) -> NoReturn:
        raise self._corrupt()


UNAVAILABLE = Decision(False, Reason.UNAVAILABLE, None)
NAIVE_NOW = NOW.replace(tzinfo=None)


def test_check_fails_closed_when_the_consents_mapping_raises() -> None:
    state = SubjectState(consents=ExplodingConsents())

    assert decide(state, NEWSLETTER, "email", Action.SEND, NOW) == UNAVAILABLE


def test_check_fails_closed_on_a_naive_now() -> None:
    assert decide(granted_on(NEWSLETTER, "email"), NEWSLETTER, "email", Action.CHECK, NAIVE_NOW) == UNAVAILABLE


def test_check_fails_closed_on_a_naive_now_even_for_a_contract() -> None:
    assert decide(subject(), ORDER_UPDATES, "email", Action.SEND, NAIVE_NOW) == UNAVAILABLE


def test_check_fails_closed_on_a_naive_grant_time() -> None:
    state = with_fact(NEWSLETTER, "email", fact(granted_at=NAIVE_NOW - timedelta(days=1)))

    assert decide(state, NEWSLETTER, "email", Action.CHECK, NOW) == UNAVAILABLE


def test_a_grant_time_at_the_end_of_the_calendar_is_compared_without_overflowing() -> None:
    # Validity is measured back from `now` (the expiry cutoff), never forward from the grant: a grant stamped at the
    # calendar's end cannot overflow the arithmetic, and is simply not expired.
    state = with_fact(NEWSLETTER, "email", fact(granted_at=datetime.max.replace(tzinfo=UTC)))

    assert decide(state, NEWSLETTER, "email", Action.CHECK, NOW).reason == Reason.GRANTED
    assert decide(state, NEWSLETTER, "email", Action.CHECK, datetime.max.replace(tzinfo=UTC)).reason == Reason.GRANTED


def test_check_fails_closed_on_a_malformed_state() -> None:
    assert decide({"erased": False}, NEWSLETTER, "email", Action.CHECK, NOW) == UNAVAILABLE  # type: ignore[arg-type]


def test_check_fails_closed_on_an_unknown_legal_basis() -> None:
    purpose = replace(ORDER_UPDATES, legal_basis="vital_interest")  # type: ignore[arg-type]

    assert decide(subject(), purpose, "email", Action.CHECK, NOW) == UNAVAILABLE


def test_check_fails_closed_on_an_unknown_ledger_status() -> None:
    state = with_fact(NEWSLETTER, "email", fact("revoked"))  # type: ignore[arg-type]

    assert decide(state, NEWSLETTER, "email", Action.CHECK, NOW) == UNAVAILABLE


def test_read_fails_closed_when_the_consents_mapping_raises() -> None:
    assert decide_read(SubjectState(consents=ExplodingConsents()), NEWSLETTER, NOW) == UNAVAILABLE


def test_read_fails_closed_on_a_naive_now() -> None:
    assert decide_read(subject(), ORDER_UPDATES, NAIVE_NOW) == UNAVAILABLE


def test_read_fails_closed_on_channels_that_cannot_be_sorted() -> None:
    purpose = replace(ORDER_UPDATES, channels=frozenset({"email", 7}))  # type: ignore[arg-type]

    assert decide_read(subject(), purpose, NOW) == UNAVAILABLE


# Decision.


def test_deny_carries_the_reason_and_an_optional_legal_basis() -> None:
    assert Decision.deny(Reason.WITHDRAWN) == Decision(False, Reason.WITHDRAWN, None)
    assert Decision.deny(Reason.WITHDRAWN, LegalBasis.CONSENT) == Decision(False, Reason.WITHDRAWN, LegalBasis.CONSENT)


@pytest.mark.parametrize("reason", sorted(ALLOWED_REASONS), ids=str)
def test_deny_refuses_a_reason_that_allows(reason: Reason) -> None:
    with pytest.raises(ValueError):
        Decision.deny(reason)


def test_decide_reuses_prebuilt_decisions() -> None:
    # The bulk check calls decide() 10,000 times per request; it must not build a Decision each time.
    first = decide(granted_on(NEWSLETTER, "email"), NEWSLETTER, "email", Action.CHECK, NOW)
    second = decide(granted_on(NEWSLETTER, "sms"), NEWSLETTER, "sms", Action.SEND, NOW)
    denied = decide(subject(), NEWSLETTER, "email", Action.CHECK, NOW)

    assert first is second
    assert denied is decide(subject(), NEWSLETTER, "sms", Action.CHECK, NOW)


def test_policy_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(policy.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert {name.partition(".")[0] for name in imported} <= {*sys.stdlib_module_names, "__future__"}


# Properties over generated states.

PURPOSE_KEYS = ("newsletter", "analytics", "offers", "orders")
CHANNELS = ("email", "sms", "post", "web", "app")
NOTICE_VERSIONS = (None, "v1", "v2", "v3")

aware_datetimes = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))

purposes = st.builds(
    PurposeRule,
    key=st.sampled_from(PURPOSE_KEYS),
    legal_basis=st.sampled_from(LegalBasis),
    marketing=st.booleans(),
    channels=st.frozensets(st.sampled_from(CHANNELS)),
    double_opt_in=st.frozensets(st.sampled_from(CHANNELS)),
    consent_valid_days=st.none() | st.integers(min_value=0, max_value=3000),
    outdated_notice_versions=st.frozensets(st.sampled_from(("v1", "v2"))),
    uwg_7_3=st.booleans(),
)

facts = st.builds(
    ConsentFact,
    status=st.sampled_from(ConsentStatus),
    notice_version=st.sampled_from(NOTICE_VERSIONS),
    granted_at=st.none() | aware_datetimes,
    confirmed=st.booleans(),
    actor=st.sampled_from(Actor),
    suppressed=st.booleans(),
)

states = st.builds(
    SubjectState,
    erased=st.booleans(),
    erasure_in_progress=st.booleans(),
    restricted=st.booleans(),
    is_child=st.booleans(),
    objects_to_direct_marketing=st.booleans(),
    objected_purposes=st.frozensets(st.sampled_from(PURPOSE_KEYS)),
    consents=st.dictionaries(st.tuples(st.sampled_from(PURPOSE_KEYS), st.sampled_from(CHANNELS)), facts),
    existing_customer_channels=st.frozensets(st.sampled_from(CHANNELS)),
)

channels = st.none() | st.sampled_from((*CHANNELS, "fax"))


@given(state=states, purpose=purposes, channel=channels, action=st.sampled_from(Action), now=aware_datetimes)
def test_an_erased_or_restricted_subject_is_never_allowed_anything(
    state: SubjectState, purpose: PurposeRule, channel: str | None, action: Action, now: datetime
) -> None:
    decision = decide(state, purpose, channel, action, now)

    if state.erased or state.erasure_in_progress or (state.restricted and action != Action.STORE):
        assert not decision.allowed
    if state.erased or state.erasure_in_progress or state.restricted:  # a read is never storage
        assert not decide_read(state, purpose, now).allowed


@given(state=states, purpose=purposes, channel=channels, action=st.sampled_from(Action), now=aware_datetimes)
def test_an_allowed_decision_only_carries_an_allowing_reason(
    state: SubjectState, purpose: PurposeRule, channel: str | None, action: Action, now: datetime
) -> None:
    decision = decide(state, purpose, channel, action, now)

    assert decision.allowed == (decision.reason in ALLOWED_REASONS)
    assert decision.legal_basis == purpose.legal_basis
    read = decide_read(state, purpose, now)
    assert read.allowed == (read.reason in ALLOWED_REASONS)


@given(state=states, purpose=purposes, now=aware_datetimes)
def test_a_read_is_allowed_exactly_when_some_channel_allows_it(
    state: SubjectState, purpose: PurposeRule, now: datetime
) -> None:
    per_channel = [decide(state, purpose, channel, Action.READ, now) for channel in sorted(purpose.channels)]

    read = decide_read(state, purpose, now)

    assert read.allowed == any(decision.allowed for decision in per_channel)
    if per_channel:
        expected = next((d for d in per_channel if d.allowed), per_channel[0])
        assert read == expected


@given(state=states, purpose=purposes, channel=channels, action=st.sampled_from(Action))
def test_any_error_inside_the_rules_is_an_unavailable_denial(
    state: SubjectState, purpose: PurposeRule, channel: str | None, action: Action
) -> None:
    exploding = ExplodingConsents()
    broken = replace(state, consents=exploding)

    decision = decide(broken, purpose, channel, action, NOW)

    # Whenever the rules reached the broken projection, the answer is unavailable; otherwise it is the
    # answer the intact state gives, since those rules never look at consents.
    if exploding.touched:
        assert decision == UNAVAILABLE
    else:
        assert decision == decide(state, purpose, channel, action, NOW)


@given(state=states, purpose=purposes, channel=channels, action=st.sampled_from(Action), now=aware_datetimes)
def test_a_naive_clock_is_always_an_unavailable_denial(
    state: SubjectState, purpose: PurposeRule, channel: str | None, action: Action, now: datetime
) -> None:
    naive = now.replace(tzinfo=None)

    assert decide(state, purpose, channel, action, naive) == UNAVAILABLE
    assert decide_read(state, purpose, naive) == UNAVAILABLE


@given(
    state=states,
    purpose=purposes,
    channel=channels,
    action=st.sampled_from(Action),
    error=st.sampled_from(
        (ValueError, TypeError, KeyError, AttributeError, RuntimeError, OverflowError, ZeroDivisionError)
    ),
)
def test_any_exception_raised_by_the_rules_is_an_unavailable_denial(
    state: SubjectState,
    purpose: PurposeRule,
    channel: str | None,
    action: Action,
    error: type[Exception],
) -> None:
    with mock.patch.object(policy, "_decide", side_effect=error("boom")):
        assert decide(state, purpose, channel, action, NOW) == UNAVAILABLE
        if purpose.channels:
            assert decide_read(state, purpose, NOW) == UNAVAILABLE


@given(
    many=st.lists(st.none() | states, max_size=20),
    purpose=purposes,
    channel=channels,
    action=st.sampled_from(Action),
    now=aware_datetimes,
)
def test_deciding_many_subjects_at_once_answers_as_deciding_each(
    many: list[SubjectState | None], purpose: PurposeRule, channel: str | None, action: Action, now: datetime
) -> None:
    assert decide_many(many, purpose, channel, action, now) == [decide(s, purpose, channel, action, now) for s in many]
    assert decide_many(many, purpose, channel, action, now.replace(tzinfo=None)) == [UNAVAILABLE] * len(many)


@given(state=states, purpose=purposes, channel=channels, action=st.sampled_from(Action))
def test_one_broken_subject_among_many_fails_closed_alone(
    state: SubjectState, purpose: PurposeRule, channel: str | None, action: Action
) -> None:
    exploding = ExplodingConsents()
    decisions = decide_many([state, replace(state, consents=exploding), state], purpose, channel, action, NOW)

    intact = decide(state, purpose, channel, action, NOW)
    assert decisions[0] == decisions[2] == intact
    assert decisions[1] == (UNAVAILABLE if exploding.touched else intact)
