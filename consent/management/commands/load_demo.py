"""`make demo`: the demo shop's catalogue, its customers' consents, an admin user and an API client.
Every step is idempotent, so a second `make demo` adds nothing and shows no secret twice."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from config.errors import ConflictError, DomainError
from consent.catalogue.apply import catalogue_apply
from consent.catalogue.reader import catalogue_load_file
from consent.catalogue.snapshot import catalogue_snapshot
from consent.catalogue.spec import CatalogueError
from consent.clients import client_create
from consent.ledger.recording import ConsentCommand
from consent.models import ApiClient
from consent.services import consent_record
from subjects.identity import parse_reference
from subjects.records import RecordInput, record_ingest
from subjects.selectors import subject_resolve

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
ADMIN_USERNAME = "admin"
CLIENT_NAME = "demo"


class Command(BaseCommand):
    help = "Load the demo: catalogue, demo customers and their consents, an admin user and an API client."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = catalogue_apply(document=catalogue_load_file(str(DEMO_DIR / "catalog.json")))
        except CatalogueError as exc:
            for problem in exc.errors:
                self.stderr.write(problem)
            raise CommandError(f"demo catalogue not applied: {len(exc.errors)} problem(s)") from None
        if result.changed:
            self.stdout.write(f"catalogue revision {result.revision_id} applied ({len(result.changes)} changes)")
        else:
            self.stdout.write(f"catalogue unchanged (revision {result.revision_id})")

        try:
            customers, events = self._record_customers(timezone.now())
        except DomainError as exc:
            raise CommandError(f"demo customers: {exc.field + ': ' if exc.field else ''}{exc.detail}") from None
        if customers:
            self.stdout.write(f"{customers} demo customers added with {events} consent events")
        else:
            self.stdout.write("demo customers are there already; nothing added")

        password = self._create_admin()
        key = self._create_client()
        self._summary(password, key)

    def _record_customers(self, now: datetime) -> tuple[int, int]:
        """Each customer's events, oldest first, unless the customer is known already (then none of them)."""
        data = json.loads((DEMO_DIR / "customers.json").read_text(encoding="utf-8"))
        customers = events = 0
        for index, customer in enumerate(data["customers"]):
            reference = parse_reference(customer["identifiers"], field=f"customers[{index}].identifiers")
            if subject_resolve(reference=reference) is not None:
                continue
            for event in sorted(customer["events"], key=lambda e: -e["days_ago"]):
                occurred_at = now - timedelta(days=event["days_ago"])
                evidence = dict(event.get("evidence", {}))
                if event["action"] == "confirm":
                    # The data says how the shop confirmed; when is relative to today, as every demo date.
                    evidence.setdefault("confirmed_at", occurred_at.isoformat())
                command = ConsentCommand(
                    reference=reference,
                    purpose=event["purpose"],
                    action=event["action"],
                    source="import",
                    channel=event.get("channel"),
                    notice_version=event.get("notice_version"),
                    occurred_at=occurred_at,
                    evidence=evidence,
                )
                consent_record(command=command, internal=False)
                events += 1
            for number, record in enumerate(customer.get("records", [])):
                record_ingest(record=_record_input(record, now, field=f"customers[{index}].records[{number}]"))
            customers += 1
        return customers, events

    def _create_admin(self) -> str | None:
        """The new admin's password, shown this once; None when the user exists."""
        users = get_user_model()._default_manager
        if users.filter(username=ADMIN_USERNAME).exists():
            return None
        password = secrets.token_urlsafe(12)
        users.create_superuser(ADMIN_USERNAME, email="", password=password)
        return password

    def _create_client(self) -> str | None:
        """The new client's key, shown this once (only its digest is stored); None when the client exists."""
        try:
            _client, key = client_create(name=CLIENT_NAME, scopes=list(ApiClient.Scope.values), purposes=[])
        except ConflictError:
            return None
        return key

    @staticmethod
    def _remembered(password: str | None, key: str | None) -> tuple[str | None, str | None]:
        """The zero-setup demo remembers its own login in a git-ignored file (the database keeps only a hash of
        the key), so that every `make demo` can print it. Never outside the demo."""
        if not settings.DEMO:
            return password, key
        path = Path(settings.VAR_DIR) / "demo-login.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if password is not None:
            stored["password"] = password
        if key is not None:
            stored["key"] = key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored))
        path.chmod(0o600)
        return password or stored.get("password"), key or stored.get("key")

    def _summary(self, password: str | None, key: str | None) -> None:
        password, key = self._remembered(password, key)
        base = settings.ASSENT_BASE_URL
        write = self.stdout.write
        write("")
        write("Assent demo is ready:")
        write(f"  Portal:          {base}/portal/")
        write(f"  Admin:           {base}/admin/")
        write(f"  API docs:        {base}/api/docs/")
        write(f"  OpenAPI schema:  {base}/api/schema/")
        if password is not None:
            write(f"  Admin login:     {ADMIN_USERNAME} / {password}")
        else:
            write(
                f"  Admin login:     user '{ADMIN_USERNAME}' exists; set a new password with "
                f"`python manage.py changepassword {ADMIN_USERNAME}`"
            )
        if key is not None:
            write(f"  API key:         {key}   (client '{CLIENT_NAME}', every scope)")
            write("  Try it:")
            write(
                f"    curl -s -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' "
                f'-d \'{{"subject": {{"email": "anna.becker@example.org"}}, "purpose": "newsletter", '
                f'"channel": "email"}}\' {base}/api/v1/consents/check'
            )
        else:
            write(
                f"  API key:         client '{CLIENT_NAME}' exists; its key was shown when it was created (only a "
                "digest is stored). Make another with `python manage.py create_api_client NAME --scope consent:check`"
            )


def _record_input(record: dict[str, Any], now: datetime, *, field: str) -> RecordInput:
    """A demo customer's linked record (customers.json), as POST /api/v1/records would store it: flags, merge rules
    and identifiers from the catalogue; its date relative to today, as every demo date."""
    snapshot = catalogue_snapshot()
    category = record["category"]
    return RecordInput(
        source=record["source"],
        external_id=record["external_id"],
        category=category,
        identifiers=parse_reference(record["identifiers"], field=f"{field}.identifiers").identifiers,
        occurred_at=now - timedelta(days=record["days_ago"]),
        data=record["data"],
        merge_kinds=snapshot.merge_identifiers,
        one_per_person=snapshot.one_per_person,
        merge_order=snapshot.merge_order,
        profile=snapshot.categories.get(category, False),
        purchase=category in snapshot.purchase_categories,
    )
