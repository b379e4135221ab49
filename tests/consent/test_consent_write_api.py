"""POST /api/v1/consents as other services call it: shapes, subject resolution, idempotency, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from consent.models import ConsentEvent, ConsentState, IdempotencyKey, LedgerHead, Objection
from subjects.models import Identifier, Subject
from tests.api import Api, assert_problem

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"


def body(subject: Any, **overrides: Any) -> dict[str, Any]:
    """A grant of the newsletter by SMS (no double opt-in), as a web shop would post it."""
    out: dict[str, Any] = {
        "subject": subject,
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
        "evidence": {"form": "checkout", "ip": "203.0.113.0"},
    }
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def rows() -> dict[str, int]:
    """Every table a consent write can touch."""
    return {
        "subjects": Subject.objects.count(),
        "identifiers": Identifier.objects.count(),
        "events": ConsentEvent.objects.count(),
        "heads": LedgerHead.objects.count(),
        "states": ConsentState.objects.count(),
        "objections": Objection.objects.count(),
        "idempotency": IdempotencyKey.objects.count(),
    }


def check(api: Api, subject: dict[str, Any], purpose: str = "newsletter", channel: str = "sms") -> dict[str, Any]:
    response = api.post(CHECK, {"subject": subject, "purpose": purpose, "channel": channel})
    assert response.status_code == 200, response.content
    result: dict[str, Any] = response.json()
    return result


# ---------------------------------------------------------------------------------------------------------
# Shapes and subject resolution
# ---------------------------------------------------------------------------------------------------------
def test_a_grant_answers_201_with_the_event_the_subject_and_the_resulting_state(api: Api) -> None:
    response = api.post(CONSENTS, body({"email": "anna@example.de"}))

    assert response.status_code == 201, response.content
    answer = response.json()
    assert set(answer) == {"event", "subject", "state"}
    assert answer["state"] == "granted"
    event = ConsentEvent.objects.get(pk=answer["event"])
    assert str(event.subject_id) == answer["subject"]
    assert (event.purpose, event.channel, event.action, event.notice_version, event.source, event.actor) == (
        "newsletter",
        "sms",
        "grant",
        "2026-01",
        "webshop",
        "subject",
    )


def test_a_first_write_creates_the_subject_and_later_writes_find_it(api: Api) -> None:
    first = api.post(CONSENTS, body({"email": "Anna@Example.de "}))
    again = api.post(CONSENTS, body({"email": "anna@example.de"}, action="withdraw", notice_version=None))
    by_id = api.post(CONSENTS, body({"id": first.json()["subject"]}))

    assert (first.status_code, again.status_code, by_id.status_code) == (201, 201, 201)
    assert first.json()["subject"] == again.json()["subject"] == by_id.json()["subject"]
    assert Subject.objects.count() == 1
    assert Identifier.objects.count() == 1
    assert [again.json()["state"], by_id.json()["state"]] == ["withdrawn", "granted"]


def test_an_unknown_subject_id_is_404_and_creates_nobody(api: Api) -> None:
    before = rows()

    response = api.post(CONSENTS, body({"id": str(uuid.uuid4())}))

    assert_problem(response, 404, "unknown_subject")
    assert rows() == before


def test_an_id_and_an_identifier_of_two_different_people_is_409_ambiguous(api: Api) -> None:
    # given Anna (by e-mail) and Ben (by phone)
    anna = api.post(CONSENTS, body({"email": "anna@example.de"})).json()["subject"]
    api.post(CONSENTS, body({"phone": "+49 171 1234567"}))
    before = rows()

    # when a write names Anna's id together with Ben's phone, or Anna's e-mail with Ben's phone
    by_id = api.post(CONSENTS, body({"id": anna, "phone": "+491711234567"}, action="withdraw", notice_version=None))
    by_identifiers = api.post(CONSENTS, body({"email": "anna@example.de", "phone": "0171 1234567"}))

    # then both are conflicts, and nothing is written
    assert_problem(by_id, 409, "ambiguous_subject")
    assert_problem(by_identifiers, 409, "ambiguous_subject")
    assert rows() == before


def test_an_unknown_identifier_beside_a_known_one_is_ignored_never_attached(api: Api) -> None:
    # given Anna, known by e-mail only
    anna = api.post(CONSENTS, body({"email": "anna@example.de"})).json()["subject"]

    # when a write names her e-mail and a customer number nobody has
    response = api.post(CONSENTS, body({"email": "anna@example.de", "customer_number": "C-404"}, channel="push"))

    # then the event lands on Anna, and the customer number is not attached to her
    assert response.status_code == 201
    assert response.json()["subject"] == anna
    assert Identifier.objects.filter(subject_id=anna).count() == 1
    assert check(api, {"customer_number": "C-404"}) == {
        "allowed": False,
        "reason": "unknown_subject",
        "legal_basis": "consent",
        "subject": None,
        "purpose": "newsletter",
        "channel": "sms",
    }


def test_an_objection_without_a_channel_covers_every_channel_of_the_purpose(api: Api) -> None:
    anna = api.post(CONSENTS, body({"email": "anna@example.de"})).json()["subject"]

    response = api.post(
        CONSENTS, body({"id": anna}, purpose="offers", channel=None, action="object", notice_version=None)
    )

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "objected"
    assert check(api, {"id": anna}, purpose="offers", channel="post")["reason"] == "objected"
    assert ConsentEvent.objects.get(pk=response.json()["event"]).channel == ""


def test_the_withdrawal_is_effective_for_the_next_check(api: Api) -> None:
    api.post(CONSENTS, body({"email": "anna@example.de"}))
    assert check(api, {"email": "anna@example.de"})["allowed"] is True

    response = api.post(CONSENTS, body({"email": "anna@example.de"}, action="withdraw", notice_version=None))

    assert response.json()["state"] == "withdrawn"
    assert check(api, {"email": "anna@example.de"})["reason"] == "withdrawn"


# ---------------------------------------------------------------------------------------------------------
# State follows occurred_at
# ---------------------------------------------------------------------------------------------------------
def test_a_late_uploaded_older_grant_does_not_override_a_newer_withdrawal(api: Api) -> None:
    # given a grant three hours ago and a withdrawal an hour ago
    now = timezone.now()
    ref = {"email": "anna@example.de"}
    api.post(CONSENTS, body(ref, occurred_at=(now - timedelta(hours=3)).isoformat()))
    api.post(
        CONSENTS, body(ref, action="withdraw", notice_version=None, occurred_at=(now - timedelta(hours=1)).isoformat())
    )

    # when the till uploads a signature taken two hours ago
    late = api.post(CONSENTS, body(ref, source="pos", occurred_at=(now - timedelta(hours=2)).isoformat()))

    # then it is recorded, but the newer withdrawal still decides
    assert late.status_code == 201, late.content
    assert late.json()["state"] == "withdrawn"
    assert ConsentEvent.objects.count() == 3
    assert check(api, ref)["reason"] == "withdrawn"
    state = ConsentState.objects.get()
    assert (state.status, state.seq) == ("withdrawn", 2)


def test_a_late_uploaded_newer_grant_overrides_an_older_withdrawal(api: Api) -> None:
    now = timezone.now()
    ref = {"email": "anna@example.de"}
    api.post(
        CONSENTS, body(ref, action="withdraw", notice_version=None, occurred_at=(now - timedelta(hours=2)).isoformat())
    )

    late = api.post(CONSENTS, body(ref, occurred_at=(now - timedelta(hours=1)).isoformat()))

    assert late.json()["state"] == "granted"
    assert check(api, ref)["allowed"] is True


# ---------------------------------------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------------------------------------
def test_a_replay_with_the_same_key_returns_the_first_answer_and_writes_nothing(api: Api) -> None:
    payload = body({"email": "anna@example.de"})
    first = api.post(CONSENTS, payload, headers={"Idempotency-Key": "order-4711"})
    after_first = rows()

    replay = api.post(CONSENTS, payload, headers={"Idempotency-Key": "order-4711"})

    assert first.status_code == 201
    assert replay.status_code == first.status_code
    assert replay.json() == first.json()
    assert rows() == after_first
    assert ConsentEvent.objects.count() == 1


def test_the_same_key_with_another_body_is_409_and_writes_nothing(api: Api) -> None:
    api.post(CONSENTS, body({"email": "anna@example.de"}), headers={"Idempotency-Key": "order-4711"})
    before = rows()

    response = api.post(
        CONSENTS,
        body({"email": "anna@example.de"}, action="withdraw", notice_version=None),
        headers={"Idempotency-Key": "order-4711"},
    )

    assert_problem(response, 409, "idempotency_key_reused")
    assert rows() == before
    assert ConsentState.objects.get().status == "granted"


def test_idempotency_keys_belong_to_one_client(api_for: Callable[..., Api]) -> None:
    shop, till = api_for("consent:write"), api_for("consent:write")
    payload = body({"email": "anna@example.de"})

    first = shop.post(CONSENTS, payload, headers={"Idempotency-Key": "k-1"})
    other_client = till.post(CONSENTS, payload, headers={"Idempotency-Key": "k-1"})

    assert (first.status_code, other_client.status_code) == (201, 201)
    assert first.json()["event"] != other_client.json()["event"]
    assert first.json()["subject"] == other_client.json()["subject"]
    assert ConsentEvent.objects.count() == 2


def test_a_rejected_request_does_not_use_up_its_idempotency_key(api: Api) -> None:
    bad = api.post(CONSENTS, body({"email": "anna@example.de"}, purpose="nope"), headers={"Idempotency-Key": "k-2"})
    good = api.post(CONSENTS, body({"email": "anna@example.de"}), headers={"Idempotency-Key": "k-2"})

    assert bad.status_code == 400
    assert good.status_code == 201


# ---------------------------------------------------------------------------------------------------------
# Bad input: the right 4xx and code, the field named, and nothing written
# ---------------------------------------------------------------------------------------------------------
REF = {"email": "anna@example.de"}
# A client's own confirmation carries the when and the how of the person's act.
CONFIRMED = {"confirmed_at": "2026-01-02T10:00:00+00:00", "method": "shop-double-opt-in"}
IN_FUTURE = "2999-01-01T00:00:00Z"

BAD_INPUT = [
    # (case, body, status, code, field)
    ("purpose is a list", body(REF, purpose=["newsletter"]), 400, "invalid", "purpose"),
    ("notice_version is a boolean", body(REF, notice_version=True), 400, "invalid", "notice_version"),
    ("occurred_at is a number", body(REF, occurred_at=1767225600), 400, "invalid", "occurred_at"),
    ("occurred_at is not a date", body(REF, occurred_at="yesterday"), 400, "invalid", "occurred_at"),
    ("evidence is a string", body(REF, evidence="signed at the till"), 400, "invalid", "evidence"),
    ("subject is a string", body("anna@example.de"), 400, "invalid_subject", "subject"),
    ("subject is empty", body({}), 400, "invalid_subject", "subject"),
    ("subject id is no uuid", body({"id": "42"}), 400, "invalid_subject", "subject.id"),
    ("subject has an unknown kind", body({"passport": "X1"}), 400, "invalid_subject", "subject.passport"),
    ("subject e-mail is malformed", body({"email": "anna-at-example"}), 400, "invalid_identifier", "subject.email"),
    ("subject e-mail is a number", body({"email": 5}), 400, "invalid_identifier", "subject.email"),
    ("subject phone is malformed", body({"phone": "call me"}), 400, "invalid_identifier", "subject.phone"),
    ("purpose missing", body(REF, purpose=None), 400, "invalid", "purpose"),
    ("action missing", body(REF, action=None), 400, "invalid", "action"),
    ("source missing", body(REF, source=None), 400, "invalid", "source"),
    ("source not a slug", body(REF, source="Web Shop"), 400, "invalid", "source"),
    ("unknown purpose", body(REF, purpose="lottery"), 400, "purpose_unknown", "purpose"),
    ("unknown channel", body(REF, channel="pigeon"), 400, "channel_unknown", "channel"),
    ("channel the purpose does not list", body(REF, channel="post"), 400, "channel_not_permitted", "channel"),
    ("grant without channel", body(REF, channel=None), 400, "invalid", "channel"),
    ("grant without notice_version", body(REF, notice_version=None), 400, "invalid", "notice_version"),
    ("unknown notice version", body(REF, notice_version="1999-01"), 400, "notice_unknown", "notice_version"),
    ("occurred_at in the future", body(REF, occurred_at=IN_FUTURE), 400, "invalid", "occurred_at"),
    ("unknown action", body(REF, action="subscribe"), 400, "invalid", "action"),
    ("reserved source portal", body(REF, source="portal"), 400, "source_reserved", "source"),
    ("reserved source double-opt-in", body(REF, source="double-opt-in"), 400, "source_reserved", "source"),
    ("unknown actor", body(REF, actor="robot"), 400, "invalid", "actor"),
    ("grant of a legitimate-interest purpose", body(REF, purpose="offers", channel="post"), 400, "invalid", "action"),
    ("withdraw of a contract purpose", body(REF, purpose="order-updates", action="withdraw"), 400, "invalid", "action"),
    (
        "double opt-in grant without e-mail",
        body({"phone": "+49 171 1234567"}, channel="email"),
        400,
        "email_required",
        "subject.email",
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_a_4xx_problem_naming_the_field_and_writes_nothing(
    api: Api, payload: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = rows()

    response = api.post(CONSENTS, payload)

    assert_problem(response, status, code, field)
    assert rows() == before


def test_bad_input_for_a_known_subject_writes_nothing_either(api: Api) -> None:
    # Validation that fails after the subject is locked (double opt-in without e-mail) rolls everything back.
    anna = api.post(CONSENTS, body({"email": "anna@example.de"})).json()["subject"]
    before = rows()

    response = api.post(CONSENTS, body({"id": anna}, channel="email"))

    assert_problem(response, 400, "email_required", "subject.email")
    assert rows() == before


@pytest.mark.parametrize(
    "raw",
    [b'{"subject": {"email": "anna@example.de"}, "purpose": "newsletter",', b"\xff\xfe not json", b"[1, 2"],
    ids=["truncated", "not utf-8", "broken list"],
)
def test_malformed_json_is_400_and_writes_nothing(api: Api, raw: bytes) -> None:
    before = rows()

    response = api.post_raw(CONSENTS, raw)

    assert_problem(response, 400, "malformed")
    assert rows() == before


def test_a_json_list_instead_of_an_object_is_400(api: Api) -> None:
    response = api.post(CONSENTS, [body(REF)])

    assert_problem(response, 400, "invalid", "body")
    assert ConsentEvent.objects.count() == 0


def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    response = api.post_raw(CONSENTS, "purpose=newsletter", content_type="application/x-www-form-urlencoded")

    assert_problem(response, 415, "unsupported_media_type")
    assert ConsentEvent.objects.count() == 0


def test_a_missing_key_is_401(catalogue: dict[str, Any]) -> None:
    before = rows()

    response = Api(None).post(CONSENTS, body(REF))

    assert_problem(response, 401, "unauthorized")
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert rows() == before


@pytest.mark.parametrize("header", ["Bearer ast_wrong", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer a b"])
def test_a_wrong_key_is_401(api: Api, header: str) -> None:
    before = rows()

    response = api.http.post(CONSENTS, body(REF), format="json", HTTP_AUTHORIZATION=header)

    assert_problem(response, 401, "unauthorized")
    assert rows() == before


def test_a_client_without_the_write_scope_is_403_forbidden(api_for: Callable[..., Api]) -> None:
    checker = api_for("consent:check", "consent:read")
    before = rows()

    response = checker.post(CONSENTS, body(REF))

    assert_problem(response, 403, "forbidden")
    assert rows() == before


def test_a_client_restricted_to_another_purpose_is_403_forbidden(api_for: Callable[..., Api]) -> None:
    orders_only = api_for("consent:write", purposes=("order-updates",))
    newsletter_only = api_for("consent:write", purposes=("newsletter",))
    before = rows()

    refused = orders_only.post(CONSENTS, body(REF))
    assert_problem(refused, 403, "forbidden")
    assert rows() == before

    assert newsletter_only.post(CONSENTS, body(REF)).status_code == 201


@pytest.mark.parametrize("before", [None, "withdraw"], ids=["nothing recorded", "withdrawn"])
def test_a_bare_confirmation_with_nothing_waiting_is_409_and_writes_nothing(api: Api, before: str | None) -> None:
    # A `confirm` without a notice version confirms a pending grant; with nothing pending it would record an
    # event that changes nothing and answer a state outside the contract.
    if before:
        api.post(CONSENTS, body(REF, channel="email", action=before, notice_version=None))
    counts = rows()

    response = api.post(CONSENTS, body(REF, channel="email", action="confirm", notice_version=None, evidence=CONFIRMED))

    assert_problem(response, 409, "nothing_to_confirm")
    assert rows() == counts


def test_a_bare_confirmation_confirms_a_pending_grant(api: Api) -> None:
    assert api.post(CONSENTS, body(REF, channel="email")).json()["state"] == "pending_confirmation"

    response = api.post(CONSENTS, body(REF, channel="email", action="confirm", notice_version=None, evidence=CONFIRMED))

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "granted"
    assert check(api, REF, channel="email")["reason"] == "granted"
