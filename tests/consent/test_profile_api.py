"""The purpose-bound profile read: GET /api/v1/subjects/{id}/profile?purpose=KEY (API.md; DESIGN.md, The policy
check: a read is allowed when the purpose's legal basis holds on one of its channels and returns only the
categories the purpose declares; every read is logged with the client, Art. 15(1)(c))."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consent.models import ApiClient, ReadLog
from subjects.crypto import api_key_digest
from subjects.models import Subject
from tests.api import Api, assert_problem
from tests.factories import grant, ingest

CONSENTS = "/api/v1/consents"
ANNA = "anna@example.de"
BOUGHT_AT = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)


def anna_with_data() -> uuid.UUID:
    contact = {"name": "Anna Muster", "city": "Köln"}
    ingest("pos", "C-1", {"email": ANNA}, category="contact", data=contact, profile=True, occurred_at=BOUGHT_AT)
    receipt = {"total": "42.00", "items": 3}
    return ingest(
        "pos", "R-1", {"email": ANNA}, category="purchases", data=receipt, purchase=True, occurred_at=BOUGHT_AT
    ).subject_id


def profile(api: Api, subject_id: uuid.UUID | str, purpose: str | None) -> Any:
    query = f"?purpose={purpose}" if purpose is not None else ""
    return api.get(f"/api/v1/subjects/{subject_id}/profile{query}")


def client_id_of(api: Api) -> int:
    assert api.key is not None
    return ApiClient.objects.get(key_digest=api_key_digest(api.key)).pk


# ---------------------------------------------------------------------------------------------------------
# Allowed reads
# ---------------------------------------------------------------------------------------------------------
def test_profile_read_returns_only_the_purposes_categories_and_names_the_withheld_ones(api: Api) -> None:
    # given Anna's profile (contact) and a till receipt (purchases), and her consent to the newsletter by SMS
    anna = anna_with_data()
    grant({"email": ANNA})

    # when the newsletter, which declares only contact data, reads her profile
    response = profile(api, anna, "newsletter")

    # then it gets the contact data and is told purchases were withheld
    assert response.status_code == 200, response.content
    assert response.json() == {
        "subject": str(anna),
        "purpose": "newsletter",
        "data": {"contact": {"name": "Anna Muster", "city": "Köln"}},
        "withheld": ["purchases"],
    }


def test_profile_read_lists_the_linked_records_of_a_record_category(api: Api) -> None:
    anna = anna_with_data()
    receipt = {"total": "9.99", "items": 1}
    ingest("pos", "R-2", {"email": ANNA}, data=receipt, occurred_at=datetime(2026, 2, 1, tzinfo=UTC))

    # order updates rest on the contract: no consent needed; they declare contact and purchases
    response = profile(api, anna, "order-updates")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["withheld"] == []
    assert body["data"]["contact"] == {"name": "Anna Muster", "city": "Köln"}
    purchases = body["data"]["purchases"]
    assert [(r["source"], r["external_id"], r["data"]) for r in purchases] == [
        ("pos", "R-1", {"total": "42.00", "items": 3}),
        ("pos", "R-2", {"total": "9.99", "items": 1}),
    ]
    assert [parse_datetime(r["occurred_at"]) for r in purchases] == [BOUGHT_AT, datetime(2026, 2, 1, tzinfo=UTC)]


def test_profile_read_of_a_declared_category_without_data_is_empty(api: Api) -> None:
    anna = ingest(
        "pos",
        "C-1",
        {"email": ANNA},
        category="contact",
        data={"name": "Anna Muster"},
        profile=True,
        occurred_at=BOUGHT_AT,
    ).subject_id

    body = profile(api, anna, "order-updates").json()

    assert body["data"] == {"contact": {"name": "Anna Muster"}, "purchases": []}
    assert body["withheld"] == []


def test_profile_read_never_returns_another_persons_records(api: Api) -> None:
    anna = anna_with_data()
    ben = {"email": "ben@example.de"}
    ingest("pos", "R-9", ben, category="purchases", data={"total": "1.00"}, purchase=True, occurred_at=BOUGHT_AT)

    body = profile(api, anna, "order-updates").json()

    assert [r["external_id"] for r in body["data"]["purchases"]] == ["R-1"]


def test_profile_read_is_logged_with_the_client_and_the_categories_disclosed(api: Api) -> None:
    anna = anna_with_data()
    grant({"email": ANNA})
    before = timezone.now()

    assert profile(api, anna, "newsletter").status_code == 200

    log = ReadLog.objects.get(subject_id=anna)
    assert log.client_id == client_id_of(api)
    assert (log.purpose, log.categories) == ("newsletter", ["contact"])
    assert log.read_at >= before


def test_profile_read_of_an_absorbed_id_reads_the_survivor(api: Api) -> None:
    # given Anna's subject and an older duplicate that a merge absorbed into it
    anna = anna_with_data()
    absorbed = ingest(
        "pos",
        "C-2",
        {"email": "anna.old@example.de"},
        category="contact",
        data={"name": "A. Muster"},
        profile=True,
        occurred_at=BOUGHT_AT,
    ).subject_id
    Subject.objects.filter(pk=absorbed).update(merged_into=anna, status=Subject.Status.MERGED)

    response = profile(api, absorbed, "order-updates")

    assert response.status_code == 200
    assert response.json()["subject"] == str(anna)
    assert ReadLog.objects.filter(subject_id=anna).count() == 1


# ---------------------------------------------------------------------------------------------------------
# Denied reads and bad requests
# ---------------------------------------------------------------------------------------------------------
def test_profile_read_without_consent_is_403_policy_denied_with_the_reason(api: Api) -> None:
    anna = anna_with_data()

    response = profile(api, anna, "newsletter")

    body = assert_problem(response, 403, "policy_denied")
    assert body["reason"] == "no_consent"
    assert ANNA not in response.content.decode()
    assert not ReadLog.objects.exists()  # nothing was disclosed, so nobody became a recipient


def test_profile_read_is_denied_again_after_the_withdrawal(api: Api) -> None:
    anna = anna_with_data()
    grant({"email": ANNA})
    assert profile(api, anna, "newsletter").status_code == 200

    api.post(
        CONSENTS,
        {
            "subject": {"id": str(anna)},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "withdraw",
            "source": "app",
        },
    )

    body = assert_problem(profile(api, anna, "newsletter"), 403, "policy_denied")
    # No channel holds any more; the reason is the first channel's in sorted order (email: never consented).
    assert body["reason"] == "no_consent"
    assert ReadLog.objects.filter(subject_id=anna).count() == 1


def test_profile_read_for_a_legitimate_interest_is_denied_after_an_objection(api: Api) -> None:
    anna = anna_with_data()
    assert profile(api, anna, "offers").status_code == 200  # by post, a legitimate interest holds
    api.post(
        CONSENTS,
        {"subject": {"id": str(anna)}, "purpose": "offers", "action": "object", "source": "callcenter"},
    )

    body = assert_problem(profile(api, anna, "offers"), 403, "policy_denied")

    assert body["reason"] == "objected"


def test_profile_read_of_a_restricted_subject_is_denied_restricted(api: Api) -> None:
    # Art. 18: while restricted, the policy denies every use but storage, whatever the legal basis.
    anna = anna_with_data()
    Subject.objects.filter(pk=anna).update(restricted_at=timezone.now())

    body = assert_problem(profile(api, anna, "order-updates"), 403, "policy_denied")

    assert body["reason"] == "restricted"


@pytest.mark.parametrize(("purpose", "code"), [(None, "invalid"), ("", "invalid"), ("lottery", "purpose_unknown")])
def test_profile_read_with_a_missing_or_unknown_purpose_is_400_naming_it(
    api: Api, purpose: str | None, code: str
) -> None:
    anna = anna_with_data()

    assert_problem(profile(api, anna, purpose), 400, code, "purpose")


def test_profile_read_of_an_unknown_subject_is_404(api: Api) -> None:
    assert_problem(profile(api, uuid.uuid4(), "order-updates"), 404, "unknown_subject")


def test_profile_read_for_a_purpose_not_granted_to_the_client_is_403_forbidden(
    api_for: Callable[..., Api],
) -> None:
    anna = anna_with_data()
    restricted = api_for("profile:read", purposes=("newsletter",))

    assert_problem(profile(restricted, anna, "order-updates"), 403, "forbidden")
    assert not ReadLog.objects.exists()


def test_profile_read_needs_the_profile_scope(api_for: Callable[..., Api]) -> None:
    anna = anna_with_data()

    assert_problem(profile(api_for("consent:read"), anna, "order-updates"), 403, "forbidden")
    assert profile(api_for("profile:read"), anna, "order-updates").status_code == 200


def test_profile_read_without_a_key_is_401(api: Api) -> None:
    anna = anna_with_data()

    assert_problem(profile(Api(None), anna, "order-updates"), 401, "unauthorized")
