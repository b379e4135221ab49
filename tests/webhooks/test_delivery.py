"""Delivery of the outbox to a real receiver (tests/webhook_receiver.py) that verifies every signature with
`standardwebhooks`: acknowledgement, retries with backoff, dead letters and their replay, order per subject."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from consent.models import WebhookDelivery, WebhookEvent
from consent.webhooks.delivery import (
    RETRY_WINDOW,
    UNREACHABLE,
    deliveries_replay_dead,
    deliveries_run,
    delivery_replay,
    retry_delay,
    webhooks_purge,
)
from consent.webhooks.subscriptions import subscription_create, subscription_end
from tests.factories import ApiClientFactory, ConsentFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db
Status = WebhookDelivery.Status


def time_passes(seconds: float = 24 * 3600) -> None:
    """What a retry waits for: every pending delivery's next attempt falls due (the clock moved on)."""
    WebhookDelivery.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def delays(delivery: WebhookDelivery) -> float:
    assert delivery.last_attempt_at is not None
    return (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()


# ---------------------------------------------------------------------------------------------------------
# Signed, acknowledged, once
# ---------------------------------------------------------------------------------------------------------
def test_a_withdrawal_reaches_the_subscriber_signed_and_in_the_standard_webhooks_format(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/crm")
    granted = ConsentFactory(email="ada@example.de")
    withdrawn = ConsentFactory(email="ada@example.de", action="withdraw")

    result = deliveries_run()

    assert (result.sent, result.delivered) == (2, 2)
    first, second = receiver.at("/crm")
    # both signatures verified
    assert first.payload is not None
    assert second.payload is not None
    assert first.payload["type"] == "consent.changed"
    assert first.payload["data"] == {
        "subject": str(granted.subject_id),
        "purpose": "newsletter",
        "channel": "sms",
        "state": "granted",
        "event": str(granted.event_id),
    }
    assert second.payload["data"]["state"] == "withdrawn"
    assert second.payload["data"]["event"] == str(withdrawn.event_id)
    assert first.payload["timestamp"].endswith("Z")
    assert first.msg_id != second.msg_id
    # ids and keys only: no identifier's value travels
    assert "ada@example.de" not in str(first.payload) + str(second.payload)
    assert deliveries_run().sent == 0
    assert len(receiver.at("/crm")) == 2


def test_a_change_nobody_subscribed_to_writes_nothing_to_the_outbox(catalogue: dict[str, Any]) -> None:
    ConsentFactory(email="bo@example.de")
    assert not WebhookEvent.objects.exists()


def test_a_subscription_hears_only_the_types_it_asked_for(subscribe: Callable[..., Any], receiver: Receiver) -> None:
    subscribe("/all")
    subscribe("/erasures", events=("subject.erased",))
    ConsentFactory(email="cy@example.de")
    deliveries_run()
    assert len(receiver.acknowledged("/all")) == 1
    assert receiver.at("/erasures") == []


def test_a_wrong_secret_is_not_an_acknowledgement(subscribe: Callable[..., Any], receiver: Receiver) -> None:
    subscribe("/crm")
    receiver.secrets["/crm"] = "whsec_" + "A" * 43 + "="  # the receiver holds another secret
    ConsentFactory(email="di@example.de")
    deliveries_run()
    (received,) = receiver.at("/crm")
    assert received.payload is None
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == (Status.PENDING, 1, 400)


# ---------------------------------------------------------------------------------------------------------
# Retries and backoff
# ---------------------------------------------------------------------------------------------------------
def test_the_retry_schedule_is_5s_30s_2min_then_doubling_up_to_an_hour() -> None:
    nominal = [retry_delay(n, rng=lambda: 0.5).total_seconds() for n in range(1, 12)]
    assert nominal == [5, 30, 120, 240, 480, 960, 1920, 3600, 3600, 3600, 3600]


@pytest.mark.parametrize("failures", [1, 2, 3, 6, 20])
def test_each_retry_is_jittered_within_a_fifth_of_its_nominal_delay(failures: int) -> None:
    nominal = retry_delay(failures, rng=lambda: 0.5).total_seconds()
    low = retry_delay(failures, rng=lambda: 0.0).total_seconds()
    high = retry_delay(failures, rng=lambda: 0.999999).total_seconds()
    assert low == pytest.approx(nominal * 0.8)
    assert high == pytest.approx(nominal * 1.2, rel=1e-5)
    assert len({retry_delay(failures).total_seconds() for _ in range(20)}) > 1


def test_a_receiver_failing_three_times_gets_the_event_once_more_after_each_failure_then_never_again(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/flaky")
    receiver.answers["/flaky"] = [500, 503, 502, 204]
    ConsentFactory(email="ed@example.de")

    waits = []
    for _ in range(3):
        deliveries_run()
        assert deliveries_run().sent == 0  # not before its time
        delivery = WebhookDelivery.objects.get()
        waits.append(delays(delivery))
        time_passes()
    deliveries_run()

    assert [r.status for r in receiver.at("/flaky")] == [500, 503, 502, 204]
    assert len({r.msg_id for r in receiver.at("/flaky")}) == 1  # the same message each time
    assert 4 <= waits[0] <= 6
    assert 24 <= waits[1] <= 36
    assert 96 <= waits[2] <= 144
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_status) == (Status.DELIVERED, 4, 204)
    time_passes()
    assert deliveries_run().sent == 0
    assert len(receiver.at("/flaky")) == 4


def test_an_endpoint_that_is_down_is_retried_and_marked_failing_until_it_answers(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscription = subscribe("/down")
    receiver.answers["/down"] = [500, 200]
    ConsentFactory(email="fa@example.de")
    deliveries_run()
    subscription.refresh_from_db()
    assert subscription.failing_since is not None
    time_passes()
    deliveries_run()
    subscription.refresh_from_db()
    assert subscription.failing_since is None


# ---------------------------------------------------------------------------------------------------------
# Dead letters and replay
# ---------------------------------------------------------------------------------------------------------
def test_after_24_hours_of_failures_a_delivery_is_dead_and_a_replay_sends_it_again(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/broken")
    receiver.answers["/broken"] = [500]
    ConsentFactory(email="gu@example.de")
    deliveries_run()
    # the first attempt was almost a day ago
    WebhookDelivery.objects.update(first_attempt_at=timezone.now() - RETRY_WINDOW + timedelta(seconds=2))
    time_passes()
    deliveries_run()
    dead = WebhookDelivery.objects.get()
    assert (dead.status, dead.attempts) == (Status.DEAD, 2)
    time_passes()
    assert deliveries_run().sent == 0

    # The endpoint is repaired; the DPO replays the dead letter
    receiver.answers["/broken"] = [200]
    assert delivery_replay(delivery_id=dead.pk) == 1
    deliveries_run()
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (Status.DELIVERED, 1)
    assert [r.status for r in receiver.at("/broken")] == [500, 500, 200]
    assert delivery_replay(delivery_id=dead.pk) == 0  # only a dead letter is replayed


def test_every_dead_letter_of_an_endpoint_is_replayed_at_once_in_order(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscription = subscribe("/broken")
    other = subscribe("/fine")
    ConsentFactory(email="ha@example.de")
    ConsentFactory(email="ha@example.de", action="withdraw")
    ConsentFactory(email="io@example.de")
    WebhookDelivery.objects.filter(subscription=subscription).update(status=Status.DEAD)

    assert deliveries_replay_dead(subscription_id=subscription.pk) == 3
    while deliveries_run().sent:
        pass

    assert len(receiver.acknowledged("/broken")) == 3
    assert len(receiver.acknowledged("/fine")) == 3
    assert not WebhookDelivery.objects.exclude(status=Status.DELIVERED).exists()
    assert deliveries_replay_dead(subscription_id=other.pk) == 0


def test_an_ended_subscription_receives_nothing_more(subscribe: Callable[..., Any], receiver: Receiver) -> None:
    subscription = subscribe("/gone")
    ConsentFactory(email="jo@example.de")
    subscription_end(subscription_id=subscription.pk)
    ConsentFactory(email="jo@example.de", action="withdraw")
    assert deliveries_run().sent == 0
    assert receiver.at("/gone") == []


# ---------------------------------------------------------------------------------------------------------
# Order per subject
# ---------------------------------------------------------------------------------------------------------
def test_a_subjects_later_event_waits_until_its_earlier_one_is_delivered(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/ordered")
    receiver.answers["/ordered"] = [500, 200]
    ConsentFactory(email="ka@example.de")
    ConsentFactory(email="ka@example.de", action="withdraw")

    assert deliveries_run().sent == 1  # Ka's grant fails; her withdrawal waits behind it
    ConsentFactory(email="lu@example.de")
    assert deliveries_run().delivered == 1  # another person's event is not held up
    time_passes()
    deliveries_run()  # now Ka's grant, and only then her withdrawal

    lu_subject = str(WebhookEvent.objects.order_by("pk").values_list("subject_id", flat=True).last())

    def who_what(r: Any) -> tuple[str, str, int]:
        data = (r.payload or {})["data"]
        return ("lu" if data["subject"] == lu_subject else "ka"), data["state"], r.status

    assert [who_what(r) for r in receiver.at("/ordered")] == [
        ("ka", "granted", 500),
        ("lu", "granted", 200),
        ("ka", "granted", 200),
        ("ka", "withdrawn", 200),
    ]


def test_a_dead_earlier_event_no_longer_holds_the_later_ones(subscribe: Callable[..., Any], receiver: Receiver) -> None:
    subscribe("/ordered")
    ConsentFactory(email="mo@example.de")
    ConsentFactory(email="mo@example.de", action="withdraw")
    first = WebhookDelivery.objects.order_by("event_id").first()
    assert first is not None
    WebhookDelivery.objects.filter(pk=first.pk).update(status=Status.DEAD)
    deliveries_run()
    (received,) = receiver.at("/ordered")
    assert (received.payload or {})["data"]["state"] == "withdrawn"


def test_an_endpoint_that_refuses_connections_costs_a_batch_one_try_and_holds_no_other_up(
    subscribe: Callable[..., Any], receiver: Receiver, settings: Any
) -> None:
    settings.ASSENT_WEBHOOK_CONCURRENCY = 1  # one at a time, so the order of the tries is known
    subscribe("/fine")
    client, _key = ApiClientFactory(name="gone", scopes=["webhooks:manage"])
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    gone = subscription_create(client_id=client.pk, url=f"http://127.0.0.1:{port}/hook", events=["*"]).subscription
    for person in range(5):
        ConsentFactory(email=f"vi-{person}@example.de")

    assert deliveries_run().sent == 10
    assert len(receiver.acknowledged("/fine")) == 5
    errors = Counter(WebhookDelivery.objects.filter(subscription=gone).values_list("last_error", flat=True))
    # tried once; the others wait for their next attempt
    assert errors == {"NewConnectionError": 1, UNREACHABLE: 4}
    assert set(WebhookDelivery.objects.filter(subscription=gone).values_list("attempts", "status")) == {
        (1, Status.PENDING)
    }


def test_acknowledged_messages_go_after_30_days_dead_letters_of_live_endpoints_stay(
    subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/kept")
    ConsentFactory(email="wil@example.de")
    ConsentFactory(email="xan@example.de")
    deliveries_run()
    old, dead = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=dead.pk).update(status=Status.DEAD)
    assert webhooks_purge(now=timezone.now() + timedelta(days=29)) == 0
    assert webhooks_purge(now=timezone.now() + timedelta(days=31)) == 1
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [dead.pk]
    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [dead.event_id]
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()


def test_an_endpoint_streaming_an_endless_answer_does_not_hold_the_sender(subscribe: Callable[..., Any]) -> None:
    # an endpoint that acknowledges, then sends body bytes for ever
    stop = threading.Event()

    class Streaming(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            while not stop.is_set():
                try:
                    self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
                except OSError:
                    return

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Streaming)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client, _key = ApiClientFactory(name="streamer", scopes=["webhooks:manage"])
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        subscription_create(client_id=client.pk, url=url, events=["*"])
        ConsentFactory(email="yul@example.de")
        assert deliveries_run().delivered == 1
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
