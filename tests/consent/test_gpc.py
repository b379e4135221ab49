"""Global Privacy Control (issue 16): `Sec-GPC: 1` with a person's act is their objection to the purposes the catalogue
marks `gpc: true`, recorded once per purpose (source `gpc`), never overruling a choice the person makes themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from consent.models import ConsentEvent, Objection
from tests.api import Api
from tests.catalogue import gpc_catalogue
from tests.factories import apply_catalogue

ANNA = {"email": "anna.gpc@example.de"}
GPC = {"Sec-GPC": "1"}


@pytest.fixture
def api(db: None, make_client: Callable[..., str]) -> Api:
    apply_catalogue(gpc_catalogue())  # phone-offers and targeted-ads are marked gpc
    return Api(make_client())


def write(api: Api, headers: dict[str, str] | None = None, **fields: Any) -> dict[str, Any]:
    body = {
        "subject": ANNA,
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
        **fields,
    }
    response = api.post("/api/v1/consents", body, headers=headers)
    assert response.status_code == 201, response.content
    answer: dict[str, Any] = response.json()
    return answer


def check(api: Api, purpose: str, channel: str) -> str:
    response = api.post("/api/v1/consents/check", {"subject": ANNA, "purpose": purpose, "channel": channel})
    assert response.status_code == 200, response.content
    reason: str = response.json()["reason"]
    return reason


def test_a_write_with_the_signal_objects_to_every_gpc_purpose_once(api: Api) -> None:
    # Given Anna's newsletter grant, sent by the shop with her browser's signal
    answer = write(api, headers=GPC)

    # Then she objects to the two gpc purposes, each by an event of source gpc, and her grant stands
    assert answer["gpc"] == {"honoured": True, "objected": ["phone-offers", "targeted-ads"]}
    assert check(api, "targeted-ads", "web") == "objected"
    assert check(api, "phone-offers", "phone") == "objected"
    assert check(api, "newsletter", "sms") == "granted"
    events = ConsentEvent.objects.filter(subject_id=answer["subject"], source="gpc")
    assert sorted(events.values_list("action", "purpose")) == [("object", "phone-offers"), ("object", "targeted-ads")]

    # And the next write with the signal records nothing more
    assert write(api, headers=GPC, channel="push")["gpc"] == {"honoured": True, "objected": []}
    assert ConsentEvent.objects.filter(subject_id=answer["subject"], source="gpc").count() == 2


def test_without_the_signal_nothing_is_objected_and_the_answer_is_unchanged(api: Api) -> None:
    answer = write(api)
    assert "gpc" not in answer
    assert not Objection.objects.filter(subject_id=answer["subject"]).exists()
    # A header that is not exactly "1" is no signal either
    assert "gpc" not in write(api, headers={"Sec-GPC": "0"}, channel="push")


def test_the_person_s_own_grant_in_the_same_act_wins_over_the_signal(api: Api) -> None:
    # Given Anna's grant of phone offers, made with the signal on
    answer = write(api, headers=GPC, purpose="phone-offers", channel="phone")

    # Then the purpose she chose stays granted; the other gpc purpose is objected
    assert answer["gpc"]["objected"] == ["targeted-ads"]
    assert check(api, "phone-offers", "phone") == "granted"
