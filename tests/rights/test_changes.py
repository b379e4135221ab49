"""Rectification (Art. 16), restriction and its lifting (Art. 18), objection (Art. 21), and the deadlines of
Art. 12: extension, rejection, reminders and overdue flags."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from config.errors import InvalidInputError
from consent.models import ConsentEvent, Objection
from subjects.keys import blind_index, data_key
from subjects.models import Identifier, RightsRequest, Subject
from subjects.profile import profile_read
from subjects.rights import texts
from subjects.rights.errors import RequestStateError
from subjects.rights.mails import request_tell
from subjects.rights.reminders import requests_flag_deadlines
from subjects.rights.requests import Actor, request_extend, request_reject
from subjects.rights.restriction import lift_restriction_run
from tests.api import Api
from tests.factories import ingest
from tests.rights.helpers import drain, recorded_at, seed_person

REQUESTS = "/api/v1/requests"
DPO = Actor(label="staff:dpo")
pytestmark = pytest.mark.django_db


def open_verified(api: Api, kind: str, subject: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    response = api.post(
        REQUESTS,
        {"kind": kind, "subject": subject, "channel": "callcenter", "verified": True, "details": details or {}},
    )
    assert response.status_code == 202, response.content
    request_id: str = response.json()["id"]
    return request_id


def check(api: Api, email: str, purpose: str, channel: str) -> dict[str, Any]:
    body: dict[str, Any] = api.post(
        "/api/v1/consents/check", {"subject": {"email": email}, "purpose": purpose, "channel": channel}
    ).json()
    return body


# ---------------------------------------------------------------------------------------------------------
# Rectification
# ---------------------------------------------------------------------------------------------------------
def test_rectification_replaces_identifiers_and_profile_everywhere_they_are_linked(rapi: Api) -> None:
    person = seed_person("rect1", records_per_source=0)
    request_id = open_verified(
        rapi,
        "rectification",
        {"email": person.email},
        {
            "identifiers": {"email": "Rect1.New@Example.de"},
            "profile": {"name": "Corrected Name", "street": None},
            "evidence": {"document": "ID card seen at the desk"},
        },
    )
    drain(request_id)
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "completed", body
    assert body["result"]["rectified"] == {"identifiers": ["email"], "profile": ["name", "street"]}
    assert body["result"]["message"] == texts.RECTIFICATION_DONE
    # the request stores only which fields changed in clear, never the values
    assert RightsRequest.objects.get(pk=request_id).details == {"identifiers": ["email"], "profile": ["name", "street"]}
    index = blind_index()
    emails = Identifier.objects.filter(subject_id=person.subject_id, kind="email")
    assert [bytes(i.blind_index) for i in emails] == [index.lookup("email", "rect1.new@example.de")]
    subject = Subject.objects.get(pk=person.subject_id)
    assert profile_read(subject, data_key(subject)) == {"name": "Corrected Name"}
    assert check(rapi, "rect1.new@example.de", "order-updates", "email")["subject"] == str(person.subject_id)
    assert check(rapi, person.email, "order-updates", "email")["reason"] == "unknown_subject"


def test_rectification_never_takes_another_persons_identifier(rapi: Api) -> None:
    anna = seed_person("rect2", records_per_source=0)
    seed_person("rect3", records_per_source=0)
    response = rapi.post(
        REQUESTS,
        {
            "kind": "rectification",
            "subject": {"email": anna.email},
            "channel": "callcenter",
            "verified": True,
            "details": {"identifiers": {"email": "rect3@example.de"}},
        },
    )
    assert response.status_code == 409
    assert response.json()["code"] == "identifier_taken"
    assert "rect3@example.de" not in response.content.decode()
    assert not RightsRequest.objects.filter(kind="rectification").exists()


# ---------------------------------------------------------------------------------------------------------
# Restriction
# ---------------------------------------------------------------------------------------------------------
def test_a_restriction_denies_every_use_until_lifted_and_lifting_tells_the_person_first(rapi: Api) -> None:
    person = seed_person("restr1", records_per_source=0)
    assert check(rapi, person.email, "order-updates", "email")["allowed"] is True
    request_id = open_verified(rapi, "restriction", {"email": person.email}, {"ground": "18(1)(a)"})
    drain(request_id)
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["result"]["ground"] == "18(1)(a)"
    assert check(rapi, person.email, "order-updates", "email")["reason"] == "restricted"
    assert rapi.get(f"/api/v1/subjects/{person.subject_id}/profile?purpose=order-updates").json()["reason"] == (
        "restricted"
    )

    lifted = rapi.post(f"{REQUESTS}/{request_id}/lift", {})
    assert lifted.status_code == 202
    # asked, not yet done: the person is told first
    assert check(rapi, person.email, "order-updates", "email")["reason"] == "restricted"

    assert lift_restriction_run(request_id=uuid.UUID(request_id)) == "lifted"
    (message,) = mail.outbox
    assert message.to == [person.email]
    assert "Art. 18(3)" in message.body
    assert check(rapi, person.email, "order-updates", "email")["allowed"] is True
    events = [h["event"] for h in rapi.get(f"{REQUESTS}/{request_id}").json()["history"]]
    assert events[-3:] == ["lift_requested", "person_told", "lifted"]
    assert lift_restriction_run(request_id=uuid.UUID(request_id)) == "nothing"
    assert len(mail.outbox) == 1


def test_a_restriction_is_not_lifted_without_a_way_to_tell_the_person(rapi: Api) -> None:
    subject_id = ingest(
        "app",
        "noemail-1",
        {"customer_number": "C-noemail"},
        category="app_usage",
        data={"item": "x"},
        occurred_at=recorded_at(),
    ).subject_id
    request_id = open_verified(rapi, "restriction", {"customer_number": "C-noemail"}, {"ground": "18(1)(d)"})
    drain(request_id)
    rapi.post(f"{REQUESTS}/{request_id}/lift", {})
    assert lift_restriction_run(request_id=uuid.UUID(request_id)) == "no_email"
    assert Subject.objects.get(pk=subject_id).restricted_at is not None
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["history"][-1]["event"] == "lift_blocked"
    assert rapi.post(f"{REQUESTS}/{request_id}/lift", {}).status_code == 202  # may be asked again


# ---------------------------------------------------------------------------------------------------------
# Objection
# ---------------------------------------------------------------------------------------------------------
def test_an_objection_to_direct_marketing_is_absolute_on_every_channel_and_recorded_in_the_ledger(rapi: Api) -> None:
    person = seed_person("obj1", records_per_source=0)
    rapi.post(
        "/api/v1/consents",
        {
            "subject": {"email": person.email},
            "purpose": "newsletter",
            "channel": "push",
            "action": "grant",
            "notice_version": "2026-01",
            "source": "app",
        },
    )
    assert check(rapi, person.email, "newsletter", "push")["allowed"] is True

    response = rapi.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"email": person.email},
            "channel": "portal",
            "details": {"scope": "direct_marketing"},
        },
    )
    drain(response.json()["id"])

    assert check(rapi, person.email, "newsletter", "push")["reason"] == "objected"
    assert check(rapi, person.email, "offers", "post")["reason"] == "objected"
    assert check(rapi, person.email, "order-updates", "email")["allowed"] is True  # not marketing
    event = ConsentEvent.objects.filter(subject_id=person.subject_id).order_by("seq").last()
    assert (event.action, event.purpose, event.source) == ("object", "", "rights-request")
    assert Objection.objects.get(subject_id=person.subject_id).purpose == ""
    body = rapi.get(f"{REQUESTS}/{response.json()['id']}").json()
    assert body["status"] == "completed"
    assert body["result"]["in_force"] is True
    # the part found the objection in force and recorded nothing twice
    assert ConsentEvent.objects.filter(subject_id=person.subject_id, action="object").count() == 1


def test_an_objection_to_one_purpose_leaves_the_others(rapi: Api) -> None:
    person = seed_person("obj2", records_per_source=0)
    response = rapi.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"email": person.email},
            "channel": "portal",
            "details": {"purpose": "recommendations"},
        },
    )
    drain(response.json()["id"])
    assert check(rapi, person.email, "recommendations", "web")["reason"] == "objected"
    assert check(rapi, person.email, "offers", "post")["allowed"] is True
    assert Objection.objects.get(subject_id=person.subject_id).purpose == "recommendations"


# ---------------------------------------------------------------------------------------------------------
# Art. 12: extension, rejection, deadlines
# ---------------------------------------------------------------------------------------------------------
def test_an_extension_needs_a_reason_is_decided_before_the_due_date_and_is_told_to_the_person(rapi: Api) -> None:
    person = seed_person("ext1", records_per_source=0)
    request_id = uuid.UUID(open_verified(rapi, "access", {"email": person.email}))
    with pytest.raises(InvalidInputError):
        request_extend(request_id=request_id, months=2, reason=" ", actor=DPO)
    with pytest.raises(InvalidInputError):
        request_extend(request_id=request_id, months=3, reason="many systems", actor=DPO)
    request = RightsRequest.objects.get(pk=request_id)
    with pytest.raises(RequestStateError, match="before the due date"):
        request_extend(
            request_id=request_id, months=1, reason="late", actor=DPO, now=request.due_at + timedelta(seconds=1)
        )

    request_extend(request_id=request_id, months=2, reason="records in 40 stores", actor=DPO)

    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["extended_until"] is not None
    assert body["history"][-1]["event"] == "extended"
    assert request_tell(request_id=request_id, what="extension") is True
    (message,) = mail.outbox
    assert message.to == [person.email]
    assert "records in 40 stores" in message.body
    with pytest.raises(RequestStateError):
        request_extend(request_id=request_id, months=1, reason="again", actor=DPO)


def test_a_rejection_needs_a_reason_names_the_right_to_complain_and_is_told(rapi: Api) -> None:
    person = seed_person("rej1", records_per_source=0)
    request_id = uuid.UUID(
        rapi.post(REQUESTS, {"kind": "erasure", "subject": {"email": person.email}, "channel": "portal"}).json()["id"]
    )
    with pytest.raises(InvalidInputError):
        request_reject(request_id=request_id, reason="", actor=DPO)
    request_reject(request_id=request_id, reason="manifestly unfounded: the tenth identical request", actor=DPO)
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "rejected"
    assert body["result"]["right_to_complain"] == texts.COMPLAINT
    assert body["history"][-1]["by"] == "staff:dpo"
    request_tell(request_id=request_id, what="rejection")
    assert "Art. 77" in mail.outbox[0].body
    assert "Art. 77" in texts.COMPLAINT
    with pytest.raises(RequestStateError):
        request_reject(request_id=request_id, reason="again", actor=DPO)


def test_deadlines_remind_a_week_before_and_flag_overdue_requests_once(rapi: Api, settings: Any) -> None:
    settings.MANAGERS = [("DPO", "dpo@example.de")]
    person = seed_person("due1", records_per_source=0)
    request_id = open_verified(rapi, "erasure", {"email": person.email})
    due = RightsRequest.objects.get(pk=request_id).due_at
    assert requests_flag_deadlines(now=due - timedelta(days=8)) == (0, 0)
    assert requests_flag_deadlines(now=due - timedelta(days=6)) == (1, 0)
    assert requests_flag_deadlines(now=due - timedelta(days=5)) == (0, 0)
    assert requests_flag_deadlines(now=due + timedelta(seconds=1)) == (0, 1)
    assert requests_flag_deadlines(now=due + timedelta(days=1)) == (0, 0)
    request = RightsRequest.objects.get(pk=request_id)
    assert request.overdue_at is not None
    assert request.reminded_at is not None
    assert [m.to for m in mail.outbox] == [["dpo@example.de"], ["dpo@example.de"]]
    assert person.email not in mail.outbox[0].body
    assert timezone.now() < due


def test_the_persons_own_later_grant_lifts_their_objection_to_that_purpose(rapi: Api) -> None:
    from consent.double_opt_in import confirmation_confirm, confirmation_token
    from consent.models import Confirmation

    # given an objection to the newsletter through a rights request
    person = seed_person("obj3", records_per_source=0)
    response = rapi.post(
        REQUESTS,
        {
            "kind": "objection",
            "subject": {"email": person.email},
            "channel": "portal",
            "details": {"purpose": "newsletter"},
        },
    )
    drain(response.json()["id"])
    assert check(rapi, person.email, "newsletter", "email")["reason"] == "objected"

    # when the person later grants it again and confirms the double opt-in themselves
    grant = rapi.post(
        "/api/v1/consents",
        {
            "subject": {"email": person.email},
            "purpose": "newsletter",
            "channel": "email",
            "action": "grant",
            "notice_version": "2026-01",
            "source": "webshop",
        },
    )
    assert grant.status_code == 201, grant.content
    assert check(rapi, person.email, "newsletter", "email")["reason"] == "objected"  # an agent's grant is not enough
    confirmation = Confirmation.objects.get(subject_id=person.subject_id)
    confirmation_confirm(token=confirmation_token(confirmation.id), evidence={"form": "confirm-page"})

    # then the objection to that purpose is lifted
    assert check(rapi, person.email, "newsletter", "email")["allowed"] is True
    assert not Objection.objects.filter(subject_id=person.subject_id, purpose="newsletter").exists()
