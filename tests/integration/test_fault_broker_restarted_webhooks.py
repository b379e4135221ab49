"""The broker (Redis) restarted while webhooks are queued: nothing is lost (issue 11's fault, for issue 13's outbox).

A Redis of the test's own, keeping nothing on disk, is the broker of gunicorn, two workers and beat. With no worker
running, consent writes over the HTTP API queue a delivery task each (enqueued when their outbox rows commit). The
queue is checked to hold them, Redis is killed and started empty, then two workers and beat start. The outbox rows
are the source of truth: beat's `deliver-webhooks` sweep (run every second here, every 5 s in production) finds
every due delivery. A real receiver on loopback verifies each signature and counts: every (event, endpoint) is
acknowledged exactly once, in each person's order, though one endpoint fails its first answer (a retry after ~5 s)."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from consent.models import WebhookDelivery, WebhookEvent
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue
from tests.integration.fast_beat import FastScheduler
from tests.integration.faults import report_faults
from tests.integration.processes import Beat, Gunicorn, RedisServer, Worker, wait_for
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]

QUEUE = os.environ["CELERY_TASK_DEFAULT_QUEUE"]
PEOPLE = 6
ACTIONS = ("grant", "withdraw", "grant")
STATES = ["granted", "withdrawn", "granted"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def test_webhooks_queued_when_the_broker_restarts_are_each_delivered_exactly_once_in_order(
    broker: RedisServer, tmp_path: Path, make_client: Callable[..., str], receiver: Receiver
) -> None:
    apply_catalogue(standard_catalogue())
    env = {"CELERY_BROKER_URL": broker.url, "ASSENT_WEBHOOK_ALLOW_LOOPBACK": "1"}
    gunicorn = Gunicorn(tmp_path / "gunicorn.log", workers=1, env=env)
    workers = [Worker(tmp_path / f"mail{n}", tmp_path / f"worker{n}.log", env=env) for n in (1, 2)]
    scheduler = f"{FastScheduler.__module__}.{FastScheduler.__name__}"
    beat_env = {**env, "ASSENT_TEST_BEAT_FAST": "deliver-webhooks", "ASSENT_TEST_BEAT_SECONDS": "1"}
    beat = Beat(tmp_path / "beat.log", env=beat_env, scheduler=scheduler)
    gunicorn.start()
    try:
        http = httpx.Client(base_url=gunicorn.base, headers={"Authorization": f"Bearer {make_client()}"}, timeout=30)

        # given two connected systems subscribed through the API, one of which fails its first answer
        for path in ("/crm", "/shop"):
            answer = http.post("/api/v1/webhooks", json={"url": receiver.url(path), "events": ["*"]})
            assert answer.status_code == 201, answer.text
            receiver.secrets[path] = answer.json()["secret"]
        receiver.answers["/shop"] = [503, 200]

        # and consent changes of several people written while no worker runs
        subjects: dict[str, int] = {}
        for person in range(PEOPLE):
            for action in ACTIONS:
                body: dict[str, Any] = {
                    "subject": {"email": f"hook-{person}@example.de"},
                    "purpose": "newsletter",
                    "channel": "sms",
                    "action": action,
                    "source": "webshop",
                }
                if action == "grant":
                    body["notice_version"] = "2026-01"
                answer = http.post("/api/v1/consents", json=body)
                assert answer.status_code == 201, answer.text
                subjects[answer.json()["subject"]] = person
        events = PEOPLE * len(ACTIONS)
        assert WebhookEvent.objects.count() == events
        assert redis.Redis.from_url(broker.url).llen(QUEUE) == events  # one delivery task per committed write

        # when the broker restarts, losing every message it held, and then two workers and beat start
        broker.kill()
        broker.start()
        assert redis.Redis.from_url(broker.url).llen(QUEUE) == 0
        for worker in workers:
            worker.start()
        beat.start()

        # then every event reaches every endpoint, acknowledged once, in each person's order
        def all_delivered() -> bool:
            return not WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.DELIVERED).exists()

        wait_for(all_delivered, timeout=90, every=0.2, what="every webhook delivered")
    finally:
        for process in (beat, *workers, gunicorn):
            process.stop()

    assert WebhookDelivery.objects.count() == 2 * events
    for path in ("/crm", "/shop"):
        acknowledged = receiver.acknowledged(path)
        assert all(r.payload is not None for r in receiver.at(path)), "every message carried a valid signature"
        per_message = Counter(r.msg_id for r in acknowledged)
        assert len(per_message) == events
        assert set(per_message.values()) == {1}, f"{path}: a message acknowledged twice"
        states: dict[str, list[str]] = defaultdict(list)
        for r in acknowledged:
            assert r.payload is not None
            states[r.payload["data"]["subject"]].append(r.payload["data"]["state"])
        assert set(states) == set(subjects)
        assert all(sequence == STATES for sequence in states.values()), f"{path}: out of order: {dict(states)}"
    assert len(receiver.at("/shop")) == events + 1  # the one refused answer, retried once
    report_faults("broker_restarted_webhooks", faults_injected=1, messages_lost=events, deliveries=2 * events)
