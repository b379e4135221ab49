from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.reader import catalogue_load_file
from consent.catalogue.spec import CatalogueError


class Command(BaseCommand):
    help = "Load or update the catalogue from a JSON file (format in API.md). Idempotent and never destructive."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the catalogue file, JSON")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        try:
            result = catalogue_apply(document=catalogue_load_file(file))
        except CatalogueError as exc:
            for problem in exc.errors:
                self.stderr.write(problem)
            raise CommandError(f"catalogue not applied: {len(exc.errors)} problem(s)") from None
        for change in result.changes:
            self.stdout.write(change)
        if result.changed:
            self.stdout.write(f"catalogue revision {result.revision_id} applied")
        else:
            self.stdout.write(f"catalogue unchanged (revision {result.revision_id})")
