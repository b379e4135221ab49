"""The consent check as other services call it (single and bulk), and the subject's consent views. The API's edges
(a database that is down, the rate limit, unknown routes, the schema and its docs) are tested in tests/config/."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from consent.catalogue.snapshot import catalogue_forget
from consent.clients import clients_forget_cache
from consent.ledger.recording import ConsentCommand
from consent.models import ConsentEvent
from consent.services import consent_record
from subjects.identity import parse_reference
from tests.api import Api, assert_problem

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
BULK = "/api/v1/consents/check-bulk"
CHECK_KEYS = {"allowed", "reason", "legal_basis", "subject", "purpose", "channel"}


# A client's own confirmation carries the when and the how of the person's act.
CONFIRMED = {"confirmed_at": "2026-01-02T10:00:00+00:00", "method": "shop-double-opt-in"}


def write(api: Api, subject: dict[str, Any], action: str = "grant", **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "subject": subject,
        "purpose": "newsletter",
        "channel": "sms",
        "action": action,
        "source": "webshop",
        **({"notice_version": "2026-01"} if action == "grant" else {}),
        **overrides,
    }
    response = api.post(CONSENTS, payload)
    assert response.status_code == 201, response.content
    answer: dict[str, Any] = response.json()
    return answer


def check(api: Api, subject: dict[str, Any], purpose: str = "newsletter", channel: str = "sms") -> Any:
    return api.post(CHECK, {"subject": subject, "purpose": purpose, "channel": channel})


# ---------------------------------------------------------------------------------------------------------
# Single check
# ---------------------------------------------------------------------------------------------------------
def test_check_allows_a_granted_consent_and_answers_in_the_documented_shape(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]

    response = check(api, {"email": "anna@example.de"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {
        "allowed": True,
        "reason": "granted",
        "legal_basis": "consent",
        "subject": anna,
        "purpose": "newsletter",
        "channel": "sms",
    }


def test_check_denies_without_any_consent(api: Api) -> None:
    # Art. 25: a consent purpose starts denied, even for a person the hub knows.
    anna = write(api, {"email": "anna@example.de"}, purpose="offers", channel="post", action="object")["subject"]

    answer = check(api, {"id": anna}, channel="push").json()

    assert (answer["allowed"], answer["reason"], answer["subject"]) == (False, "no_consent", anna)


def test_check_denies_after_withdrawal(api: Api) -> None:
    write(api, {"email": "anna@example.de"})
    write(api, {"email": "anna@example.de"}, action="withdraw")

    answer = check(api, {"email": "anna@example.de"}).json()

    assert (answer["allowed"], answer["reason"]) == (False, "withdrawn")


def test_check_sees_a_write_made_just_before_it(api: Api) -> None:
    # Read-your-writes: the state is projected in the event's transaction, nothing is eventually consistent.
    for round_ in range(5):
        write(api, {"email": "anna@example.de"}, action="grant" if round_ % 2 == 0 else "withdraw")
        assert check(api, {"email": "anna@example.de"}).json()["allowed"] is (round_ % 2 == 0)


def test_check_of_an_unknown_subject_is_denied_with_subject_null(api: Api) -> None:
    for reference in ({"email": "nobody@example.de"}, {"id": str(uuid.uuid4())}, {"customer_number": "C-1"}):
        response = check(api, reference)

        assert response.status_code == 200
        assert response.json() == {
            "allowed": False,
            "reason": "unknown_subject",
            "legal_basis": "consent",
            "subject": None,
            "purpose": "newsletter",
            "channel": "sms",
        }


def test_check_of_an_ambiguous_reference_is_denied_not_an_error(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]
    write(api, {"email": "ben@example.de"})

    response = check(api, {"id": anna, "email": "ben@example.de"})

    assert response.status_code == 200
    answer = response.json()
    assert (answer["allowed"], answer["reason"], answer["subject"]) == (False, "ambiguous_subject", None)


@pytest.mark.parametrize(
    ("purpose", "channel", "code", "field"),
    [("lottery", "email", "purpose_unknown", "purpose"), ("newsletter", "pigeon", "channel_unknown", "channel")],
)
def test_check_of_an_unknown_purpose_or_channel_is_400(
    api: Api, purpose: str, channel: str, code: str, field: str
) -> None:
    write(api, {"email": "anna@example.de"})

    assert_problem(check(api, {"email": "anna@example.de"}, purpose, channel), 400, code, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"purpose": "newsletter", "channel": "sms"}, "subject"),
        ({"subject": {"email": "a@b.de"}, "channel": "sms"}, "purpose"),
        ({"subject": {"email": "a@b.de"}, "purpose": "newsletter"}, "channel"),
        ({"subject": {"email": "not-an-address"}, "purpose": "newsletter", "channel": "sms"}, "subject.email"),
    ],
)
def test_check_with_a_missing_or_malformed_field_is_400_naming_it(api: Api, body: dict[str, Any], field: str) -> None:
    response = api.post(CHECK, body)

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_check_of_a_channel_the_purpose_does_not_list_is_200_channel_not_permitted(api: Api) -> None:
    write(api, {"email": "anna@example.de"})

    response = check(api, {"email": "anna@example.de"}, "newsletter", "post")

    assert response.status_code == 200
    assert response.json()["allowed"] is False
    assert response.json()["reason"] == "channel_not_permitted"


def test_check_allows_a_legitimate_interest_purpose_by_post(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]

    answer = check(api, {"id": anna}, "offers", "post").json()

    assert (answer["allowed"], answer["reason"], answer["legal_basis"]) == (
        True,
        "legitimate_interest",
        "legitimate_interest",
    )


def test_check_denies_a_legitimate_interest_purpose_after_an_objection(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]
    write(api, {"id": anna}, purpose="offers", channel="post", action="object")

    answer = check(api, {"id": anna}, "offers", "post").json()

    assert (answer["allowed"], answer["reason"]) == (False, "objected")


def test_check_allows_a_contract_purpose_as_contract(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]

    answer = check(api, {"id": anna}, "order-updates", "email").json()

    assert (answer["allowed"], answer["reason"], answer["legal_basis"]) == (True, "contract", "contract")


def test_check_needs_the_check_scope_and_the_purpose(api_for: Callable[..., Api]) -> None:
    writer, orders_only = api_for("consent:write"), api_for("consent:check", purposes=("order-updates",))

    assert_problem(check(writer, {"email": "a@b.de"}), 403, "forbidden")
    assert_problem(check(orders_only, {"email": "a@b.de"}), 403, "forbidden")
    assert check(orders_only, {"email": "a@b.de"}, "order-updates", "sms").status_code == 200


# ---------------------------------------------------------------------------------------------------------
# Bulk check
# ---------------------------------------------------------------------------------------------------------
def test_bulk_check_answers_one_result_per_reference_in_input_order(api: Api) -> None:
    # given Anna granted, Ben withdrawn, Carla pending (double opt-in) on e-mail
    anna = write(
        api,
        {"email": "anna@example.de"},
        channel="email",
        action="confirm",
        notice_version="2026-01",
        evidence=CONFIRMED,
    )
    ben = write(
        api,
        {"email": "ben@example.de"},
        channel="email",
        action="confirm",
        notice_version="2026-01",
        evidence=CONFIRMED,
    )
    write(api, {"id": ben["subject"]}, channel="email", action="withdraw")
    carla = write(api, {"email": "carla@example.de"}, channel="email")
    assert carla["state"] == "pending_confirmation"

    # when the campaign tool asks about them, someone unknown, an ambiguous reference and Anna again
    references = [
        {"email": "ben@example.de"},
        {"email": "nobody@example.de"},
        {"id": anna["subject"]},
        {"email": "carla@example.de"},
        {"id": anna["subject"], "email": "ben@example.de"},
        {"email": "ANNA@example.de"},
    ]
    response = api.post(BULK, {"purpose": "newsletter", "channel": "email", "subjects": references})

    # then the results come back in the same order, each shaped like a single check
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert all(set(result) == CHECK_KEYS for result in results)
    assert [(r["reason"], r["subject"]) for r in results] == [
        ("withdrawn", ben["subject"]),
        ("unknown_subject", None),
        ("granted", anna["subject"]),
        ("pending_confirmation", carla["subject"]),
        ("ambiguous_subject", None),
        ("granted", anna["subject"]),
    ]
    assert [r["allowed"] for r in results] == [False, False, True, False, False, True]
    assert {(r["purpose"], r["channel"]) for r in results} == {("newsletter", "email")}


@pytest.mark.parametrize("count", [0, 10_001])
def test_bulk_check_of_no_or_too_many_references_is_400(api: Api, count: int) -> None:
    references = [{"email": f"p{i}@example.de"} for i in range(count)]

    response = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": references})

    assert_problem(response, 400, "invalid", "subjects")


def test_bulk_check_of_the_most_references_allowed_is_answered(api: Api) -> None:
    references = [{"email": f"p{i}@example.de"} for i in range(10_000)]

    response = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": references})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 10_000


@pytest.mark.parametrize(
    ("bad", "code", "field"),
    [
        ({"email": "not-an-address"}, "invalid_identifier", "subjects[3].email"),
        ({"passport": "X1"}, "invalid_subject", "subjects[3].passport"),
        ({"id": "42"}, "invalid_subject", "subjects[3].id"),
        ("anna@example.de", "invalid_subject", "subjects[3]"),
        ({}, "invalid_subject", "subjects[3]"),
    ],
)
def test_bulk_check_with_a_malformed_reference_is_400_naming_it(api: Api, bad: Any, code: str, field: str) -> None:
    references: list[Any] = [{"email": f"p{i}@example.de"} for i in range(5)]
    references[3] = bad

    response = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": references})

    assert_problem(response, 400, code, field)


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            {"purpose": "lottery", "channel": "sms", "subjects": [{"email": "a@b.de"}]},
            400,
            "purpose_unknown",
            "purpose",
        ),
        (
            {"purpose": "newsletter", "channel": "pigeon", "subjects": [{"email": "a@b.de"}]},
            400,
            "channel_unknown",
            "channel",
        ),
        ({"channel": "sms", "subjects": [{"email": "a@b.de"}]}, 400, "invalid", "purpose"),
        ({"purpose": "newsletter", "channel": 7, "subjects": [{"email": "a@b.de"}]}, 400, "invalid", "channel"),
        ({"purpose": "newsletter", "channel": "sms", "subjects": {"email": "a@b.de"}}, 400, "invalid", "subjects"),
        ([{"email": "a@b.de"}], 400, "invalid", "body"),
    ],
)
def test_bulk_check_with_bad_input_is_400(api: Api, body: Any, status: int, code: str, field: str) -> None:
    assert_problem(api.post(BULK, body), status, code, field)


def test_bulk_check_of_an_unlisted_channel_denies_every_reference(api: Api) -> None:
    write(api, {"email": "anna@example.de"})

    response = api.post(BULK, {"purpose": "newsletter", "channel": "post", "subjects": [{"email": "anna@example.de"}]})

    assert response.status_code == 200
    assert response.json()["results"][0]["reason"] == "channel_not_permitted"


def _grant_many(count: int, start: int = 0) -> list[dict[str, Any]]:
    """References to `count` people, every second one granted on SMS (through the service, not the API)."""
    references: list[dict[str, Any]] = []
    for i in range(start, start + count):
        email = f"bulk{i}@example.de"
        recorded = consent_record(
            command=ConsentCommand(
                reference=parse_reference({"email": email}),
                purpose="newsletter",
                channel="sms",
                action="grant" if i % 2 == 0 else "withdraw",
                notice_version="2026-01" if i % 2 == 0 else None,
                source="import",
            )
        )
        references.append({"id": str(recorded.subject_id)} if i % 3 == 0 else {"email": email})
    return references


def test_bulk_check_query_count_does_not_grow_with_the_number_of_subjects(
    api: Api, django_assert_max_num_queries: Any
) -> None:
    # given 10 and 500 known people, a mix of ids and e-mails, plus unknown people in each batch
    small = [*_grant_many(10), {"email": "ghost-a@example.de"}, {"id": str(uuid.uuid4())}]
    large = [*_grant_many(500, start=10), {"email": "ghost-b@example.de"}, {"id": str(uuid.uuid4())}]
    api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": small[:1]})  # warm-up: last_used_at

    def queries_for(references: list[dict[str, Any]]) -> int:
        # The same cold per-process caches for both runs, so both pay the same fixed cost.
        catalogue_forget()
        clients_forget_cache()
        with CaptureQueriesContext(connections["default"]) as queries:
            response = api.post(BULK, {"purpose": "newsletter", "channel": "sms", "subjects": references})
        assert response.status_code == 200
        results = response.json()["results"]
        assert len(results) == len(references)
        assert sum(r["allowed"] for r in results) == sum(1 for i in range(len(references) - 2) if i % 2 == 0)
        return len(queries)

    # when both batches are checked
    with django_assert_max_num_queries(15):  # a fixed handful: key, catalogue, resolution, states
        small_count = queries_for(small)
    large_count = queries_for(large)

    # then the large batch costs exactly as many queries as the small one
    assert large_count == small_count


# ---------------------------------------------------------------------------------------------------------
# The subject's consents and history
# ---------------------------------------------------------------------------------------------------------
def test_subject_consents_lists_each_state_with_its_reason(api: Api) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]
    write(api, {"id": anna, "email": "anna@example.de"}, channel="email")
    write(api, {"id": anna}, channel="push")
    write(api, {"id": anna}, channel="push", action="withdraw")

    response = api.get(f"/api/v1/subjects/{anna}/consents")

    assert response.status_code == 200
    answer = response.json()
    assert answer["subject"] == anna
    states = {(s["purpose"], s["channel"]): s for s in answer["states"]}
    assert set(states) == {("newsletter", "sms"), ("newsletter", "email"), ("newsletter", "push")}
    assert all(set(s) == {"purpose", "channel", "state", "reason", "since", "notice_version"} for s in states.values())
    assert (states["newsletter", "sms"]["state"], states["newsletter", "sms"]["reason"]) == ("granted", "granted")
    assert (states["newsletter", "email"]["state"], states["newsletter", "email"]["reason"]) == (
        "pending_confirmation",
        "pending_confirmation",
    )
    assert (states["newsletter", "push"]["state"], states["newsletter", "push"]["reason"]) == ("withdrawn", "withdrawn")
    assert states["newsletter", "sms"]["notice_version"] == "2026-01"
    assert parse_datetime(states["newsletter", "sms"]["since"]) is not None


def test_subject_history_lists_every_event_in_chain_order(api: Api) -> None:
    # given three events, the last one uploaded late with an older occurred_at
    now = timezone.now()
    anna = write(api, {"email": "anna@example.de"}, occurred_at=(now - timedelta(hours=2)).isoformat())["subject"]
    write(api, {"id": anna}, action="withdraw")
    write(api, {"id": anna}, source="pos", occurred_at=(now - timedelta(hours=1)).isoformat())

    response = api.get(f"/api/v1/subjects/{anna}/consents/history")

    # then they are listed in recording order, each linked to the one before it
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(e["seq"], e["action"], e["source"]) for e in results] == [
        (1, "grant", "webshop"),
        (2, "withdraw", "webshop"),
        (3, "grant", "pos"),
    ]
    assert set(results[0]) == {
        "id",  # the event, whose signed receipt is at /api/v1/consents/events/{id}/receipt
        "seq",
        "action",
        "purpose",
        "channel",
        "notice_version",
        "source",
        "actor",
        "occurred_at",
        "recorded_at",
        "prev_hash",
        "hash",
    }
    assert results[0]["prev_hash"] == "0" * 64
    assert [e["prev_hash"] for e in results[1:]] == [e["hash"] for e in results[:-1]]
    assert [e["hash"] for e in results] == list(
        ConsentEvent.objects.filter(subject_id=anna).order_by("seq").values_list("hash", flat=True)
    )
    assert results[1]["notice_version"] is None
    late_grant, withdrawal = (datetime.fromisoformat(results[i]["occurred_at"]) for i in (2, 1))
    assert late_grant < withdrawal


@pytest.mark.parametrize("path", ["/api/v1/subjects/{}/consents", "/api/v1/subjects/{}/consents/history"])
def test_subject_views_of_an_unknown_subject_are_404(api: Api, path: str) -> None:
    assert_problem(api.get(path.format(uuid.uuid4())), 404, "unknown_subject")


@pytest.mark.parametrize("path", ["/api/v1/subjects/{}/consents", "/api/v1/subjects/{}/consents/history"])
def test_subject_views_need_the_read_scope(api: Api, api_for: Callable[..., Api], path: str) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]

    assert_problem(api_for("consent:check", "consent:write").get(path.format(anna)), 403, "forbidden")


def test_subject_views_show_a_purpose_restricted_client_only_its_purposes(
    api: Api, api_for: Callable[..., Api]
) -> None:
    anna = write(api, {"email": "anna@example.de"})["subject"]
    write(api, {"id": anna}, purpose="offers", channel="post", action="object")
    orders_only = api_for("consent:read", purposes=("offers",))

    states = orders_only.get(f"/api/v1/subjects/{anna}/consents").json()["states"]
    history = orders_only.get(f"/api/v1/subjects/{anna}/consents/history").json()["results"]

    assert {s["purpose"] for s in states} == {"offers"}
    assert [e["purpose"] for e in history] == ["offers"]


def test_every_reference_kind_resolves_in_a_check(api: Api) -> None:
    reference = {"email": "anna@example.de", "phone": "+49 171 1234567", "customer_number": "C-1"}
    anna = write(api, reference)["subject"]

    for kind, value in reference.items():
        assert check(api, {kind: value}).json()["subject"] == anna


def test_a_bulk_answer_renders_each_result_as_a_single_answer_would() -> None:
    import uuid

    import orjson

    from consent.api.check import decision_bodies, decision_body
    from consent.gates.check import CheckResult
    from consent.policy import Decision, LegalBasis, Reason

    results = [
        CheckResult(uuid.uuid4(), Decision.deny(Reason.NO_CONSENT, LegalBasis.CONSENT)),
        CheckResult(None, Decision.deny(Reason.UNKNOWN_SUBJECT, LegalBasis.CONSENT)),
        CheckResult(uuid.uuid4(), Decision(True, Reason.GRANTED, LegalBasis.CONSENT)),
        CheckResult(uuid.uuid4(), Decision(False, Reason.UNAVAILABLE, None)),  # not a shared object: its own shape
        CheckResult(uuid.uuid4(), Decision.deny(Reason.NO_CONSENT, LegalBasis.CONSENT)),
    ]

    bulk = orjson.loads(orjson.dumps(decision_bodies(results, "newsletter", "email")))

    assert bulk == [decision_body(r, "newsletter", "email") for r in results]
