"""Shared fixtures: a catalogue, API clients, an API caller. Real PostgreSQL and Redis (see tests/_env.py).
The data behind them: tests/catalogue.py (the catalogue builder), tests/factories.py, tests/api.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from consent.catalogue.snapshot import catalogue_forget
from consent.clients import clients_forget_cache
from consent.models import ApiClient
from consent.webhooks.subscriptions import subscription_create
from tests.api import Api
from tests.catalogue import standard_catalogue
from tests.factories import ALL_SCOPES, ApiClientFactory, apply_catalogue
from tests.security_headers import security_header_problems
from tests.webhook_receiver import Receiver, webhook_receiver


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
    """The standard catalogue (tests/catalogue.py), applied."""
    return apply_catalogue(standard_catalogue())


@pytest.fixture
def make_client(db: None) -> Callable[..., str]:
    """A maker of API clients (every scope unless told), named client-0, client-1, ... in each test."""
    counter = iter(range(1_000_000))

    def make(*scopes: str, purposes: tuple[str, ...] = ()) -> str:
        _, key = ApiClientFactory(name=f"client-{next(counter)}", scopes=list(scopes or ALL_SCOPES), purposes=purposes)
        return key

    return make


@pytest.fixture
def api(catalogue: dict[str, Any], make_client: Callable[..., str]) -> Api:
    return Api(make_client())


@pytest.fixture
def api_for(catalogue: dict[str, Any], make_client: Callable[..., str]) -> Callable[..., Api]:
    def build(*scopes: str, purposes: tuple[str, ...] = ()) -> Api:
        return Api(make_client(*scopes, purposes=purposes))

    return build


@pytest.fixture(autouse=True, scope="session")
def _security_headers_on_every_response() -> Iterator[None]:
    """Every response any test receives through Django's test client (portal, admin, API, errors, redirects)
    carries the security headers: a view or error path that loses them fails the test that met it."""
    original = Client.request

    def checked(self: Client, **request: Any) -> Any:
        response = original(self, **request)
        path = request.get("PATH_INFO", "")
        problems = security_header_problems(path, response)
        assert not problems, f"{request.get('REQUEST_METHOD', 'GET')} {path} -> {response.status_code}: {problems}"
        return response

    Client.request = checked  # type: ignore[method-assign]
    yield
    Client.request = original  # type: ignore[method-assign]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real webhook receiver on loopback (tests/webhook_receiver.py)."""
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def subscribe(db: None, receiver: Receiver) -> Callable[..., Any]:
    """Subscribe a path of the receiver (for a new client unless given one); the receiver learns the secret."""
    counter = iter(range(1000))

    def make(path: str, events: tuple[str, ...] = ("*",), client: ApiClient | None = None) -> Any:
        if client is None:
            client, _key = ApiClientFactory(name=f"hooked-{next(counter)}", scopes=["webhooks:manage"])
        created = subscription_create(client_id=client.pk, url=receiver.url(path), events=list(events))
        receiver.secrets[path] = created.secret
        return created.subscription

    return make
