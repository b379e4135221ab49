"""Deadlines of rights requests (Art. 12(3), Reg. 1182/71) and retention periods: table-driven, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from subjects.rights.calendar import BERLIN, claims_until, due_at, hold_until


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2026-03-28T09:00", "2026-04-28"),  # the same date next month
        ("2028-01-31T09:00", "2028-02-29"),  # 31 Jan -> the last day of a leap February
        ("2026-01-31T09:00", "2026-03-02"),  # 31 Jan -> 28 Feb 2026, a Saturday -> Monday
        ("2026-04-02T09:00", "2026-05-04"),  # 2 May 2026 is a Saturday -> Monday
        ("2026-12-31T09:00", "2027-02-01"),  # 31 Jan 2027 is a Sunday -> Monday
        ("2026-10-31T09:00", "2026-11-30"),  # 31 Oct -> 30 Nov
        ("2026-03-31T23:59", "2026-04-30"),  # received late in the day still counts that day
    ],
)
def test_due_date_is_the_same_date_next_month_moved_past_a_weekend(received: str, due: str) -> None:
    moment = due_at(berlin(received))
    assert moment.astimezone(BERLIN).date() == date.fromisoformat(due)
    assert moment.astimezone(BERLIN).time().isoformat() == "23:59:59.999999"


def test_due_date_counts_from_the_day_of_receipt_in_berlin_not_utc() -> None:
    # 23:30 UTC on 30 January is already 31 January in Berlin.
    moment = due_at(datetime(2026, 1, 30, 23, 30, tzinfo=UTC))
    assert moment.astimezone(BERLIN).date() == date(2026, 3, 2)


def test_due_date_is_the_end_of_day_in_berlin_in_summer_and_winter_time() -> None:
    winter = due_at(berlin("2026-01-31T09:00"))
    summer = due_at(berlin("2026-04-02T09:00"))
    assert winter.utcoffset() == timedelta(hours=1)
    assert summer.utcoffset() == timedelta(hours=2)
    assert winter.astimezone(UTC) == datetime(2026, 3, 2, 22, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("received", "months", "until"),
    [
        ("2026-01-31T09:00", 3, "2026-04-30"),  # one month plus an extension of two
        ("2026-01-31T09:00", 2, "2026-03-31"),
        ("2026-05-31T09:00", 3, "2026-08-31"),
        ("2026-06-01T09:00", 3, "2026-09-01"),
    ],
)
def test_extended_due_date_counts_months_from_receipt(received: str, months: int, until: str) -> None:
    assert due_at(berlin(received), months=months).astimezone(BERLIN).date() == date.fromisoformat(until)


@pytest.mark.parametrize(
    ("occurred", "years", "start", "until"),
    [
        ("2024-03-01T12:00", 8, "end_of_year", "2032-12-31"),  # §147 AO: 8 years from the end of the year
        ("2024-12-31T23:30", 8, "end_of_year", "2032-12-31"),
        ("2024-02-29T12:00", 6, "record", "2030-02-28"),
    ],
)
def test_legal_hold_ends_years_after_the_record_or_its_year(occurred: str, years: int, start: str, until: str) -> None:
    assert hold_until(berlin(occurred), years=years, start=start) == date.fromisoformat(until)


def test_hold_is_computed_on_the_berlin_calendar_year() -> None:
    # 23:30 UTC on 31 December is 1 January in Berlin: the next calendar year.
    assert hold_until(datetime(2024, 12, 31, 23, 30, tzinfo=UTC), years=8, start="end_of_year") == date(2033, 12, 31)


@pytest.mark.parametrize(
    ("last_use", "phone", "until"),
    [
        ("2026-05-10T12:00", False, "2029-12-31"),  # end of the third year after last use (§§195, 199 BGB)
        ("2026-05-10T12:00", True, "2031-05-10"),  # phone consent: five years (§7a UWG)
        ("2026-01-01T00:30", False, "2029-12-31"),
    ],
)
def test_consent_proof_is_kept_while_claims_can_be_raised(last_use: str, phone: bool, until: str) -> None:
    assert claims_until(berlin(last_use), phone=phone) == date.fromisoformat(until)


def test_due_date_accepts_any_timezone() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert due_at(datetime(2026, 3, 28, 20, 0, tzinfo=new_york)).astimezone(BERLIN).date() == date(2026, 4, 29)
