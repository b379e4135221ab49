"""/metrics as Prometheus scrapes it: a Bearer token, the text format, counters that move by what happened."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from prometheus_client.parser import text_string_to_metric_families

from tests.api import Api

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with override_settings(ASSENT_METRICS_TOKEN=TOKEN):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_is_not_there_without_a_token_configured() -> None:
    assert Client().get("/metrics").status_code == 404


@override_settings(ASSENT_METRICS_TOKEN=TOKEN)
def test_metrics_refuses_a_missing_or_wrong_token(api: Api) -> None:
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    # An API key, even one with every scope, is not the metrics token.
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {api.key}").status_code == 401


def test_the_counters_move_by_what_the_traffic_did(api: Api, django_capture_on_commit_callbacks: Any) -> None:
    before = scrape()
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            body = {
                "subject": {"email": f"metrics-{n}@example.de"},
                "purpose": "newsletter",
                "channel": "sms",
                "action": "withdraw",
                "source": "webshop",
            }
            assert api.post("/api/v1/consents", body).status_code == 201
    bulk = {
        "purpose": "newsletter",
        "channel": "sms",
        "subjects": [{"email": f"metrics-{n}@example.de"} for n in range(3)] + [{"email": "nobody@example.de"}],
    }
    assert api.post("/api/v1/consents/check-bulk", bulk).status_code == 200
    single = {"subject": {"email": "metrics-0@example.de"}, "purpose": "newsletter", "channel": "sms"}
    assert api.post("/api/v1/consents/check", single).status_code == 200
    assert api.post("/api/v1/consents/check", {**single, "purpose": "nope"}).status_code == 400
    request = {"kind": "access", "subject": {"email": "metrics-0@example.de"}, "channel": "portal", "verified": True}
    with django_capture_on_commit_callbacks(execute=True):  # its task goes to the broker, where no worker takes it
        assert api.post("/api/v1/requests", request).status_code == 202

    after = scrape()

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("assent_consent_events_total", action="withdraw") == 3
    decision = {"purpose": "newsletter", "channel": "sms", "action": "check"}
    assert moved("assent_decisions_total", reason="withdrawn", **decision) == 4  # 3 in the bulk check, 1 single
    assert moved("assent_decisions_total", reason="unknown_subject", **decision) == 1
    route = {"route": "api/v1/consents/check", "method": "POST"}
    assert moved("assent_http_requests_total", status="200", **route) == 1
    assert moved("assent_http_requests_total", status="400", **route) == 1
    assert moved("assent_http_requests_total", route="api/v1/consents", method="POST", status="201") == 3
    assert moved("assent_http_request_duration_seconds_count", **route) == 2
    assert moved("assent_http_requests_total", route="metrics", method="GET", status="200") == 1  # the first scrape
    # Read from the database at scrape time: the request is open.
    assert sum(v for (name, _), v in after.items() if name == "assent_rights_requests_open") == 1
    assert value(after, "assent_rights_requests_overdue") == 0
    assert value(after, "assent_celery_queue_depth", queue=_queue()) >= 1


def _queue() -> str:
    from django.conf import settings

    return str(settings.CELERY_TASK_DEFAULT_QUEUE)


@pytest.mark.django_db(transaction=True)  # a task run closes the database connection (Celery's Django fix-up)
def test_a_failed_task_is_counted_by_its_name() -> None:
    from config.celery import app

    before = scrape()
    task = app.tasks["consent.tasks.purge_webhooks"]
    for _ in range(2):
        assert task.apply(args=("an argument it does not take",), throw=False).failed()

    after = scrape()

    name = "assent_celery_task_failures_total"
    assert value(after, name, task=task.name) - value(before, name, task=task.name) == 2
