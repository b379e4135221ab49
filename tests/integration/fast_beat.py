"""A beat scheduler for the fault tests only (`celery beat -S tests.integration.fast_beat.FastScheduler`): the
product's own schedule (settings.CELERY_BEAT_SCHEDULE), with the entries named in ASSENT_TEST_BEAT_FAST
(comma-separated) run every ASSENT_TEST_BEAT_SECONDS instead of every minute or five. It adds no entry and changes
no task: a safety net that recovers in the test recovers in production, only later. Production never loads it."""

from __future__ import annotations

import os
from typing import Any

from celery.beat import PersistentScheduler


def fast_names() -> set[str]:
    return {name.strip() for name in os.environ.get("ASSENT_TEST_BEAT_FAST", "").split(",") if name.strip()}


class FastScheduler(PersistentScheduler):
    def merge_inplace(self, b: dict[str, Any]) -> None:
        names = fast_names()
        missing = names - set(b)
        if missing:  # a renamed entry must fail the test, not make it wait for a schedule that does not exist
            raise LookupError(f"not in the beat schedule: {sorted(missing)}")
        seconds = float(os.environ.get("ASSENT_TEST_BEAT_SECONDS", "1"))
        super().merge_inplace(
            {key: {**entry, "schedule": seconds} if key in names else entry for key, entry in b.items()}
        )
