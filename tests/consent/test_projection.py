"""The fold of consent events into one subject x purpose x channel state (consent/projection.py). Pure: no database.

State follows occurred_at (ties by seq), never arrival order: a till that uploads yesterday's signature must not
override today's withdrawal.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from consent.ledger import projection
from consent.ledger.projection import EXPIRED, GRANTED, OBJECTED, PENDING, WITHDRAWN, Fact, Step, apply, fold

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def step(action: str, hours: float, seq: int, *, notice: str = "2026-01", actor: str = "subject") -> Step:
    return Step(action, notice if action in ("grant", "confirm") else "", actor, at(hours), seq)


# ---------------------------------------------------------------------------------------------------------
# Order: occurred_at first, seq breaks ties
# ---------------------------------------------------------------------------------------------------------
def test_a_late_uploaded_older_grant_does_not_override_a_newer_withdrawal() -> None:
    # given a withdrawal at 10:00 recorded first, and a grant signed at 09:00 uploaded later (higher seq)
    events = [step("withdraw", 1, seq=1), step("grant", 0, seq=2)]

    # when the events are folded
    fact = fold(events, double_opt_in=False)

    # then the withdrawal, which happened last, decides
    assert fact is not None
    assert fact.status == WITHDRAWN
    assert fact.seq == 1
    assert fact.since == at(1)


def test_a_late_uploaded_newer_grant_overrides_an_older_withdrawal() -> None:
    fact = fold([step("grant", 2, seq=2), step("withdraw", 1, seq=1)], double_opt_in=False)

    assert fact is not None
    assert fact.status == GRANTED
    assert fact.granted_at == at(2)
    assert fact.seq == 2


def test_the_fold_does_not_depend_on_the_order_the_events_arrive_in() -> None:
    events = [
        step("grant", 0, 1),
        step("withdraw", 3, 2),
        step("grant", 1, 3),
        step("grant", 5, 4),
        step("object", 4, 5),
    ]

    outcomes = {fold(list(perm), double_opt_in=False) for perm in itertools.permutations(events)}

    assert len(outcomes) == 1
    (fact,) = outcomes
    assert fact is not None
    assert (fact.status, fact.seq, fact.since) == (GRANTED, 4, at(5))


def test_events_at_the_same_moment_are_ordered_by_seq() -> None:
    grant_then_withdraw = fold([step("withdraw", 0, seq=2), step("grant", 0, seq=1)], double_opt_in=False)
    withdraw_then_grant = fold([step("withdraw", 0, seq=1), step("grant", 0, seq=2)], double_opt_in=False)

    assert grant_then_withdraw is not None
    assert withdraw_then_grant is not None
    assert grant_then_withdraw.status == WITHDRAWN
    assert withdraw_then_grant.status == GRANTED


def test_no_events_fold_to_no_state() -> None:
    assert fold([], double_opt_in=True) is None


# ---------------------------------------------------------------------------------------------------------
# Double opt-in
# ---------------------------------------------------------------------------------------------------------
def test_a_grant_on_a_double_opt_in_channel_waits_for_confirmation() -> None:
    fact = fold([step("grant", 0, 1)], double_opt_in=True)

    assert fact is not None
    assert fact.status == PENDING
    assert fact.confirmed is False
    assert fact.granted_at is None
    assert fact.notice_version == "2026-01"


def test_a_grant_without_double_opt_in_is_granted_at_once() -> None:
    fact = fold([step("grant", 0, 1)], double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.confirmed, fact.granted_at) == (GRANTED, False, at(0))


def test_confirming_a_pending_grant_grants_it_confirmed_from_the_confirmation() -> None:
    # given a pending double opt-in grant by a parental guardian
    pending = fold([step("grant", 0, 1, actor="parental_guardian")], double_opt_in=True)

    # when the person clicks the link a day later (the confirm step names no notice version)
    fact = apply(pending, Step("confirm", "", "subject", at(24), 2), double_opt_in=True)

    # then the consent is granted and confirmed; validity counts from the confirmation, the grant's notice
    # version and actor are kept
    assert fact is not None
    assert (fact.status, fact.confirmed, fact.granted_at) == (GRANTED, True, at(24))
    assert fact.notice_version == "2026-01"
    assert fact.actor == "parental_guardian"
    assert fact.seq == 2


def test_a_confirmation_with_a_notice_version_grants_directly_when_nothing_is_pending() -> None:
    # A client whose own form ran the double opt-in posts `confirm` with the notice the person saw.
    fact = fold([step("confirm", 0, 1, notice="2026-02")], double_opt_in=True)

    assert fact is not None
    assert (fact.status, fact.confirmed, fact.notice_version) == (GRANTED, True, "2026-02")


def test_a_bare_confirmation_without_anything_pending_changes_nothing() -> None:
    withdrawn = fold([step("grant", 0, 1), step("withdraw", 1, 2)], double_opt_in=False)

    assert apply(None, Step("confirm", "", "subject", at(2), 3), double_opt_in=True) is None
    assert apply(withdrawn, Step("confirm", "", "subject", at(2), 3), double_opt_in=True) == withdrawn


def test_a_confirmation_after_a_withdrawal_does_not_revive_the_old_grant() -> None:
    # given grant (pending), then withdrawal before the person clicked
    # when the stale confirmation link is used
    fact = fold(
        [step("grant", 0, 1), step("withdraw", 1, 2), Step("confirm", "", "subject", at(2), 3)], double_opt_in=True
    )

    # then the withdrawal stands
    assert fact is not None
    assert fact.status == WITHDRAWN


def test_a_regrant_after_a_confirmed_consent_stays_confirmed_and_renews_validity() -> None:
    # given a confirmed double opt-in consent
    confirmed = fold([step("grant", 0, 1), Step("confirm", "", "subject", at(1), 2)], double_opt_in=True)

    # when the person grants again a year later, under a newer notice
    fact = apply(confirmed, step("grant", 24 * 365, 3, notice="2027-01"), double_opt_in=True)

    # then no second confirmation is needed, and validity counts from the new grant
    assert fact is not None
    assert (fact.status, fact.confirmed) == (GRANTED, True)
    assert fact.granted_at == at(24 * 365)
    assert fact.notice_version == "2027-01"


def test_a_regrant_after_a_withdrawal_needs_a_new_confirmation() -> None:
    fact = fold(
        [step("grant", 0, 1), Step("confirm", "", "subject", at(1), 2), step("withdraw", 2, 3), step("grant", 3, 4)],
        double_opt_in=True,
    )

    assert fact is not None
    assert (fact.status, fact.confirmed) == (PENDING, False)


def test_a_regrant_of_an_unconfirmed_consent_stays_pending() -> None:
    fact = fold([step("grant", 0, 1), step("grant", 1, 2)], double_opt_in=True)

    assert fact is not None
    assert fact.status == PENDING


def test_a_suppressed_grant_stays_pending_even_without_double_opt_in() -> None:
    fact = apply(None, Step("grant", "2026-01", "agent", at(0), 1, suppressed=True), double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.suppressed) == (PENDING, True)


# ---------------------------------------------------------------------------------------------------------
# Withdraw, object, expire
# ---------------------------------------------------------------------------------------------------------
def test_a_withdrawal_keeps_the_notice_version_that_was_withdrawn() -> None:
    fact = fold([step("grant", 0, 1), step("withdraw", 1, 2)], double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.notice_version, fact.granted_at, fact.confirmed) == (WITHDRAWN, "2026-01", None, False)


def test_a_withdrawal_without_a_grant_is_recorded_as_withdrawn() -> None:
    fact = fold([step("withdraw", 0, 1)], double_opt_in=False)

    assert fact is not None
    assert fact.status == WITHDRAWN


def test_an_objection_replaces_a_grant() -> None:
    fact = fold([step("grant", 0, 1), step("object", 1, 2)], double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.since, fact.granted_at) == (OBJECTED, at(1), None)


def test_an_expiry_ends_a_granted_consent() -> None:
    granted = fold([step("grant", 0, 1)], double_opt_in=False)

    fact = apply(granted, step("expire", 24 * 730, 2), double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.since, fact.seq, fact.granted_at) == (EXPIRED, at(24 * 730), 2, None)


@pytest.mark.parametrize("before", ["withdraw", "object"])
def test_an_expiry_does_not_touch_a_consent_that_is_no_longer_granted(before: str) -> None:
    current = fold([step("grant", 0, 1), step(before, 1, 2)], double_opt_in=False)

    assert apply(current, step("expire", 2, 3), double_opt_in=False) == current


def test_an_expiry_of_a_pending_grant_leaves_it_pending() -> None:
    pending = fold([step("grant", 0, 1)], double_opt_in=True)

    assert apply(pending, step("expire", 2, 2), double_opt_in=True) == pending


def test_a_grant_after_an_expiry_is_granted_again() -> None:
    fact = fold([step("grant", 0, 1), step("expire", 1, 2), step("grant", 2, 3)], double_opt_in=False)

    assert fact is not None
    assert (fact.status, fact.granted_at) == (GRANTED, at(2))


def test_events_that_do_not_move_consent_state_are_ignored() -> None:
    current = Fact(GRANTED, "2026-01", at(0), 1, granted_at=at(0))

    for action in sorted({"merged", "erased"} - projection.STATE_ACTIONS):
        assert apply(current, Step(action, "", "system", at(1), 2), double_opt_in=False) == current
