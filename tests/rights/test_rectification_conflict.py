"""API rectification by a client: the client vouches for the person, not for a value that is someone else's. An
identifier of another subject is 409 `identifier_taken` (whose is not said), and two rectifications racing for one
free value cannot both take it: the check runs again where the value is attached, under the identifier's lock."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from django.db import connection

from subjects.identity import Reference
from subjects.models import RightsRequest
from subjects.rights.registry import handler_for
from subjects.rights.workflow import part_run
from subjects.selectors import subject_resolve
from tests.api import Api
from tests.rights.helpers import drain, phone_of, seed_person

REQUESTS = "/api/v1/requests"


def rectify(api: Api, email: str, identifiers: dict[str, str]) -> Any:
    return api.post(
        REQUESTS,
        {
            "kind": "rectification",
            "subject": {"email": email},
            "channel": "callcenter",
            "verified": True,
            "details": {"identifiers": identifiers},
        },
    )


def owners(kind: str, value: str) -> uuid.UUID | None:
    return subject_resolve(reference=Reference(None, ((kind, value),)))


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["phone", "email"])
def test_a_client_cannot_rectify_a_person_to_another_persons_identifier(rapi: Api, kind: str) -> None:
    anna = seed_person(f"conf-a-{kind}", records_per_source=0)
    bob = seed_person(f"conf-b-{kind}", records_per_source=0)
    bobs = phone_of(f"conf-b-{kind}") if kind == "phone" else bob.email

    response = rectify(rapi, anna.email, {kind: bobs})

    assert response.status_code == 409, response.content
    problem = response.json()
    assert problem["code"] == "identifier_taken"
    assert bobs not in response.content.decode()
    assert str(bob.subject_id) not in response.content.decode()
    assert not RightsRequest.objects.filter(kind="rectification").exists()
    assert owners(kind, bobs) == bob.subject_id  # still Bob's alone
    assert owners("email", anna.email) == anna.subject_id


@pytest.mark.django_db
def test_rectifying_to_an_identifier_the_person_already_holds_is_no_conflict(rapi: Api) -> None:
    anna = seed_person("conf-own", records_per_source=0)
    response = rectify(rapi, anna.email, {"phone": phone_of("conf-own")})
    assert response.status_code == 202, response.content
    assert drain(response.json()["id"]).status == "completed"


@pytest.mark.django_db
def test_of_two_rectifications_to_one_free_value_only_the_first_applied_takes_it(rapi: Api) -> None:
    anna = seed_person("conf-c", records_per_source=0)
    bob = seed_person("conf-d", records_per_source=0)
    free = "+491715557777"
    first = rectify(rapi, anna.email, {"phone": free})
    second = rectify(rapi, bob.email, {"phone": free})
    assert (first.status_code, second.status_code) == (202, 202)  # nobody holds it yet

    assert drain(first.json()["id"]).status == "completed"
    failed = drain(second.json()["id"])

    assert failed.status == "failed"
    assert failed.result["errors"][0]["error"].startswith("identifier_taken")
    assert owners("phone", free) == anna.subject_id


@pytest.mark.django_db(transaction=True)
def test_two_rectifications_applied_at_once_never_both_take_one_value(rapi: Api) -> None:
    for round_ in range(5):
        anna = seed_person(f"conf-race-a{round_}", records_per_source=0)
        bob = seed_person(f"conf-race-b{round_}", records_per_source=0)
        free = f"+4917155580{round_:02d}"
        ids = [rectify(rapi, p.email, {"phone": free}).json()["id"] for p in (anna, bob)]
        parts = [
            RightsRequest.objects.get(pk=i).parts.get(name="profile").pk  # the part that attaches identifiers
            for i in ids
        ]
        barrier = threading.Barrier(2)

        def apply(part_id: int, barrier: threading.Barrier) -> None:
            try:
                barrier.wait()
                part_run(part_id=part_id, handlers=handler_for)
            finally:
                connection.close()

        threads = [threading.Thread(target=apply, args=(p, barrier)) for p in parts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        holders = {owners("phone", free)}
        assert holders in ({anna.subject_id}, {bob.subject_id}), f"round {round_}: the number names {holders}"
        statuses = sorted(RightsRequest.objects.get(pk=i).parts.get(name="profile").status for i in ids)
        assert statuses == ["done", "failed"], statuses
