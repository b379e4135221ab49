"""The delivery claim (consent.webhooks.delivery.deliveries_claim) under many senders at once: every (event,
endpoint) is sent exactly once and each person's events arrive in order, whichever sender takes which. Run in a
loop of rounds, as every claim's race test is (STYLE.md)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from consent.models import WebhookDelivery
from consent.webhooks.delivery import deliveries_run
from tests.factories import ConsentFactory
from tests.webhook_receiver import Receiver

SENDERS = 8
PEOPLE = 4
CHANGES = 6  # per person: grant, withdraw, grant, ...
ROUNDS = 3


@pytest.mark.django_db(transaction=True)
def test_many_senders_at_once_send_each_delivery_once_and_each_persons_events_in_order(
    catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/a")
    subscribe("/b")
    expected: dict[str, list[str]] = {}
    for round_ in range(ROUNDS):
        # given each person's changes waiting for both endpoints
        for person in range(PEOPLE):
            email = f"race-{round_}-{person}@example.de"
            for change in range(CHANGES):
                action = "grant" if change % 2 == 0 else "withdraw"
                done = ConsentFactory(email=email, action=action)
                expected.setdefault(str(done.subject_id), []).append({"grant": "granted"}.get(action, "withdrawn"))

        # when several senders run at once, in small batches
        start = threading.Barrier(SENDERS)
        failures: list[BaseException] = []

        def sender(start: threading.Barrier = start, failures: list[BaseException] = failures) -> None:
            try:
                start.wait(timeout=30)
                while deliveries_run(batch=3).sent:
                    pass
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        # a sender may stop while another still holds the head of a line; a last run takes what is left
        while deliveries_run().sent:
            pass

        # then every delivery went once, in each person's order
        assert not WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.DELIVERED).exists()
        for path in ("/a", "/b"):
            received = receiver.at(path)
            assert set(Counter(r.msg_id for r in received).values()) == {1}, f"{path}: a message went twice"
            states: dict[str, list[str]] = defaultdict(list)
            for r in received:
                assert r.payload is not None
                states[r.payload["data"]["subject"]].append(r.payload["data"]["state"])
            assert states == expected, path
