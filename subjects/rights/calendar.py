"""Deadlines of a rights request (Art. 12(3)): one month after receipt, extendable by two further months.

Regulation (EEC, Euratom) No 1182/71: a period expressed in months ends on the same date of the last month (the
month's last day when that month is shorter), at the end of that day; when it falls on a Saturday or a Sunday it
ends at the end of the next working day. Public holidays are not modelled: they vary by German state."""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
MAX_EXTENSION_MONTHS = 2
# A request due within this window is "due soon": the reminder goes out (reminders.py), the DPO's lists mark it.
DUE_SOON = timedelta(days=7)


def add_months(day: date, months: int) -> date:
    """The same date `months` later; the last day of that month when it is shorter (31 Jan + 1 -> 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def past_weekend(day: date) -> date:
    while day.weekday() >= 5:  # Saturday, Sunday
        day += timedelta(days=1)
    return day


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59, 999999), tzinfo=BERLIN)


def due_at(received_at: datetime, *, months: int = 1) -> datetime:
    """The end of the period of `months` months that starts when the request is received (Europe/Berlin)."""
    received = received_at.astimezone(BERLIN).date()
    return end_of_day(past_weekend(add_months(received, months)))


def hold_until(occurred_at: datetime, *, years: int, start: str) -> date:
    """The end of a legal retention period: `years` from the end of the record's calendar year (§147 AO, §257 HGB:
    `end_of_year`) or from the record itself (`record`)."""
    day = occurred_at.astimezone(BERLIN).date()
    if start == "end_of_year":
        return date(day.year + years, 12, 31)
    return add_months(day, 12 * years)


def claims_until(last_use: datetime, *, phone: bool) -> date:
    """How long consent proof is kept: to the end of the third year after its last use (§§195, 199 BGB); phone
    consent five years after it was given or last used (§7a UWG), whichever is later."""
    day = last_use.astimezone(BERLIN).date()
    until = date(day.year + 3, 12, 31)
    if phone:
        until = max(until, add_months(day, 60))
    return until
