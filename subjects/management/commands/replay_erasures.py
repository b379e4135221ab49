"""`manage.py replay_erasures --since DATE`: re-apply logged erasures after restoring a database backup."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subjects.rights.calendar import BERLIN
from subjects.rights.erasure_log import erasure_log_read
from subjects.rights.replay import erasure_replay


class Command(BaseCommand):
    help = (
        "Re-apply every erasure logged since DATE (YYYY-MM-DD, Europe/Berlin) to this database, e.g. after "
        "restoring a backup. Reads the erasure log file (ASSENT_ERASURE_LOG) and the erasure-log table."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", required=True, help="first day to replay, YYYY-MM-DD")
        parser.add_argument("--log", help="the erasure log file (default: settings.ASSENT_ERASURE_LOG)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            since = datetime.combine(date.fromisoformat(options["since"]), time.min, tzinfo=BERLIN)
        except ValueError:
            raise CommandError(f"--since: {options['since']!r} is not a date (YYYY-MM-DD)") from None
        path = Path(options["log"]) if options.get("log") else None
        if path is not None and not path.exists():
            raise CommandError(f"--log: {path} does not exist")
        entries = erasure_log_read(since=since, path=path)
        counts: dict[str, int] = {}
        for request_id, subject_id, erased_at in entries:
            outcome = erasure_replay(subject_id=subject_id, request_id=request_id)
            counts[outcome] = counts.get(outcome, 0) + 1
            self.stdout.write(f"{erased_at:%Y-%m-%d %H:%M} subject {subject_id}: {outcome}")
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing logged"
        self.stdout.write(f"{len(entries)} erasure(s) since {since:%Y-%m-%d}: {summary}")
