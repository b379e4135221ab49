from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from consent.ledger import ledger_verify_all


class Command(BaseCommand):
    help = "Verify every subject's consent chain and chain head; exits non-zero naming each break."

    def handle(self, *args: Any, **options: Any) -> None:
        problems = 0
        for problem in ledger_verify_all():
            problems += 1
            self.stderr.write(str(problem))
        if problems:
            raise CommandError(f"ledger verification failed: {problems} problem(s)")
        self.stdout.write("ledger verified: every chain and chain head is intact")
