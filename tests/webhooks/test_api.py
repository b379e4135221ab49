"""POST, GET and DELETE /api/v1/webhooks (scope webhooks:manage): subscribe, list, end; URL rules (API.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import override_settings
from standardwebhooks.webhooks import Webhook

from consent.models import WebhookSubscription
from consent.webhooks.delivery import deliveries_run
from tests.api import Api, assert_problem
from tests.factories import ConsentFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db
HOOKS = "/api/v1/webhooks"


def test_a_client_subscribes_sees_the_secret_once_and_receives_signed_events(
    api_for: Callable[..., Api], receiver: Receiver
) -> None:
    api = api_for("webhooks:manage")
    response = api.post(HOOKS, {"url": receiver.url("/hook"), "events": ["consent.changed"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["url"] == receiver.url("/hook")
    assert body["events"] == ["consent.changed"]
    assert body["secret"].startswith("whsec_")
    Webhook(body["secret"])  # a secret the standard library accepts
    receiver.secrets["/hook"] = body["secret"]

    listed = api.get(HOOKS).json()["results"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "secret" not in listed[0]
    # the secret is kept sealed, not in clear
    assert body["secret"].encode() not in bytes(WebhookSubscription.objects.get().secret_sealed)

    ConsentFactory(email="pia@example.de")
    deliveries_run()
    (received,) = receiver.acknowledged("/hook")
    assert received.payload is not None


def test_a_client_lists_and_ends_only_its_own_subscriptions(api_for: Callable[..., Api], receiver: Receiver) -> None:
    mine, theirs = api_for("webhooks:manage"), api_for("webhooks:manage")
    own = mine.post(HOOKS, {"url": receiver.url("/a"), "events": ["*"]}).json()
    other = theirs.post(HOOKS, {"url": receiver.url("/b"), "events": ["*"]}).json()
    assert [h["id"] for h in mine.get(HOOKS).json()["results"]] == [own["id"]]

    assert_problem(mine.http.delete(f"{HOOKS}/{other['id']}", **mine._headers(None)), 404, "not_found")
    assert mine.http.delete(f"{HOOKS}/{own['id']}", **mine._headers(None)).status_code == 204
    assert mine.get(HOOKS).json()["results"] == []
    assert_problem(mine.http.delete(f"{HOOKS}/{own['id']}", **mine._headers(None)), 404, "not_found")
    assert [h["id"] for h in theirs.get(HOOKS).json()["results"]] == [other["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["*"]}, "url"),
        ({"url": "https://93.184.216.34/hook"}, "events"),
        ({"url": "https://93.184.216.34/hook", "events": []}, "events"),
        ({"url": "https://93.184.216.34/hook", "events": ["consent.deleted"]}, "events"),
        ({"url": "https://93.184.216.34/hook", "events": "consent.changed"}, "events"),
    ],
)
def test_bad_input_is_a_problem(api_for: Callable[..., Api], body: dict[str, Any], field: str) -> None:
    assert_problem(api_for("webhooks:manage").post(HOOKS, body), 400, "invalid", field)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hook",
        "http://93.184.216.34/hook",  # plain http to a public address
        "https://10.1.2.3/hook",  # private
        "https://192.168.0.10/hook",
        "https://172.16.5.4/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",  # unique local
        "https://[::ffff:10.0.0.1]/hook",  # private, IPv4-mapped
        "https://0.0.0.0/hook",
        "https://user:pw@93.184.216.34/hook",
        "https://no-such-host.invalid/hook",
        "https:///hook",
    ],
)
def test_a_url_that_may_not_receive_webhooks_is_refused(api_for: Callable[..., Api], url: str) -> None:
    assert_problem(api_for("webhooks:manage").post(HOOKS, {"url": url, "events": ["*"]}), 400, "webhook_url_refused")
    assert not WebhookSubscription.objects.exists()


@override_settings(ASSENT_WEBHOOK_ALLOW_LOOPBACK=False)
@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://[::1]/hook"])
def test_loopback_is_refused_unless_allowed_for_development(api_for: Callable[..., Api], url: str) -> None:
    assert_problem(api_for("webhooks:manage").post(HOOKS, {"url": url, "events": ["*"]}), 400, "webhook_url_refused")


def test_a_public_https_address_is_accepted(api_for: Callable[..., Api]) -> None:
    response = api_for("webhooks:manage").post(HOOKS, {"url": "https://93.184.216.34/hooks/assent", "events": ["*"]})
    assert response.status_code == 201, response.content


def test_an_address_refused_at_delivery_time_is_a_failed_attempt_not_a_request(
    api_for: Callable[..., Api], receiver: Receiver, settings: Any
) -> None:
    api = api_for("webhooks:manage")
    api.post(HOOKS, {"url": receiver.url("/hook"), "events": ["*"]})
    settings.ASSENT_WEBHOOK_ALLOW_LOOPBACK = False  # the name now resolves somewhere it may not go
    ConsentFactory(email="quinn@example.de")
    result = deliveries_run()
    assert (result.sent, result.delivered) == (1, 0)
    assert receiver.at("/hook") == []
    assert WebhookSubscription.objects.get().deliveries.get().last_error.startswith("refused")
