"""Celery tasks of the subjects side: thin, ids only."""

from __future__ import annotations

from celery import shared_task

from consent.catalogue.snapshot import catalogue_snapshot
from subjects.ports import HoldingFacts
from subjects.profile import children_recheck
from subjects.records import records_purge


@shared_task
def purge_expired_records() -> int:
    """Art. 5(1)(e): every source category's `delete_after_days`, from the catalogue."""
    snapshot = catalogue_snapshot(refresh=True)
    holdings = {
        (source, category): HoldingFacts(
            delete_after_days=holding.delete_after_days,
            hold_years=holding.legal_hold_years,
            hold_from=holding.legal_hold_from,
            hold_law=holding.legal_hold_law,
        )
        for source, held in snapshot.sources.items()
        for category, holding in held.items()
    }
    return records_purge(holdings=holdings)


@shared_task
def recheck_children() -> int:
    return children_recheck()
