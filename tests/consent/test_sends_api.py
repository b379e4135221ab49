"""The marketing-send gate: POST /api/v1/sends (API.md). Every recipient is decided on the send's one channel in a
fixed number of queries, each allowed one gets a one-click unsubscribe link (RFC 2369, RFC 8058), and the send is
logged with the client (Art. 15(1)(c)) without storing any reference. UWG §7(3) for legitimate-interest e-mail."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test.utils import CaptureQueriesContext

from consent.catalogue.snapshot import catalogue_forget
from consent.clients import clients_forget_cache
from consent.gates.unsubscribe import unsubscribe_token_parse, unsubscribe_tokens
from consent.ledger.recording import ConsentCommand
from consent.models import ApiClient, Send, SendRecipient
from consent.services import consent_record
from subjects.crypto import api_key_digest
from subjects.identity import parse_reference
from tests.api import Api, assert_problem
from tests.factories import grant, ingest

SENDS = "/api/v1/sends"
CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"


def send(api: Api, recipients: list[Any], purpose: str = "newsletter", channel: str = "sms", **extra: Any) -> Any:
    body = {"campaign": "Frühjahr 2026", "purpose": purpose, "channel": channel, "recipients": recipients, **extra}
    return api.post(SENDS, body)


# ---------------------------------------------------------------------------------------------------------
# The answer
# ---------------------------------------------------------------------------------------------------------
def test_send_answers_allowed_and_blocked_in_input_order_in_the_documented_shape(api: Api) -> None:
    # given Anna and Carla consented to the newsletter by SMS, Ben withdrew, and one address is unknown
    anna = grant({"email": "anna@example.de"})
    ben = grant({"email": "ben@example.de"})
    api.post(
        CONSENTS,
        {"subject": {"id": ben}, "purpose": "newsletter", "channel": "sms", "action": "withdraw", "source": "app"},
    )
    carla = grant({"email": "carla@example.de"})
    recipients = [
        {"email": "Anna@Example.de "},
        {"email": "nobody@example.de"},
        {"id": ben},
        {"id": carla, "customer_number": "C-unknown"},
    ]

    # when a campaign is sent to the four
    response = send(api, recipients)

    # then Anna and Carla are allowed, in input order, each with an unsubscribe link; the others are blocked
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"send", "allowed", "blocked"}
    uuid.UUID(body["send"])
    assert [(a["index"], a["recipient"], a["subject"]) for a in body["allowed"]] == [
        (0, {"email": "Anna@Example.de "}, anna),  # the reference is echoed as sent
        (3, {"id": carla, "customer_number": "C-unknown"}, carla),
    ]
    assert body["blocked"] == [
        {"index": 1, "recipient": {"email": "nobody@example.de"}, "reason": "unknown_subject"},
        {"index": 2, "recipient": {"id": ben}, "reason": "withdrawn"},
    ]
    for allowed in body["allowed"]:
        assert set(allowed) == {
            "index",
            "recipient",
            "subject",
            "unsubscribe_url",
            "list_unsubscribe",
            "list_unsubscribe_post",
        }
        assert allowed["unsubscribe_url"].startswith(settings.ASSENT_BASE_URL + "/u/")
        assert allowed["list_unsubscribe"] == f"<{allowed['unsubscribe_url']}>"
        assert allowed["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"


def test_send_contract_first_allowed_is_index_0_and_an_unknown_recipient_is_blocked_unknown_subject(api: Api) -> None:
    grant({"email": "anna@example.de"})

    body = send(api, [{"email": "anna@example.de"}, {"phone": "+49 171 1234567"}]).json()

    assert body["allowed"][0]["index"] == 0
    assert body["blocked"] == [{"index": 1, "recipient": {"phone": "+49 171 1234567"}, "reason": "unknown_subject"}]


def test_send_unsubscribe_link_names_the_recipient_and_the_send(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})

    body = send(api, [{"email": "anna@example.de"}]).json()

    token = body["allowed"][0]["unsubscribe_url"].rsplit("/u/", 1)[1]
    assert unsubscribe_token_parse(token) == (uuid.UUID(anna), uuid.UUID(body["send"]))


def test_send_of_an_ambiguous_reference_is_blocked_not_an_error(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})
    grant({"email": "ben@example.de"})

    body = send(api, [{"id": anna, "email": "ben@example.de"}]).json()

    assert body["allowed"] == []
    assert body["blocked"] == [
        {"index": 0, "recipient": {"id": anna, "email": "ben@example.de"}, "reason": "ambiguous_subject"}
    ]


def test_send_blocks_a_pending_double_opt_in_by_email(api: Api) -> None:
    grant({"email": "anna@example.de"}, channel="email")  # UWG §7(2) Nr. 2: waits for the confirmation

    body = send(api, [{"email": "anna@example.de"}], channel="email").json()

    assert body["blocked"][0]["reason"] == "pending_confirmation"


def test_send_blocks_everyone_after_an_objection_to_direct_marketing(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})
    consent_record(
        command=ConsentCommand(
            reference=parse_reference({"id": anna}), purpose="offers", action="object", source="callcenter"
        )
    )

    body = send(api, [{"id": anna}], purpose="offers", channel="post").json()

    assert body["blocked"] == [{"index": 0, "recipient": {"id": anna}, "reason": "objected"}]


# ---------------------------------------------------------------------------------------------------------
# The log
# ---------------------------------------------------------------------------------------------------------
def test_send_is_logged_with_the_client_and_each_decision_without_references(api: Api) -> None:
    anna = grant({"email": "anna@example.de"})

    body = send(api, [{"email": "anna@example.de"}, {"email": "nobody@example.de"}]).json()

    assert api.key is not None
    row = Send.objects.get(pk=body["send"])
    assert row.client_id == ApiClient.objects.get(key_digest=api_key_digest(api.key)).pk
    assert (row.campaign, row.purpose, row.channel) == ("Frühjahr 2026", "newsletter", "sms")
    assert (row.allowed_count, row.blocked_count) == (1, 1)
    recipients = list(
        SendRecipient.objects.filter(send=row).order_by("index").values("index", "subject_id", "allowed", "reason")
    )
    assert recipients == [
        {"index": 0, "subject_id": uuid.UUID(anna), "allowed": True, "reason": "granted"},
        {"index": 1, "subject_id": None, "allowed": False, "reason": "unknown_subject"},
    ]
    # Nothing of the references is stored: the rows have no column for them.
    assert {f.name for f in SendRecipient._meta.get_fields()} == {"id", "send", "index", "subject", "allowed", "reason"}


# ---------------------------------------------------------------------------------------------------------
# Bad requests
# ---------------------------------------------------------------------------------------------------------
def test_send_for_a_purpose_that_is_not_marketing_is_400(api: Api) -> None:
    grant({"email": "anna@example.de"})

    assert_problem(send(api, [{"email": "anna@example.de"}], "order-updates", "email"), 400, "purpose_not_marketing")
    assert not Send.objects.exists()


def test_send_on_a_channel_the_purpose_does_not_list_is_400_unlike_a_check(api: Api) -> None:
    grant({"email": "anna@example.de"})

    assert_problem(send(api, [{"email": "anna@example.de"}], "newsletter", "post"), 400, "channel_not_permitted")
    assert not Send.objects.exists()


@pytest.mark.parametrize(
    ("purpose", "channel", "code", "field"),
    [("lottery", "sms", "purpose_unknown", "purpose"), ("newsletter", "pigeon", "channel_unknown", "channel")],
)
def test_send_of_an_unknown_purpose_or_channel_is_400(
    api: Api, purpose: str, channel: str, code: str, field: str
) -> None:
    assert_problem(send(api, [{"email": "anna@example.de"}], purpose, channel), 400, code, field)


@pytest.mark.parametrize("count", [0, 10_001])
def test_send_to_no_or_too_many_recipients_is_400(api: Api, count: int) -> None:
    recipients = [{"email": f"p{i}@example.de"} for i in range(count)]

    assert_problem(send(api, recipients), 400, "invalid", "recipients")
    assert not Send.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"campaign": ""}, "campaign"),
        ({"campaign": "x" * 201}, "campaign"),
        ({"campaign": 7}, "campaign"),
        ({"purpose": None}, "purpose"),
        ({"channel": ""}, "channel"),
        ({"recipients": {"email": "anna@example.de"}}, "recipients"),
        ({"recipients": [{"email": "not-an-address"}]}, "recipients[0].email"),
        ({"recipients": [{"email": "a@example.de"}, "anna"]}, "recipients[1]"),
    ],
)
def test_send_with_a_malformed_field_is_400_naming_it(api: Api, overrides: dict[str, Any], field: str) -> None:
    body = {
        "campaign": "Frühjahr",
        "purpose": "newsletter",
        "channel": "sms",
        "recipients": [{"email": "a@example.de"}],
    }

    response = api.post(SENDS, {**body, **overrides})

    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


def test_send_of_a_campaign_name_of_200_characters_is_accepted(api: Api) -> None:
    assert send(api, [{"email": "a@example.de"}], campaign="x" * 200).status_code == 201


def test_send_body_that_is_not_an_object_is_400(api: Api) -> None:
    assert api.post(SENDS, [1, 2]).status_code == 400


def test_send_needs_the_sends_scope_and_the_purpose(api_for: Callable[..., Api]) -> None:
    recipients = [{"email": "a@example.de"}]

    assert_problem(send(api_for("consent:check"), recipients), 403, "forbidden")
    assert_problem(send(api_for("sends:create", purposes=("offers",)), recipients), 403, "forbidden")
    assert send(api_for("sends:create", purposes=("newsletter",)), recipients).status_code == 201


# ---------------------------------------------------------------------------------------------------------
# Bulk: a fixed number of queries, fast links
# ---------------------------------------------------------------------------------------------------------
def test_send_query_count_does_not_grow_with_the_number_of_recipients(
    api: Api, django_assert_max_num_queries: Any
) -> None:
    # given five people who consented (by id and by e-mail) and many unknown addresses
    known: list[dict[str, Any]] = []
    for i in range(5):
        subject = grant({"email": f"known{i}@example.de"})
        known.append({"id": subject} if i % 2 else {"email": f"known{i}@example.de"})
    small = [*known, *({"email": f"small{i}@example.de"} for i in range(5))]
    large = [*known, *({"email": f"large{i}@example.de"} for i in range(995))]
    send(api, small[:1])  # warm-up: the client's last_used_at

    def queries_for(recipients: list[dict[str, Any]]) -> int:
        catalogue_forget()
        clients_forget_cache()
        with CaptureQueriesContext(connections["default"]) as queries:
            response = send(api, recipients)
        assert response.status_code == 201, response.content
        body = response.json()
        assert (len(body["allowed"]), len(body["blocked"])) == (5, len(recipients) - 5)
        return len(queries)

    # when 10 and 1,000 recipients are sent to
    with django_assert_max_num_queries(20):
        small_count = queries_for(small)
    large_count = queries_for(large)

    # then both cost the same number of queries
    assert large_count == small_count
    assert SendRecipient.objects.filter(send__allowed_count=5, send__blocked_count=995).count() == 1_000


def test_send_to_the_most_recipients_allowed_is_answered(api: Api) -> None:
    grant({"email": "anna@example.de"})
    recipients = [{"email": "anna@example.de"}, *({"email": f"p{i}@example.de"} for i in range(9_999))]

    response = send(api, recipients)

    assert response.status_code == 201
    body = response.json()
    assert (len(body["allowed"]), len(body["blocked"])) == (1, 9_999)
    assert body["blocked"][-1]["index"] == 9_999
    assert SendRecipient.objects.filter(send_id=body["send"]).count() == 10_000


def test_unsubscribe_tokens_for_10000_recipients_are_one_each() -> None:
    # How fast they are built is a benchmark's figure (the send phase of `make bench`), not an assertion.
    subjects = [uuid.uuid4() for _ in range(10_000)]
    send_id = uuid.uuid4()

    tokens = unsubscribe_tokens(subject_ids=subjects, send_id=send_id)

    assert len(set(tokens)) == 10_000
    assert all(len(t) == 64 for t in tokens)
    assert unsubscribe_token_parse(tokens[1234]) == (subjects[1234], send_id)


# ---------------------------------------------------------------------------------------------------------
# UWG §7(3): e-mail on legitimate interest only to an existing customer's purchase address
# ---------------------------------------------------------------------------------------------------------
FORM: dict[str, Any] = {"data": {"name": "Anna"}, "occurred_at": datetime(2026, 1, 15, tzinfo=UTC)}
RECEIPT: dict[str, Any] = {"data": {"total": "42.00"}, "occurred_at": datetime(2026, 1, 15, tzinfo=UTC)}


def test_legitimate_interest_email_is_blocked_until_a_purchase_carries_the_address(api: Api) -> None:
    # given Anna, known from a contact form with her e-mail, and no purchase yet
    anna = str(ingest("pos", "F-1", {"email": "anna@example.de"}, category="contact", **FORM).subject_id)

    # then offers by e-mail (legitimate interest, uwg_7_3) are blocked, by post allowed
    body = send(api, [{"id": anna}], purpose="offers", channel="email").json()
    assert body["blocked"] == [{"index": 0, "recipient": {"id": anna}, "reason": "no_existing_customer"}]
    assert len(send(api, [{"id": anna}], purpose="offers", channel="post").json()["allowed"]) == 1

    # when a purchase arrives that carries only her customer number, e-mail stays blocked
    ingest("pos", "R-2", {"customer_number": "C-1", "email": "anna@example.de"}, category="contact", **FORM)
    ingest("pos", "R-3", {"customer_number": "C-1"}, category="purchases", purchase=True, **RECEIPT)
    body = send(api, [{"id": anna}], purpose="offers", channel="email").json()
    assert body["blocked"][0]["reason"] == "no_existing_customer"

    # when a purchase carries the e-mail address, it is an existing customer's address
    ingest("pos", "R-4", {"email": "anna@example.de"}, category="purchases", purchase=True, **RECEIPT)
    body = send(api, [{"id": anna}], purpose="offers", channel="email").json()
    assert [(a["index"], a["subject"]) for a in body["allowed"]] == [(0, anna)]
    check = api.post(CHECK, {"subject": {"id": anna}, "purpose": "offers", "channel": "email"}).json()
    assert (check["allowed"], check["reason"]) == (True, "legitimate_interest")
