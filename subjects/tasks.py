"""Celery tasks of the subjects side: thin, ids only."""

from __future__ import annotations

from celery import shared_task

from consent.selectors import catalogue_snapshot
from subjects.records import children_recheck, records_purge


@shared_task
def purge_expired_records() -> int:
    """Art. 5(1)(e): every source category's `delete_after_days`, from the catalogue."""
    snapshot = catalogue_snapshot(refresh=True)
    limits = {
        (source, category): holding.delete_after_days
        for source, holdings in snapshot.sources.items()
        for category, holding in holdings.items()
    }
    return records_purge(limits=limits)


@shared_task
def recheck_children() -> int:
    return children_recheck()
