"""Test data through the real services (factory_boy): catalogues through the builder and `catalogue_apply`, API
clients through `client_create`, subjects with their identifiers and records through `record_ingest` (a subject is
born from its first record, as in production: identifiers blind-indexed and encrypted), consent events through
`consent_record`. Never rows written around the services."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import factory
from django.utils import timezone

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.snapshot import catalogue_forget
from consent.clients import client_create
from consent.models import ApiClient
from consent.services import ConsentCommand, ConsentRecorded, consent_record
from subjects.identity import Reference, normalise, parse_reference
from subjects.models import Subject
from subjects.records import RecordIngested, RecordInput, record_ingest
from tests.catalogue import MERGE_IDENTIFIERS, NEWSLETTER_NOTICE

ALL_SCOPES = list(ApiClient.Scope.values)  # a client that may do everything


def apply_catalogue(document: dict[str, Any]) -> dict[str, Any]:
    """Applies a catalogue built by tests/catalogue.py and returns it. The process's catalogue cache is dropped
    at once: its on_commit clean-up never fires inside a test's transaction."""
    catalogue_apply(document=document)
    catalogue_forget()
    return document


class ApiClientFactory(factory.Factory):
    """An API client through `client_create`; creating one returns `(client, key)`: the key exists only then."""

    class Meta:
        model = ApiClient

    name = factory.Sequence(lambda n: f"client-{n}")
    scopes = factory.LazyFunction(lambda: list(ALL_SCOPES))
    purposes = factory.LazyFunction(list)

    @classmethod
    def _create(cls, model_class: type[ApiClient], *args: Any, **kwargs: Any) -> tuple[ApiClient, str]:
        return client_create(name=kwargs["name"], scopes=list(kwargs["scopes"]), purposes=list(kwargs["purposes"]))


class RecordFactory(factory.Factory):
    """A linked record through `record_ingest`; creating one returns its `RecordIngested`. Identifiers must be
    normalised (`ingest` below does that)."""

    class Meta:
        model = RecordInput

    source = "pos"
    external_id = factory.Sequence(lambda n: f"record-{n}")
    category = "purchases"
    identifiers: Any = ()
    occurred_at = factory.LazyFunction(timezone.now)
    data = factory.LazyFunction(lambda: {"sku": "ROPE-60M"})
    merge_kinds = frozenset(MERGE_IDENTIFIERS)
    profile = False
    purchase = False

    @classmethod
    def _create(cls, model_class: type[RecordInput], *args: Any, **kwargs: Any) -> RecordIngested:
        return record_ingest(record=model_class(*args, **kwargs))


def ingest(
    source: str,
    external_id: str,
    identifiers: Mapping[str, str],
    *,
    category: str = "purchases",
    data: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    profile: bool = False,
    purchase: bool = False,
    merge_kinds: frozenset[str] = frozenset(MERGE_IDENTIFIERS),
) -> RecordIngested:
    """One record from `source`, as POST /api/v1/records would store it. `profile` and `purchase` are the
    category's flags in the catalogue; the identifiers are normalised and sent in the order given."""
    options: dict[str, Any] = {"occurred_at": occurred_at} if occurred_at is not None else {}
    if data is not None:
        options["data"] = dict(data)
    result: RecordIngested = RecordFactory(
        source=source,
        external_id=external_id,
        category=category,
        identifiers=tuple((kind, normalise(kind, value)) for kind, value in identifiers.items()),
        merge_kinds=merge_kinds,
        profile=profile,
        purchase=purchase,
        **options,
    )
    return result


class ConsentFactory(factory.Factory):
    """A consent event through `consent_record` (the subject is found or created from `reference`); creating one
    returns its `ConsentRecorded`. `email=` is a short way to give the reference."""

    class Meta:
        model = ConsentCommand

    class Params:
        email = "anna@example.de"

    reference = factory.LazyAttribute(lambda o: Reference(None, (("email", normalise("email", o.email)),)))
    purpose = "newsletter"
    action = "grant"
    source = "webshop"
    channel = "sms"
    notice_version = factory.LazyAttribute(lambda o: NEWSLETTER_NOTICE if o.action == "grant" else None)

    @classmethod
    def _create(cls, model_class: type[ConsentCommand], *args: Any, **kwargs: Any) -> ConsentRecorded:
        return consent_record(command=model_class(*args, **kwargs))


def grant(subject: Mapping[str, str], *, purpose: str = "newsletter", channel: str = "sms") -> str:
    """A consent granted through `consent_record` (no double opt-in on SMS) for the subject reference as the API
    takes it (`{"email": ...}`, `{"id": ...}`); returns the subject's id."""
    done: ConsentRecorded = ConsentFactory(reference=parse_reference(dict(subject)), purpose=purpose, channel=channel)
    return str(done.subject_id)


def customer(email: str = "kim@example.org") -> Subject:
    """A customer with an e-mail, a phone, a profile, two till receipts and a consent with evidence."""
    tag = email.split("@")[0]
    for n in (1, 2):
        receipt = {"total": f"{n}0.00", "store": "Berlin"}
        done = ingest(
            "pos",
            f"R-{tag}-{n}",
            {"email": email, "phone": "0171 1234567"},
            data=receipt,
            occurred_at=datetime(2026, 1, 10 + n, 10, tzinfo=UTC),
            purchase=True,
        )
    contact_at = datetime(2026, 1, 9, 10, tzinfo=UTC)
    ingest(
        "pos",
        f"C-{tag}",
        {"email": email},
        category="contact",
        data={"name": "Kim"},
        occurred_at=contact_at,
        profile=True,
    )
    ConsentFactory(reference=Reference(done.subject_id, ()), evidence={"ip": "203.0.113.9", "form": "checkout"})
    return Subject.objects.get(pk=done.subject_id)
