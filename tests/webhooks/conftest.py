"""Fixtures of the webhook tests: a real receiver on loopback, and subscribing it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from consent.models import ApiClient
from consent.webhooks.subscriptions import subscription_create
from tests.factories import ApiClientFactory
from tests.webhook_receiver import Receiver, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
def subscribe(catalogue: dict[str, Any], receiver: Receiver) -> Callable[..., Any]:
    """Subscribe a path of the receiver (for a new client unless given one); the receiver learns the secret."""
    counter = iter(range(1000))

    def make(path: str, events: tuple[str, ...] = ("*",), client: ApiClient | None = None) -> Any:
        if client is None:
            client, _key = ApiClientFactory(name=f"hooked-{next(counter)}", scopes=["webhooks:manage"])
        created = subscription_create(client_id=client.pk, url=receiver.url(path), events=list(events))
        receiver.secrets[path] = created.secret
        return created.subscription

    return make
