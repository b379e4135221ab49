from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from subjects.crypto import DecryptionError
from subjects.reencryption import ColumnProgress, fields_pending, fields_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt values written before row binding so each is bound to its row (ciphertext version 2). "
        "Commits per batch; run it again after an interruption and it resumes. --check only reports, and exits "
        "non-zero while any old value remains."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=500)
        parser.add_argument("--check", action="store_true", help="report old values; exit 1 if any remain")

    def handle(self, *args: Any, batch: int, check: bool, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        if check:
            pending = fields_pending()
            for column, count in pending.items():
                self.stdout.write(f"{column}: {count} values not bound to their row")
            if pending:
                raise CommandError("old ciphertexts remain; run reencrypt_fields")
            self.stdout.write("every readable value is bound to its row")
            return
        try:
            count = fields_reencrypt(batch=batch, progress=self._progress)
        except DecryptionError as exc:
            raise CommandError(f"stopped: {exc}") from None
        self.stdout.write(f"done: {count} values re-encrypted and bound to their row")

    def _progress(self, step: ColumnProgress) -> None:
        self.stdout.write(f"{step.column}: {step.converted} re-encrypted")
