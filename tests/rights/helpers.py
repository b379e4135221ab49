"""Seeding people for the rights tests and benchmarks: records through the real ingest service (tests/factories.py),
or (for thousands of records) bulk rows encrypted exactly as the ingest service encrypts them."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.test import TestCase
from django.utils import timezone

from subjects.columns import RECORD_DATA
from subjects.keys import data_key, encrypt_field
from subjects.models import LinkedRecord, RightsRequest, RightsRequestPart, Subject
from subjects.rights.context import HandlerLookup
from subjects.rights.registry import handler_for
from subjects.rights.workflow import part_run
from tests.catalogue import FIVE_SOURCES, PURCHASE_CATEGORIES, SOURCE_CATEGORY
from tests.factories import ingest


@dataclass
class Person:
    subject_id: uuid.UUID
    email: str
    secrets: list[str] = field(default_factory=list)  # every value that must vanish on erasure


def recorded_at() -> datetime:
    """When the rights tests' records happened: three days before the test."""
    return timezone.now() - timedelta(days=3)


def phone_of(tag: str) -> str:
    return f"+49170{int(hashlib.sha256(tag.encode()).hexdigest(), 16) % 10**7:07d}"


def seed_person(
    tag: str, *, records_per_source: int = 2, sources: Iterable[str] = FIVE_SOURCES, bulk: bool = False
) -> Person:
    """A person with an e-mail, a phone, a customer number, a profile and records in each source. Every value
    carries `tag`, so a scan for the tag finds any copy."""
    email = f"{tag}@example.de"
    customer = f"C-{tag}"
    name = f"Name-{tag}"
    phone = phone_of(tag)
    subject_id = ingest(
        "shop",
        f"profile-{tag}",
        {"customer_number": customer, "email": email, "phone": phone},
        category="contact",
        data={"name": name, "street": f"Street-{tag} 1"},
        occurred_at=recorded_at(),
        profile=True,
    ).subject_id
    secrets = [email, customer, name, f"Street-{tag}", phone]
    for source in sources:
        category = SOURCE_CATEGORY[source]
        if bulk:
            records_bulk(subject_id, source, category, records_per_source, tag)
        else:
            for i in range(records_per_source):
                ingest(
                    source,
                    f"{source}-{tag}-{i}",
                    {"customer_number": customer},
                    category=category,
                    data={"item": f"item-{tag}-{source}-{i}", "amount": i},
                    occurred_at=recorded_at(),
                    purchase=category in PURCHASE_CATEGORIES,
                )
        secrets.append(f"item-{tag}-{source}-0")
    return Person(subject_id, email, secrets)


def records_bulk(subject_id: uuid.UUID, source: str, category: str, count: int, tag: str, batch: int = 5000) -> None:
    subject = Subject.objects.get(pk=subject_id)
    key = data_key(subject)
    now = timezone.now()
    start = datetime(2024, 3, 1, 12, tzinfo=UTC)
    rows = []
    for i in range(count):
        payload = json.dumps({"item": f"item-{tag}-{source}-{i}", "amount": i, "note": "x" * 40}, sort_keys=True)
        row_id = uuid.uuid4()
        rows.append(
            LinkedRecord(
                id=row_id,
                subject_id=subject_id,
                source=source,
                external_id=f"{source}-{tag}-{i}",
                category=category,
                data_enc=encrypt_field(subject, key, RECORD_DATA, payload, row_id=row_id),
                occurred_at=start + timedelta(minutes=i),
                created_at=now,
                updated_at=now,
            )
        )
        if len(rows) >= batch:
            LinkedRecord.objects.bulk_create(rows)
            rows = []
    LinkedRecord.objects.bulk_create(rows)


def drain(request_id: uuid.UUID | str, *, handlers: HandlerLookup = handler_for) -> RightsRequest:
    """Run a request's parts in this process, as a worker would (tests without a worker); what they leave for
    after commit (deleting files) runs too. `handlers`: the registry, or a test's stand-in for some parts."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        for part_id in (
            RightsRequestPart.objects.filter(request_id=request_id).order_by("pk").values_list("pk", flat=True)
        ):
            part_run(part_id=part_id, handlers=handlers)
    return RightsRequest.objects.get(pk=request_id)


def wait_settled(api: Any, request_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/requests/{request_id}").json()
        if body["status"] in ("completed", "failed", "rejected"):
            return body
        time.sleep(0.05)
    raise AssertionError(f"request {request_id} did not settle: {body}")
