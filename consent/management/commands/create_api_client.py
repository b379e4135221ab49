from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.errors import DomainError
from consent.clients import client_create


class Command(BaseCommand):
    help = "Create an API client; prints its key as the last line (only a SHA-256 of it is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--scope", action="append", default=[], help="repeat for each scope")
        parser.add_argument("--purpose", action="append", default=[], help="restrict the client to these purposes")

    def handle(self, *args: Any, name: str, scope: list[str], purpose: list[str], **options: Any) -> None:
        try:
            client, key = client_create(name=name, scopes=scope, purposes=purpose)
        except DomainError as exc:
            raise CommandError(f"--{exc.field}: {exc.detail}" if exc.field else exc.detail) from None
        self.stdout.write(f"Created API client {client.name!r} with scopes {', '.join(client.scopes)}.")
        if client.purposes:
            self.stdout.write(f"It may act only for purposes: {', '.join(client.purposes)}.")
        self.stdout.write("The key is shown this once; store it now:")
        self.stdout.write(key)
