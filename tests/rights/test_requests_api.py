"""The /requests API: shapes, states and transitions, bad input, scopes, and no enumeration. Parts run in this
process (tests/rights/helpers.drain); tests/rights/test_worker.py runs them on a real worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from subjects.models import RightsRequest, Subject
from subjects.rights import texts
from tests.api import Api
from tests.rights.erasure_checks import assert_gone_from_every_table
from tests.rights.helpers import drain, seed_person

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def open_request(api: Api, kind: str, subject: dict[str, Any], **extra: Any) -> Any:
    return api.post(REQUESTS, {"kind": kind, "subject": subject, "channel": "portal", **extra})


def test_opening_a_request_answers_202_with_id_kind_status_and_due_at(rapi: Api) -> None:
    person = seed_person("api1", records_per_source=0)
    response = open_request(rapi, "access", {"email": person.email})
    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {"id", "kind", "status", "due_at"}
    assert (body["kind"], body["status"]) == ("access", "received")
    request = RightsRequest.objects.get(pk=body["id"])
    assert request.subject_id == person.subject_id
    assert request.due_at > request.received_at


def test_an_unverified_request_waits_until_verify_records_the_client_as_verifier(rapi: Api) -> None:
    person = seed_person("api2", records_per_source=0)
    request_id = open_request(rapi, "access", {"email": person.email}).json()["id"]
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["parts"] == []

    verified = rapi.post(f"{REQUESTS}/{request_id}/verify", {})

    assert verified.status_code == 200, verified.content
    body = verified.json()
    assert body["status"] == "processing"
    assert body["verified_at"] is not None
    events = [(h["event"], h["by"]) for h in body["history"]]
    assert events[:2] == [("received", "client:client-0"), ("verified", "client:client-0")]
    assert [p["name"] for p in body["parts"]] == [
        "source:app",
        "source:callcenter",
        "source:pos",
        "source:shop",
        "source:web",
        "profile",
        "consent",
        "finish",
    ]
    assert rapi.post(f"{REQUESTS}/{request_id}/verify", {}).status_code == 409


def test_an_erasure_waits_for_approval_and_approve_is_409_in_any_other_state(rapi: Api) -> None:
    person = seed_person("api3", records_per_source=1)
    request_id = open_request(rapi, "erasure", {"email": person.email}).json()["id"]
    assert rapi.post(f"{REQUESTS}/{request_id}/approve", {}).json()["code"] == "request_state"  # received

    rapi.post(f"{REQUESTS}/{request_id}/verify", {})
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "awaiting_approval"
    approved = rapi.post(f"{REQUESTS}/{request_id}/approve", {})
    assert approved.status_code == 202, approved.content
    assert approved.json()["status"] == "processing"
    assert Subject.objects.get(pk=person.subject_id).erasure_started_at is not None

    assert rapi.post(f"{REQUESTS}/{request_id}/approve", {}).status_code == 409  # processing
    drain(request_id)
    assert rapi.post(f"{REQUESTS}/{request_id}/approve", {}).status_code == 409  # completed
    assert_gone_from_every_table(person, [person.subject_id])


def test_other_kinds_never_wait_for_approval(rapi: Api) -> None:
    person = seed_person("api4", records_per_source=0)
    body = open_request(rapi, "access", {"email": person.email}, verified=True).json()
    assert body["status"] == "processing"
    assert rapi.post(f"{REQUESTS}/{body['id']}/approve", {}).status_code == 409


def test_an_objection_takes_effect_unverified_before_the_answer(rapi: Api) -> None:
    person = seed_person("api5", records_per_source=0)
    check = {"subject": {"email": person.email}, "purpose": "offers", "channel": "post"}
    assert rapi.post("/api/v1/consents/check", check).json()["allowed"] is True

    body = open_request(rapi, "objection", {"email": person.email}, details={"scope": "direct_marketing"}).json()

    assert body["status"] == "processing"
    assert rapi.post("/api/v1/consents/check", check).json()["reason"] == "objected"
    assert drain(body["id"]).status == "completed"


def test_lift_is_a_409_unless_the_request_is_a_completed_restriction(rapi: Api) -> None:
    person = seed_person("api6", records_per_source=0)
    access = open_request(rapi, "access", {"email": person.email}, verified=True).json()["id"]
    drain(access)
    assert rapi.post(f"{REQUESTS}/{access}/lift", {}).status_code == 409
    restriction = open_request(rapi, "restriction", {"email": person.email}, details={"ground": "18(1)(a)"}).json()
    assert rapi.post(f"{REQUESTS}/{restriction['id']}/lift", {}).status_code == 409  # received
    rapi.post(f"{REQUESTS}/{restriction['id']}/verify", {})
    drain(restriction["id"])
    assert rapi.post(f"{REQUESTS}/{restriction['id']}/lift", {}).status_code == 202
    assert rapi.post(f"{REQUESTS}/{restriction['id']}/lift", {}).status_code == 409  # being lifted


def test_a_second_identical_open_request_is_a_409_with_the_existing_id(rapi: Api) -> None:
    person = seed_person("api7", records_per_source=0)
    first = open_request(rapi, "erasure", {"email": person.email}).json()
    again = open_request(rapi, "erasure", {"customer_number": "C-api7"})  # the same person by another identifier
    assert again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert again.json()["id"] == first["id"]
    assert again.json()["code"] == "request_open"
    # Another kind, or another objection, is another request.
    assert open_request(rapi, "access", {"email": person.email}).status_code == 202
    assert open_request(rapi, "objection", {"email": person.email}, details={"purpose": "offers"}).status_code == 202
    assert (
        open_request(rapi, "objection", {"email": person.email}, details={"purpose": "newsletter"}).status_code == 202
    )


def test_an_identical_request_after_the_first_completed_is_accepted(rapi: Api) -> None:
    person = seed_person("api8", records_per_source=0)
    first = open_request(rapi, "access", {"email": person.email}, verified=True).json()["id"]
    drain(first)
    assert open_request(rapi, "access", {"email": person.email}, verified=True).status_code == 202


def test_identical_requests_about_an_unknown_person_are_found_too(rapi: Api) -> None:
    first = open_request(rapi, "access", {"email": "nobody@example.de"}).json()
    again = open_request(rapi, "access", {"email": " Nobody@Example.DE "})
    assert again.status_code == 409
    assert again.json()["id"] == first["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "deletion"}, "kind"),
        ({"kind": 7}, "kind"),
        ({"kind": "access", "details": "all"}, "details"),
        ({"kind": "access", "details": {"scope": "x"}}, "details.scope"),
        ({"kind": "objection"}, "details"),
        ({"kind": "objection", "details": {"scope": "direct_marketing", "purpose": "offers"}}, "details"),
        ({"kind": "objection", "details": {"scope": "everything"}}, "details.scope"),
        ({"kind": "objection", "details": {"purpose": "no-such-purpose"}}, "details.purpose"),
        ({"kind": "objection", "details": {"purpose": 5}}, "details.purpose"),
        ({"kind": "restriction"}, "details.ground"),
        ({"kind": "restriction", "details": {"ground": "18(2)"}}, "details.ground"),
        ({"kind": "rectification"}, "details"),
        ({"kind": "rectification", "details": {"identifiers": {}}}, "details"),
        ({"kind": "rectification", "details": {"identifiers": {"iban": "DE00"}}}, "details.identifiers.iban"),
        (
            {"kind": "rectification", "details": {"identifiers": {"email": "not-an-address"}}},
            "details.identifiers.email",
        ),
        ({"kind": "rectification", "details": {"profile": []}}, "details.profile"),
        ({"kind": "rectification", "details": {"profile": {"name": "A"}, "note": 1}}, "details.note"),
        ({"kind": "access", "channel": "Call Centre"}, "channel"),
        ({"kind": "access", "subject": {}}, "subject"),
        ({"kind": "access", "subject": {"email": "x@y"}}, "subject.email"),
        ({"kind": "access", "subject": {"id": "not-a-uuid"}}, "subject.id"),
        ({"kind": "access", "subject": "anna@example.de"}, "subject"),
        ({"kind": "access", "verified": "perhaps"}, "verified"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(rapi: Api, body: dict[str, Any], field: str) -> None:
    payload = {"subject": {"email": "anna@example.de"}, "channel": "portal", **body}
    response = rapi.post(REQUESTS, payload)
    assert response.status_code == 400, response.content
    problem = response.json()
    assert response["Content-Type"] == "application/problem+json"
    assert problem["code"] in ("invalid", "invalid_details", "kind_unknown", "invalid_identifier", "invalid_subject")
    assert field in problem["errors"], problem
    assert RightsRequest.objects.count() == 0


def test_a_body_that_is_not_json_is_a_400(rapi: Api) -> None:
    assert rapi.post_raw(REQUESTS, b"{not json").status_code == 400


def test_a_request_never_creates_a_subject(rapi: Api) -> None:
    before = Subject.objects.count()
    for kind, details in [
        ("access", {}),
        ("erasure", {}),
        ("objection", {"scope": "direct_marketing"}),
        ("rectification", {"profile": {"name": "X"}}),
        ("restriction", {"ground": "18(1)(b)"}),
    ]:
        response = open_request(rapi, kind, {"email": f"{kind}@unknown.example"}, verified=True, details=details)
        assert response.status_code == 202, response.content
    assert Subject.objects.count() == before


def test_an_unknown_persons_request_completes_with_the_words_of_any_request_that_found_nothing(rapi: Api) -> None:
    # given one request about nobody and one about a known person
    person = seed_person("api9", records_per_source=1)
    unknown = open_request(rapi, "access", {"email": "ghost@example.de"}, verified=True).json()
    known = open_request(rapi, "access", {"email": person.email}, verified=True).json()
    assert {k: v for k, v in unknown.items() if k not in ("id", "due_at")} == {
        k: v for k, v in known.items() if k not in ("id", "due_at")
    }

    # when both run
    drain(unknown["id"])
    drain(known["id"])

    # then the unknown one completes like any other, through the same parts, saying no data was found
    a = rapi.get(f"{REQUESTS}/{unknown['id']}").json()
    b = rapi.get(f"{REQUESTS}/{known['id']}").json()
    assert a["status"] == b["status"] == "completed"
    assert [p["name"] for p in a["parts"]] == [p["name"] for p in b["parts"]]
    assert [h["event"] for h in a["history"]] == [h["event"] for h in b["history"]]
    assert set(a["result"]) == set(b["result"])
    assert a["result"]["message"] == texts.NO_DATA_FOUND
    assert a["result"]["data_found"] is False
    assert "export_url" in a["result"]
    assert b["result"]["data_found"] is True


@pytest.mark.parametrize("kind", ["erasure", "rectification", "restriction", "objection", "portability"])
def test_every_kind_about_nobody_completes_with_no_data_found(rapi: Api, kind: str) -> None:
    details = {
        "erasure": {},
        "portability": {},
        "rectification": {"profile": {"name": "X"}},
        "restriction": {"ground": "18(1)(a)"},
        "objection": {"purpose": "offers"},
    }[kind]
    body = open_request(rapi, kind, {"email": "ghost@example.de"}, verified=True, details=details).json()
    if kind == "erasure":
        rapi.post(f"{REQUESTS}/{body['id']}/approve", {})
    drain(body["id"])
    result = rapi.get(f"{REQUESTS}/{body['id']}").json()
    assert result["status"] == "completed"
    assert result["result"]["message"] == texts.NO_DATA_FOUND


@pytest.mark.parametrize(
    ("scopes", "method", "path", "status"),
    [
        (("requests:read",), "post", "", 403),
        (("requests:write",), "get", "/{id}", 403),
        (("requests:write",), "post", "/{id}/approve", 403),
        (("requests:write",), "post", "/{id}/lift", 403),
        (("requests:approve",), "post", "/{id}/verify", 403),
        (("requests:write",), "post", "/{id}/verify", 200),
    ],
)
def test_each_endpoint_needs_its_scope(
    rapi: Api, rapi_for: Callable[..., Api], scopes: tuple[str, ...], method: str, path: str, status: int
) -> None:
    request_id = open_request(rapi, "access", {"email": "scope@example.de"}).json()["id"]
    caller = rapi_for(*scopes)
    url = REQUESTS + path.format(id=request_id)
    response = (
        caller.get(url)
        if method == "get"
        else caller.post(url, {"kind": "access", "subject": {"email": "a@b.de"}, "channel": "portal"})
    )
    assert response.status_code == status, response.content


def test_without_a_key_it_is_401(rapi: Api) -> None:
    assert Api(None).post(REQUESTS, {}).status_code == 401


def test_a_client_with_purposes_may_only_object_to_its_purposes(rapi_for: Callable[..., Api], rapi: Api) -> None:
    limited = rapi_for("requests:write", "requests:read", purposes=("offers",))
    mine = limited.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"email": "lim@example.de"},
            "channel": "crm",
            "details": {"purpose": "offers"},
        },
    )
    assert mine.status_code == 202, mine.content
    assert limited.get(f"{REQUESTS}/{mine.json()['id']}").status_code == 200
    other = limited.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"email": "lim@example.de"},
            "channel": "crm",
            "details": {"purpose": "newsletter"},
        },
    )
    assert other.status_code == 403
    assert other.json()["code"] == "forbidden"
    assert (
        limited.post(REQUESTS, {"kind": "access", "subject": {"email": "lim@example.de"}, "channel": "crm"}).status_code
        == 403
    )
    # and it does not see other clients' requests
    foreign = open_request(rapi, "access", {"email": "lim@example.de"}).json()["id"]
    assert limited.get(f"{REQUESTS}/{foreign}").status_code == 404


def test_an_unknown_request_is_a_404_problem(rapi: Api) -> None:
    response = rapi.get(f"{REQUESTS}/6f1c8f2e-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert rapi.post(f"{REQUESTS}/6f1c8f2e-0000-4000-8000-000000000000/verify", {}).status_code == 404


def test_a_reference_naming_two_people_is_a_409(rapi: Api) -> None:
    a = seed_person("amb1", records_per_source=0)
    seed_person("amb2", records_per_source=0)
    response = open_request(rapi, "access", {"id": str(a.subject_id), "email": "amb2@example.de"})
    assert response.status_code == 409
    assert response.json()["code"] == "ambiguous_subject"


def test_the_schema_documents_the_requests_endpoints(rapi: Api) -> None:
    schema = Api(None).get("/api/schema/").content.decode()
    for path in (
        "/api/v1/requests",
        "/api/v1/requests/{request_id}",
        "/api/v1/requests/{request_id}/verify",
        "/api/v1/requests/{request_id}/approve",
        "/api/v1/requests/{request_id}/lift",
        "/api/v1/requests/{request_id}/export",
    ):
        assert path + ":" in schema, path


@pytest.mark.django_db(transaction=True)
def test_identical_requests_opened_at_once_open_one_and_name_it_to_the_others(rights_catalogue: Any) -> None:
    import threading

    from django.db import connection

    from subjects.identity import parse_reference
    from subjects.rights.details import Details
    from subjects.rights.errors import RequestOpenError
    from subjects.rights.requests import Actor, request_open

    person = seed_person("race1", records_per_source=0)
    barrier = threading.Barrier(8)
    opened: list[str] = []
    refused: list[str] = []

    def attempt() -> None:
        try:
            barrier.wait()
            request = request_open(
                kind="erasure",
                reference=parse_reference({"email": person.email}),
                channel="portal",
                verified=False,
                details=Details({}),
                actor=Actor("test"),
            )
            opened.append(str(request.pk))
        except RequestOpenError as exc:
            refused.append(exc.extra["id"])
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(opened) == 1
    assert refused == opened * 7
