"""A refused request names everything that is wrong with it at once, so a client fixes it in one round; a key without
the scope an endpoint needs is told which scope that is."""

from __future__ import annotations

from collections.abc import Callable

from tests.api import Api, assert_problem


def test_a_check_without_a_body_names_every_missing_field(api: Api) -> None:
    problem = assert_problem(api.post("/api/v1/consents/check", {}), 400, "invalid")

    assert set(problem["errors"]) == {"purpose", "channel", "subject"}
    for field in ("purpose", "channel", "subject"):
        assert field in problem["detail"]


def test_a_bulk_check_names_every_bad_reference(api: Api) -> None:
    body = {
        "purpose": "newsletter",
        "channel": "email",
        "subjects": [{"email": "kim@example.org"}, {"email": "not-an-address"}, {"pet": "Rex"}, {"id": "x"}],
    }

    problem = assert_problem(api.post("/api/v1/consents/check-bulk", body), 400, "invalid_identifier")

    assert set(problem["errors"]) == {"subjects[1].email", "subjects[2].pet", "subjects[3].id"}


def test_a_bulk_check_names_a_missing_purpose_beside_a_bad_reference(api: Api) -> None:
    body = {"channel": "email", "subjects": [{"email": "not-an-address"}]}

    problem = assert_problem(api.post("/api/v1/consents/check-bulk", body), 400, "invalid")

    assert set(problem["errors"]) == {"purpose", "subjects[0].email"}


def test_a_send_without_a_body_names_every_missing_field(api: Api) -> None:
    problem = assert_problem(api.post("/api/v1/sends", {}), 400, "invalid")

    assert set(problem["errors"]) == {"campaign", "purpose", "channel", "recipients"}


def test_a_send_names_every_bad_recipient(api: Api) -> None:
    body = {"campaign": "c", "purpose": "newsletter", "channel": "email", "recipients": [{"email": "x"}, {}]}

    problem = assert_problem(api.post("/api/v1/sends", body), 400, "invalid_identifier")

    assert set(problem["errors"]) == {"recipients[0].email", "recipients[1]"}


def test_a_consent_write_names_a_bad_subject_beside_the_missing_fields(api: Api) -> None:
    body = {"subject": {"email": "anna-at-example"}, "channel": "sms"}

    problem = assert_problem(api.post("/api/v1/consents", body), 400, "invalid_identifier")

    assert {"subject.email", "purpose", "action", "source"} <= set(problem["errors"])
    assert "subject.email" in problem["detail"]
    assert "purpose" in problem["detail"]


def test_a_rights_request_names_a_bad_channel_beside_a_missing_kind(api: Api) -> None:
    body = {"subject": {"email": "kim@example.org"}, "channel": "Call Centre"}

    problem = assert_problem(api.post("/api/v1/requests", body), 400, "invalid")

    assert set(problem["errors"]) == {"kind", "channel"}


def test_a_single_bad_field_keeps_its_own_words(api: Api) -> None:
    body = {"subject": {"email": "kim@example.org"}, "purpose": "newsletter"}

    problem = assert_problem(api.post("/api/v1/consents/check", body), 400, "invalid", field="channel")

    assert problem["errors"] == {"channel": ["is required and must be a non-empty string"]}
    assert problem["detail"] == "is required and must be a non-empty string"


def test_a_key_without_the_scope_is_told_which_scope_it_lacks(api_for: Callable[..., Api]) -> None:
    reader = api_for("consent:read")

    response = reader.post("/api/v1/consents/check", {"subject": {"email": "kim@example.org"}})

    problem = assert_problem(response, 403, "forbidden")
    assert problem["scope"] == "consent:check"
    assert "consent:check" in problem["detail"]


def test_each_endpoint_names_its_own_scope(api_for: Callable[..., Api]) -> None:
    checker = api_for("consent:check")

    for path, scope in (("/api/v1/sends", "sends:create"), ("/api/v1/records", "records:write")):
        problem = assert_problem(checker.post(path, {}), 403, "forbidden")
        assert problem["scope"] == scope


def test_a_send_job_names_every_missing_query_parameter(api: Api) -> None:
    response = api.post_raw(
        "/api/v1/send-jobs?channel=email", b'{"email": "kim@example.org"}\n', "application/x-ndjson"
    )

    problem = assert_problem(response, 400, "invalid")
    assert set(problem["errors"]) == {"campaign", "purpose"}


def test_a_confirm_with_bad_evidence_names_the_other_bad_fields_too(api: Api) -> None:
    body = {
        "subject": {"email": "kim@example.org"},
        "purpose": "newsletter",
        "channel": "email",
        "action": "confirm",
        "evidence": {"confirmed_at": "yesterday", "method": "double-opt-in"},
    }

    problem = assert_problem(api.post("/api/v1/consents", body), 400, "evidence_required")

    assert set(problem["errors"]) == {"evidence.confirmed_at", "source"}


BAD_RECORD = {
    "source": "moon-base",
    "external_id": "R-1",
    "category": "purchases",
    "identifiers": {"email": "not-an-address", "pet": "Rex"},
    "occurred_at": "2026-03-14T10:30:00Z",
}


def test_a_record_names_an_unknown_source_beside_every_bad_identifier(api: Api) -> None:
    problem = assert_problem(api.post("/api/v1/records", BAD_RECORD), 400, "source_unknown")

    assert set(problem["errors"]) == {"source", "identifiers.email", "identifiers.pet"}


def test_a_batch_reports_every_bad_field_of_an_invalid_record(api: Api) -> None:
    response = api.post("/api/v1/records/batch", {"records": [BAD_RECORD]})

    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["status"] == "invalid"
    assert set(result["errors"]) == {"source", "identifiers.email", "identifiers.pet"}
