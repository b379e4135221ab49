"""How many SQL statements one consent write takes (issue 12): a count, not a timing, so that a change that adds a
round trip to the hottest write path fails here. Counted as Django's query log sees them (the prepared statements of
config.db.prepared_rows included), the request's API-key lookup included; transaction control (BEGIN, COMMIT, the
test's savepoints) is not counted."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.test.utils import CaptureQueriesContext

from consent.models import ConsentEvent, ConsentState, LedgerHead
from tests.api import Api
from tests.consent.test_consent_write_api import CONSENTS, body


def statements(api: Api, payload: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connections["default"]) as captured:
        response = api.post(CONSENTS, payload, headers=headers)
    sql = [q["sql"] for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    return response, sql


def test_a_grant_on_a_known_subject_takes_at_most_four_statements(api: Api) -> None:
    # given a person the ledger knows, with a withdrawal by e-mail
    assert api.post(CONSENTS, body({"email": "anna@example.de"})).status_code == 201
    withdrawal = body({"email": "anna@example.de"}, channel="email", action="withdraw", notice_version=None)
    assert api.post(CONSENTS, withdrawal).status_code == 201
    # when a shop records a marketing grant (the suppression list is read for it)
    response, sql = statements(api, body({"email": "anna@example.de"}))
    # then: the key; the subject resolved and locked with its identifiers; the head, the state and the suppression
    # list read under the lock; one write
    assert response.status_code == 201, response.content
    assert len(sql) <= 4, "\n".join(sql)
    assert ConsentEvent.objects.filter(subject_id=response.json()["subject"]).count() == 3
    assert LedgerHead.objects.get(subject_id=response.json()["subject"]).last_seq == 3


def test_a_withdrawal_takes_at_most_four_statements(api: Api) -> None:
    assert api.post(CONSENTS, body({"email": "anna@example.de"})).status_code == 201
    response, sql = statements(api, body({"email": "anna@example.de"}, action="withdraw", notice_version=None))
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "withdrawn"
    assert len(sql) <= 4, "\n".join(sql)
    state = ConsentState.objects.get(subject_id=response.json()["subject"], purpose="newsletter", channel="sms")
    assert (state.status, state.event_id) == ("withdrawn", ConsentEvent.objects.get(seq=2).id)


def test_a_write_that_creates_its_subject_takes_at_most_nine_statements(api: Api) -> None:
    # (the client's first request also notes its last use: once a minute, not counted here)
    assert api.post(CONSENTS, body({"email": "anna@example.de"})).status_code == 201
    # nobody found by the locking statement, so the identifier's lock, resolved again under it, subject and
    # identifier created (the identifier's id first: its ciphertext is bound to it), then the read and the write
    response, sql = statements(api, body({"email": "new@example.de"}))
    assert response.status_code == 201, response.content
    assert len(sql) <= 9, "\n".join(sql)


def test_a_replayed_idempotency_key_takes_at_most_two_statements(api: Api) -> None:
    payload = body({"email": "anna@example.de"})
    first = api.post(CONSENTS, payload, headers={"Idempotency-Key": "order-4711"})
    replay, sql = statements(api, payload, headers={"Idempotency-Key": "order-4711"})
    assert (replay.status_code, replay.json()) == (first.status_code, first.json())
    # the key, and the stored answer: no lock, no transaction
    assert len(sql) <= 2, "\n".join(sql)
    assert ConsentEvent.objects.count() == 1
