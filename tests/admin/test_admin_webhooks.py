"""Webhooks in the admin (DPO only): a subscription made with its secret shown once, a refused URL as a form
error, dead letters replayed one by one and for a whole endpoint, and endpoints failing for hours on the
dashboard."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from consent.models import AuditEntry, WebhookDelivery, WebhookSubscription
from consent.webhooks.delivery import deliveries_run
from tests.factories import ApiClientFactory, ConsentFactory
from tests.webhook_receiver import Receiver

Status = WebhookDelivery.Status


def test_dpo_subscribes_an_endpoint_and_sees_its_secret_once(dpo: Client, receiver: Receiver) -> None:
    client, _key = ApiClientFactory(name="crm", scopes=["webhooks:manage"])
    response = dpo.post(
        "/admin/consent/webhooksubscription/add/",
        {"client": client.pk, "url": receiver.url("/crm"), "events": ["consent.changed", "subject.erased"]},
    )
    assert response.status_code == 200, response.content.decode()[:3000]
    page = response.content.decode()
    secret = re.search(r'<code id="webhook-secret"[^>]*>([^<]+)</code>', page)
    assert secret is not None, page[:3000]
    assert secret.group(1).startswith("whsec_")
    subscription = WebhookSubscription.objects.get()
    assert (subscription.client_id, subscription.events) == (client.pk, ["consent.changed", "subject.erased"])
    assert (
        secret.group(1) not in dpo.get(f"/admin/consent/webhooksubscription/{subscription.pk}/change/").content.decode()
    )
    assert AuditEntry.objects.filter(action="add", object_type="consent.webhooksubscription").exists()

    receiver.secrets["/crm"] = secret.group(1)
    ConsentFactory(email="rosa@example.de")
    deliveries_run()
    assert len(receiver.acknowledged("/crm")) == 1


def test_a_private_address_is_refused_in_the_form(dpo: Client) -> None:
    client, _key = ApiClientFactory(name="crm", scopes=["webhooks:manage"])
    response = dpo.post(
        "/admin/consent/webhooksubscription/add/",
        {"client": client.pk, "url": "https://10.0.0.8/hook", "events": ["*"]},
    )
    assert response.status_code == 200
    assert "private" in response.content.decode()
    assert not WebhookSubscription.objects.exists()


def test_dpo_replays_a_dead_letter_and_every_dead_letter_of_an_endpoint(
    dpo: Client, subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscription = subscribe("/repaired")
    ConsentFactory(email="sam@example.de")
    ConsentFactory(email="tom@example.de")
    WebhookDelivery.objects.update(status=Status.DEAD, attempts=12)
    first, second = WebhookDelivery.objects.order_by("pk")

    listed = dpo.get("/admin/consent/webhookdelivery/?status__exact=dead")
    assert listed.context["cl"].result_count == 2
    dpo.post(
        "/admin/consent/webhookdelivery/",
        {"action": "replay_selected", "_selected_action": [str(first.pk)], "index": "0"},
    )
    deliveries_run()
    assert len(receiver.acknowledged("/repaired")) == 1
    second.refresh_from_db()
    assert second.status == Status.DEAD

    dpo.post(
        "/admin/consent/webhooksubscription/",
        {"action": "replay_dead_selected", "_selected_action": [str(subscription.pk)], "index": "0"},
    )
    deliveries_run()
    assert len(receiver.acknowledged("/repaired")) == 2
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {Status.DELIVERED}
    assert AuditEntry.objects.filter(detail="replay", object_type="consent.webhookdelivery").count() == 1


def test_the_dashboard_names_an_endpoint_failing_for_hours(
    dpo: Client, subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    down = subscribe("/down")
    subscribe("/up")
    receiver.answers["/down"] = [500]
    ConsentFactory(email="uma@example.de")
    deliveries_run()
    page = dpo.get("/admin/dashboard/").content.decode()
    assert receiver.url("/down") not in page  # failing for seconds, not hours

    WebhookSubscription.objects.filter(pk=down.pk).update(failing_since=timezone.now() - timedelta(hours=3))
    page = dpo.get("/admin/dashboard/").content.decode()
    assert receiver.url("/down") in page
    assert receiver.url("/up") not in page


def test_support_sees_no_webhook(support: Client) -> None:
    assert support.get("/admin/consent/webhooksubscription/").status_code == 403
    assert support.get("/admin/consent/webhookdelivery/").status_code == 403
