from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consent.ledger.verification import verification_run
from consent.models import LedgerVerification


class Command(BaseCommand):
    help = (
        "Verify every subject's consent chain and chain head, and re-project every consent state from its chain; "
        "exits non-zero naming each break and each state row that differs, is missing or has no chain."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        run, result = verification_run(kind=LedgerVerification.Kind.FULL)
        for problem in result.problems:
            self.stderr.write(str(problem))
        if run.problem_count:
            raise CommandError(f"ledger verification failed: {run.problem_count} problem(s)")
        self.stdout.write(
            f"ledger verified: {run.subjects_checked} subject(s), every chain, chain head and consent state intact"
        )
