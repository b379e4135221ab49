from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.webhooks.subscriptions import webhook_secrets_reseal
from subjects.crypto import DecryptionError
from subjects.keys import keyring
from subjects.reencryption import fields_reencrypt
from subjects.rights.vault import vault_keys_rewrap
from subjects.services import master_key_rotate


class Command(BaseCommand):
    help = (
        "Re-wrap every subject's data key under the first key of ASSENT_MASTER_KEYS (put the new key first, keep "
        "the old ones after it until this finishes), then re-encrypt values from before row binding "
        "(reencrypt_fields). "
        "Resumable: run it again after an interruption."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=500)

    def handle(self, *args: Any, batch: int, **options: Any) -> None:
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        kid = keyring().current_kid
        try:
            count = master_key_rotate(batch=batch, progress=lambda n: self.stdout.write(f"re-wrapped {n} data keys"))
            vaults = vault_keys_rewrap()  # the retention and evidence stores' keys, wrapped the same way
            secrets = webhook_secrets_reseal()  # the webhooks' signing secrets, sealed under the master keyring
        except DecryptionError as exc:
            raise CommandError(f"cannot unwrap a data key: {exc}; is its old master key still configured?") from None
        self.stdout.write(
            f"done: {count} data keys and {vaults} vault keys re-wrapped, {secrets} webhook secrets resealed; all are "
            f"now under master key {kid!r}"
        )
        # Values from before row binding are re-encrypted bound to their row, in the same resumable way.
        try:
            fields = fields_reencrypt(batch=batch)
        except DecryptionError as exc:
            raise CommandError(f"re-encrypting fields stopped: {exc}") from None
        self.stdout.write(f"{fields} older values re-encrypted and bound to their row")
