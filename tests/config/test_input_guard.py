"""One input guard for every endpoint (issue 9 item 6): what would crash or corrupt a layer below is a 400 problem
with a clear detail (413 for size), never a 500 or a 503 "cannot decide"."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.api import Api

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
RECORDS = "/api/v1/records"
REQUESTS = "/api/v1/requests"
GRANT: dict[str, Any] = {
    "subject": {"phone": "+491711234567"},
    "purpose": "newsletter",
    "channel": "sms",  # no double opt-in: a valid grant is a 201
    "action": "grant",
    "notice_version": "2026-01",
    "source": "webshop",
}


def assert_problem(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("path", [CONSENTS, RECORDS, REQUESTS, CHECK])
def test_it_refuses_json_nested_5000_deep_with_a_400(api: Api, path: str) -> None:
    body = assert_problem(api.post_raw(path, deep(5000)))
    assert "nested deeper than 32" in body["detail"]


def test_it_refuses_json_nested_just_over_32_but_accepts_32_in_evidence(api: Api) -> None:
    nested: Any = 1
    for _ in range(31):  # the body object is level 1, evidence level 2
        nested = {"a": nested}
    assert_problem(api.post(CONSENTS, {**GRANT, "evidence": {"x": nested}}))
    nested = 1
    for _ in range(30):
        nested = {"a": nested}
    assert api.post(CONSENTS, {**GRANT, "evidence": {"x": nested}}).status_code == 201


def test_it_refuses_an_integer_beyond_2_to_the_53_in_evidence(api: Api) -> None:
    body = assert_problem(api.post(CONSENTS, {**GRANT, "evidence": {"n": 2**60}}))
    assert "2^53" in body["detail"]


def test_it_refuses_a_number_that_overflows_to_infinity(api: Api) -> None:
    raw = b'{"subject":{"email":"anna@example.de"},"purpose":"newsletter","channel":"email","action":"grant",'
    raw += b'"notice_version":"2026-01","source":"webshop","evidence":{"n":1e400}}'
    assert_problem(api.post_raw(CONSENTS, raw))


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_it_refuses_non_finite_literals(api: Api, literal: bytes) -> None:
    assert_problem(api.post_raw(CONSENTS, b'{"evidence":{"n":' + literal + b"}}"))


def test_it_refuses_a_lone_surrogate_in_evidence(api: Api) -> None:
    raw = b'{"subject":{"email":"anna@example.de"},"purpose":"newsletter","channel":"email","action":"grant",'
    raw += b'"notice_version":"2026-01","source":"webshop","evidence":{"note":"\\ud800"}}'
    assert_problem(api.post_raw(CONSENTS, raw))


def test_it_refuses_an_email_with_a_lone_surrogate(api: Api) -> None:
    raw = b'{"subject":{"email":"anna\\ud800@example.de"},"purpose":"newsletter","channel":"email"}'
    assert_problem(api.post_raw(CHECK, raw))


def test_a_nul_in_a_check_identifier_is_a_400_not_a_503(api: Api) -> None:
    body = assert_problem(
        api.post(CHECK, {"subject": {"email": "anna\x00@example.de"}, "purpose": "newsletter", "channel": "email"})
    )
    assert "NUL" in body["detail"]
    assert body.get("allowed") is None


def test_a_nul_in_a_key_is_a_400(api: Api) -> None:
    assert_problem(api.post(CONSENTS, {**GRANT, "evidence": {"a\x00": 1}}))


def test_a_nul_in_a_query_string_is_a_400(api: Api) -> None:
    body = assert_problem(api.get("/api/v1/requests/00000000-0000-0000-0000-000000000000?x=a%00b"))
    assert "NUL" in body["detail"]


def test_invalid_utf8_is_a_400(api: Api) -> None:
    assert_problem(api.post_raw(CHECK, b'{"subject":{"email":"\xff\xfe@x.de"},"purpose":"a","channel":"b"}'))


def test_a_body_over_8_mib_is_a_413(api: Api) -> None:
    raw = b'{"evidence":{"pad":"' + b"x" * (8 * 1024 * 1024 + 10) + b'"}}'
    assert_problem(api.post_raw(CONSENTS, raw), 413)
    assert_problem(api.post_raw(CHECK, raw), 413)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_it_refuses_an_occurred_at_outside_1900_to_tomorrow(api: Api, when: str) -> None:
    body = assert_problem(api.post(CONSENTS, {**GRANT, "occurred_at": when}))
    assert "1900-01-01" in body["errors"]["occurred_at"][0]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_it_refuses_an_evidence_confirmed_at_outside_the_window(api: Api, when: str) -> None:
    body = assert_problem(api.post(CONSENTS, {**GRANT, "evidence": {"confirmed_at": when, "method": "form"}}))
    assert "1900-01-01" in body["detail"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_it_refuses_a_record_occurred_at_outside_the_window(api: Api, when: str) -> None:
    record = {
        "source": "shop",
        "external_id": "1",
        "category": "contact",
        "identifiers": {"email": "anna@example.de"},
        "occurred_at": when,
    }
    body = assert_problem(api.post(RECORDS, record))
    assert "1900-01-01" in body["errors"]["occurred_at"][0]


def test_a_post_to_an_unknown_api_path_is_a_problem_404_not_a_csrf_403(db: None) -> None:
    http = Client(enforce_csrf_checks=True)
    response = http.post("/api/v2/nothing", b"{}", content_type="application/json")
    assert_problem(response, 404)


def test_the_portal_sign_in_form_answers_a_nul_without_a_500(db: None) -> None:
    response = Client().post("/portal/", {"email": "anna\x00@example.de"})
    assert response.status_code < 500


def test_an_admin_search_with_a_nul_answers_without_a_500(admin_client: Client) -> None:
    response = admin_client.get("/admin/consent/apiclient/", {"q": "a\x00b"})
    assert response.status_code < 500
