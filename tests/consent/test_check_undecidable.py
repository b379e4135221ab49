"""A check that cannot decide is a denial, and says so (issue 9, item 7; API.md: 503 with `allowed: false,
reason: "unavailable"`). A single check and a call that cannot decide anything answer 503; one reference that
cannot be decided inside a bulk check or a send is a denial `unavailable` beside the others' answers."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import connection

from consent import policy
from consent.models import Send
from tests.api import Api
from tests.factories import grant

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
BULK = "/api/v1/consents/check-bulk"
SENDS = "/api/v1/sends"
ANNA = {"email": "anna@example.de"}
BEN = {"email": "ben@example.de"}


def corrupt_state_of(subject_id: str) -> None:
    """A state row the policy cannot read: a status outside the projection's vocabulary (a bad restore, a
    hand-made UPDATE)."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_consentstate SET status = 'bogus' WHERE subject_id = %s", [subject_id])
        assert cursor.rowcount == 1


def check(api: Api, subject: dict[str, Any]) -> Any:
    return api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": "sms"})


def bulk(api: Api, *subjects: dict[str, Any]) -> Any:
    return api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": list(subjects)})


def send(api: Api, *recipients: dict[str, Any]) -> Any:
    return api.post(
        SENDS, {"campaign": "spring", "purpose": "newsletter", "channel": "sms", "recipients": list(recipients)}
    )


def assert_undecidable(response: Any) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert (body["status"], body["code"], body["allowed"], body["reason"]) == (503, "unavailable", False, "unavailable")
    assert response["Retry-After"]


@pytest.fixture
def policy_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pure policy function raises for everyone (a bug in a rule): decide() must fail closed."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a rule that cannot be evaluated")

    monkeypatch.setattr(policy, "_decide", broken)


# ---------------------------------------------------------------------------------------------------------
# Single check
# ---------------------------------------------------------------------------------------------------------
def test_a_single_check_whose_state_cannot_be_read_answers_503_deny(api: Api) -> None:
    corrupt_state_of(grant(ANNA))

    assert_undecidable(check(api, ANNA))


def test_a_single_check_whose_policy_fails_answers_503_deny(api: Api, policy_fails: None) -> None:
    grant(ANNA)

    assert_undecidable(check(api, ANNA))


def test_a_check_that_can_decide_still_answers_200(api: Api) -> None:
    grant(ANNA)

    response = check(api, ANNA)

    assert response.status_code == 200
    assert (response.json()["allowed"], response.json()["reason"]) == (True, "granted")


# ---------------------------------------------------------------------------------------------------------
# Bulk check
# ---------------------------------------------------------------------------------------------------------
def test_one_undecidable_reference_in_a_bulk_check_is_a_deny_unavailable_beside_the_others(api: Api) -> None:
    corrupt_state_of(grant(ANNA))
    grant(BEN)

    response = bulk(api, ANNA, BEN, {"email": "nobody@example.de"})

    assert response.status_code == 200, response.content
    answers = [(r["allowed"], r["reason"]) for r in response.json()["results"]]
    assert answers == [(False, "unavailable"), (True, "granted"), (False, "unknown_subject")]


def test_a_bulk_check_that_can_decide_nothing_answers_503_deny(api: Api) -> None:
    corrupt_state_of(grant(ANNA))

    assert_undecidable(bulk(api, ANNA, ANNA))


def test_a_bulk_check_whose_policy_fails_answers_503_deny(api: Api, policy_fails: None) -> None:
    grant(ANNA)
    grant(BEN)

    assert_undecidable(bulk(api, ANNA, BEN))


# ---------------------------------------------------------------------------------------------------------
# Sends: the gate fails closed the same way
# ---------------------------------------------------------------------------------------------------------
def test_an_undecidable_recipient_of_a_send_is_blocked_with_unavailable(api: Api) -> None:
    corrupt_state_of(grant(ANNA))
    grant(BEN)

    response = send(api, ANNA, BEN)

    assert response.status_code == 201, response.content
    body = response.json()
    assert [(b["index"], b["reason"]) for b in body["blocked"]] == [(0, "unavailable")]
    assert [a["index"] for a in body["allowed"]] == [1]


def test_a_send_whose_policy_fails_answers_503_and_logs_no_send(api: Api, policy_fails: None) -> None:
    grant(ANNA)

    assert_undecidable(send(api, ANNA))
    assert Send.objects.count() == 0


# ---------------------------------------------------------------------------------------------------------
# The database goes away
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_check_whose_database_connection_was_terminated_answers_503_deny(api: Api) -> None:
    grant(ANNA)
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    settings = connection.get_connection_params()
    with psycopg.connect(**settings, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])

    try:
        assert_undecidable(check(api, ANNA))
        assert_undecidable(bulk(api, ANNA, BEN))
    finally:
        connection.close()  # the next query (the test's teardown) connects afresh


# ---------------------------------------------------------------------------------------------------------
# Profile reads through the gate
# ---------------------------------------------------------------------------------------------------------
def test_a_profile_read_whose_state_cannot_be_read_answers_503_deny(api: Api) -> None:
    corrupt_state_of(subject := grant(ANNA))

    assert_undecidable(api.get(f"/api/v1/subjects/{subject}/profile?purpose=newsletter"))


def test_the_subjects_consents_whose_state_cannot_be_read_answer_503_not_500(api: Api) -> None:
    corrupt_state_of(subject := grant(ANNA))

    assert_undecidable(api.get(f"/api/v1/subjects/{subject}/consents"))
