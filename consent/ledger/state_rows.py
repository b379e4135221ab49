"""The state projection's rows and the facts they hold: one mapping each way, used by every writer of ConsentState."""

from __future__ import annotations

from typing import Any

from consent.ledger import projection
from consent.models import ConsentState


def fact_of(row: ConsentState) -> projection.Fact:
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


# A state row's fields that hold its fact: what state_values writes and verification compares.
STATE_FIELDS = ("status", "notice_version", "since", "granted_at", "confirmed", "actor", "suppressed", "seq")


def state_values(fact: projection.Fact) -> dict[str, Any]:
    """A ConsentState row's fields for a fact (without the event it was projected from)."""
    return {
        "status": fact.status,
        "notice_version": fact.notice_version,
        "since": fact.since,
        "granted_at": fact.granted_at,
        "confirmed": fact.confirmed,
        "actor": fact.actor,
        "suppressed": fact.suppressed,
        "seq": fact.seq,
    }
