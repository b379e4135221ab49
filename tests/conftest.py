"""Shared fixtures: a catalogue, API clients, an API caller. Real PostgreSQL and Redis (see tests/_env.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from consent.catalogue.snapshot import catalogue_forget
from consent.clients import client_create, clients_forget_cache

ALL_SCOPES = [
    "consent:check",
    "consent:write",
    "consent:read",
    "records:write",
    "profile:read",
    "sends:create",
    "requests:write",
    "requests:read",
    "requests:approve",
]

CATALOGUE: dict[str, Any] = {
    "merge_identifiers": ["email", "customer_number", "loyalty_card", "crm_id"],
    "channels": [
        {"key": "email", "name": "E-Mail"},
        {"key": "sms", "name": "SMS"},
        {"key": "post", "name": "Post"},
        {"key": "push", "name": "Push"},
        {"key": "web", "name": "Website"},
        {"key": "phone", "name": "Telefon"},
    ],
    "data_categories": [
        {"key": "contact", "name": "Contact data", "profile": True},
        {"key": "purchases", "name": "Purchases", "purchase": True},
    ],
    "purposes": [
        {
            "key": "newsletter",
            "name": "Newsletter",
            "legal_basis": "consent",
            "marketing": True,
            "channels": ["email", "sms", "push"],
            "data_categories": ["contact"],
            "double_opt_in": ["email"],
            "consent_valid_days": 730,
            "notice": {
                "version": "2026-01",
                "requires_reconsent": False,
                "texts": {"de": "Wir senden Ihnen unseren Newsletter.", "en": "We send you our newsletter."},
            },
        },
        {
            "key": "offers",
            "name": "Offers by post",
            "legal_basis": "legitimate_interest",
            "marketing": True,
            "channels": ["post", "email"],
            "uwg_7_3": True,
            "data_categories": ["contact", "purchases"],
        },
        {
            "key": "order-updates",
            "name": "Order updates",
            "legal_basis": "contract",
            "marketing": False,
            "channels": ["email", "sms"],
            "data_categories": ["contact", "purchases"],
        },
    ],
    "sources": [
        {
            "key": "pos",
            "name": "Store tills",
            "system_of_record": False,
            "categories": {
                "contact": {"delete_after_days": 1095},
                "purchases": {
                    "delete_after_days": 3650,
                    "legal_hold": {"years": 8, "from": "end_of_year", "law": "§147 AO, §257 HGB"},
                },
            },
        },
    ],
}


@pytest.fixture(autouse=True)
def _fresh_process_caches() -> Iterator[None]:
    """Per-process caches (catalogue, API keys) and the shared rate-limit counters start empty in every test."""
    catalogue_forget()
    clients_forget_cache()
    cache.delete_pattern("*")  # this run's keys only (the prefix is per process): never FLUSHDB
    yield
    catalogue_forget()
    clients_forget_cache()


@pytest.fixture
def catalogue(db: None) -> dict[str, Any]:
    from consent.catalogue.apply import catalogue_apply

    document = json.loads(json.dumps(CATALOGUE))
    catalogue_apply(document=document)
    catalogue_forget()
    return document


@pytest.fixture
def make_client(db: None) -> Callable[..., str]:
    counter = iter(range(1_000_000))

    def make(*scopes: str, purposes: tuple[str, ...] = ()) -> str:
        _, key = client_create(
            name=f"client-{next(counter)}", scopes=list(scopes or ALL_SCOPES), purposes=list(purposes)
        )
        return key

    return make


class Api:
    """Calls the API as another service would: JSON in, JSON (or problem details) out."""

    def __init__(self, key: str | None) -> None:
        self.http = APIClient()
        self.key = key

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}
        if self.key:
            out["HTTP_AUTHORIZATION"] = f"Bearer {self.key}"
        return out

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.http.post(path, json.dumps(body), content_type="application/json", **self._headers(headers))

    def post_raw(self, path: str, raw: bytes | str, content_type: str = "application/json") -> Any:
        return self.http.post(path, raw, content_type=content_type, **self._headers(None))

    def get(self, path: str) -> Any:
        return self.http.get(path, **self._headers(None))


@pytest.fixture
def api(catalogue: dict[str, Any], make_client: Callable[..., str]) -> Api:
    return Api(make_client())


@pytest.fixture
def api_for(catalogue: dict[str, Any], make_client: Callable[..., str]) -> Callable[..., Api]:
    def build(*scopes: str, purposes: tuple[str, ...] = ()) -> Api:
        return Api(make_client(*scopes, purposes=purposes))

    return build
