"""Art. 19: a rectification, restriction or erasure is told to every connected system that holds the person's data.
The shop system wrote the person's orders: its webhook hears of the erasure with the person's shop records; the
request's report lists it with when it was told and when it acknowledged; the call centre wrote records too but
has no webhook, so the report names it as not told, for the DPO. The Art. 15 report lists the earlier notices."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from io import BytesIO
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from consent.admin.staff import DPO, staff_groups_setup, staff_totp_device_create
from consent.webhooks.delivery import deliveries_run
from tests.admin.conftest import PASSWORD, otp_login, speaking
from tests.api import Api
from tests.factories import ApiClientFactory
from tests.rights.helpers import drain
from tests.webhook_receiver import Receiver

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def write_record(api: Api, source: str, external_id: str, email: str, category: str) -> None:
    body = {
        "source": source,
        "external_id": external_id,
        "category": category,
        "identifiers": {"email": email},
        "occurred_at": "2026-03-01T10:00:00Z",
        "data": {"total": "12.50"},
    }
    assert api.post("/api/v1/records", body).status_code in (200, 201)


def deliver_all() -> None:
    while deliveries_run().sent:
        pass


def connected_systems(rights_catalogue: dict[str, Any], subscribe: Callable[..., Any]) -> tuple[Api, Api]:
    shop, shop_key = ApiClientFactory(name="Web shop", scopes=["records:write", "webhooks:manage"])
    _calls, calls_key = ApiClientFactory(name="Call centre", scopes=["records:write"])
    subscribe("/shop", events=("subject.erased", "subject.rectified", "subject.restricted"), client=shop)
    return Api(shop_key), Api(calls_key)


def test_an_erasure_is_told_to_the_system_that_wrote_the_records_and_the_report_says_when(
    rapi: Api, rights_catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    shop, calls = connected_systems(rights_catalogue, subscribe)
    write_record(shop, "shop", "O-1", "art19a@example.de", "orders")
    write_record(shop, "shop", "O-2", "art19a@example.de", "orders")
    write_record(calls, "callcenter", "CALL-1", "art19a@example.de", "calls")
    write_record(shop, "shop", "O-other", "someone.else@example.de", "orders")

    body = rapi.post(
        REQUESTS, {"kind": "erasure", "subject": {"email": "art19a@example.de"}, "channel": "portal", "verified": True}
    ).json()
    assert rapi.post(f"{REQUESTS}/{body['id']}/approve", {}).status_code == 202
    drain(body["id"])

    # Before delivery: the shop is listed, not yet told; the call centre cannot be told by webhook.
    notices = rapi.get(f"{REQUESTS}/{body['id']}").json()["result"]["notices"]
    (told,) = notices["told"]
    assert (told["recipient"], told["event"], told["told_at"], told["acknowledged_at"]) == (
        "Web shop",
        "subject.erased",
        None,
        None,
    )
    assert [n["recipient"] for n in notices["not_told"]] == ["Call centre"]
    assert notices["unacknowledged"] == 2

    deliver_all()
    (message,) = receiver.acknowledged("/shop")
    assert message.payload is not None
    # Its own records, and only the shop's (the call centre's record is not the shop's business; nor is anyone
    # else's order).
    assert message.payload["data"]["records"] == [
        {"source": "shop", "external_id": "O-1"},
        {"source": "shop", "external_id": "O-2"},
    ]
    result = rapi.get(f"{REQUESTS}/{body['id']}").json()["result"]
    (told,) = result["notices"]["told"]
    assert told["status"] == "delivered"
    assert told["told_at"] is not None
    assert told["acknowledged_at"] is not None
    assert told["told_at"] <= told["acknowledged_at"]
    assert result["notices"]["unacknowledged"] == 1  # the call centre, still to be told by the DPO
    assert "art19" not in result  # the kept ids are not shown


def dpo_client() -> Client:
    staff_groups_setup()
    user = get_user_model().objects.create_user(username="dpo-art19", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=DPO))
    client = Client()
    assert otp_login(client, user, staff_totp_device_create(user=user)).status_code == 302
    return client


def test_an_unacknowledged_recipient_shows_on_the_request_page_for_the_dpo(
    rapi: Api, rights_catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    shop, _calls = connected_systems(rights_catalogue, subscribe)
    write_record(shop, "shop", "O-9", "art19b@example.de", "orders")
    receiver.answers["/shop"] = [500]  # the shop's endpoint is down
    request_id = rapi.post(
        REQUESTS,
        {
            "kind": "rectification",
            "subject": {"email": "art19b@example.de"},
            "channel": "portal",
            "verified": True,
            "details": {"profile": {"name": "Corrected"}},
        },
    ).json()["id"]
    drain(request_id)
    deliveries_run()
    told = rapi.get(f"{REQUESTS}/{request_id}").json()["result"]["notices"]["told"]
    assert [(t["recipient"], t["status"], t["acknowledged_at"]) for t in told] == [("Web shop", "pending", None)]
    assert told[0]["told_at"] is not None
    assert told[0]["last_error"] == "HTTP 500"
    page = speaking(dpo_client(), "en").get(f"/admin/subjects/rightsrequest/{request_id}/change/").content.decode()
    assert "Recipients told (Art. 19)" in page
    assert "1 not acknowledged" in page
    assert "Web shop" in page


def test_the_access_report_lists_earlier_notices_with_their_times(
    rapi: Api, rights_catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    shop, _calls = connected_systems(rights_catalogue, subscribe)
    write_record(shop, "shop", "O-5", "art19c@example.de", "orders")
    subject = {"email": "art19c@example.de"}
    restriction = rapi.post(
        REQUESTS,
        {
            "kind": "restriction",
            "subject": subject,
            "channel": "portal",
            "verified": True,
            "details": {"ground": "18(1)(a)"},
        },
    ).json()["id"]
    drain(restriction)
    deliver_all()
    access = rapi.post(REQUESTS, {"kind": "access", "subject": subject, "channel": "portal", "verified": True})
    drain(access.json()["id"])
    body = rapi.get(f"{REQUESTS}/{access.json()['id']}").json()
    url = urlsplit(body["result"]["export_url"])
    export = rapi.get(f"{url.path}?{url.query}")
    assert export.status_code == 200
    with zipfile.ZipFile(BytesIO(b"".join(export.streaming_content))) as archive:
        names = archive.namelist()
        report = json.loads(archive.read(next(n for n in names if n.endswith("report.json"))))
    (notice,) = report["notices"]
    assert (notice["recipient"], notice["event"], notice["status"]) == ("Web shop", "subject.restricted", "delivered")
    assert notice["told_at"]
    assert notice["acknowledged_at"]
