"""The outbox of rights and identity changes (API.md, Webhooks): rectification, restriction and its lifting,
erasure, the end of every request, merges and splits each reach a subscriber, in the person's order, with ids and
keys only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from consent.models import WebhookDelivery
from consent.webhooks.delivery import deliveries_run
from subjects import ports
from subjects.locks import lock_subjects
from subjects.merge import subject_split
from subjects.models import MergeAudit, Subject
from subjects.rights.requests import Actor, request_reject
from subjects.rights.restriction import lift_restriction_run
from tests.api import Api
from tests.factories import ingest
from tests.rights.helpers import drain, seed_person
from tests.webhook_receiver import Receiver

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def received(receiver: Receiver, path: str = "/dpo") -> list[tuple[str, dict[str, Any]]]:
    while deliveries_run().sent:
        pass
    out = []
    for r in receiver.acknowledged(path):
        assert r.payload is not None
        out.append((r.payload["type"], r.payload["data"]))
    return out


def open_verified(api: Api, kind: str, subject: dict[str, Any], details: dict[str, Any] | None = None) -> str:
    body = {"kind": kind, "subject": subject, "channel": "callcenter", "verified": True, "details": details or {}}
    response = api.post(REQUESTS, body)
    assert response.status_code == 202, response.content
    request_id: str = response.json()["id"]
    return request_id


def test_a_rectification_tells_which_kinds_and_fields_changed_never_their_values(
    rapi: Api, subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    person = seed_person("hook1", records_per_source=0)
    subscribe("/dpo", events=("subject.rectified", "request.completed"))
    request_id = open_verified(
        rapi,
        "rectification",
        {"email": person.email},
        {"identifiers": {"email": "hook1.new@example.de"}, "profile": {"name": "New Name"}},
    )
    drain(request_id)
    subject = str(person.subject_id)
    assert received(receiver) == [
        (
            "subject.rectified",
            {"subject": subject, "changed": {"identifiers": ["email"], "profile": ["name"]}, "records": []},
        ),
        ("request.completed", {"request": request_id, "kind": "rectification", "status": "completed"}),
    ]
    assert "hook1.new" not in str(receiver.received)
    assert "New Name" not in str(receiver.received)


def test_a_restriction_and_its_lifting_are_told_in_order(
    rapi: Api, subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    person = seed_person("hook2", records_per_source=0)
    subscribe("/dpo")
    request_id = open_verified(rapi, "restriction", {"email": person.email}, {"ground": "18(1)(a)"})
    drain(request_id)
    assert rapi.post(f"{REQUESTS}/{request_id}/lift", {}).status_code == 202
    assert lift_restriction_run(request_id=uuid.UUID(request_id)) == "lifted"
    subject = str(person.subject_id)
    assert received(receiver) == [
        ("subject.restricted", {"subject": subject, "request": request_id, "records": []}),
        ("request.completed", {"request": request_id, "kind": "restriction", "status": "completed"}),
        ("subject.restriction_lifted", {"subject": subject, "request": request_id, "records": []}),
    ]


def test_an_erasure_is_told_to_every_subscriber_and_the_message_names_no_one(
    rapi: Api, subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    person = seed_person("hook3", records_per_source=1)
    subscribe("/dpo", events=("subject.erased",))
    subscribe("/crm", events=("subject.erased",))
    body = rapi.post(
        REQUESTS, {"kind": "erasure", "subject": {"email": person.email}, "channel": "portal", "verified": True}
    ).json()
    assert rapi.post(f"{REQUESTS}/{body['id']}/approve", {}).status_code == 202
    drain(body["id"])
    expected = [("subject.erased", {"subject": str(person.subject_id), "request": body["id"], "records": []})]
    assert received(receiver, "/dpo") == expected
    assert received(receiver, "/crm") == expected
    for secret in person.secrets:
        assert secret not in str(receiver.received)


def test_a_rejected_request_is_told_as_ended(rapi: Api, subscribe: Callable[..., Any], receiver: Receiver) -> None:
    person = seed_person("hook4", records_per_source=0)
    subscribe("/dpo", events=("request.completed",))
    response = rapi.post(
        REQUESTS, {"kind": "access", "subject": {"email": person.email}, "channel": "portal", "verified": False}
    )
    request_id = response.json()["id"]
    request_reject(request_id=uuid.UUID(request_id), reason="identity not proven", actor=Actor(label="staff:dpo"))
    assert received(receiver) == [
        ("request.completed", {"request": request_id, "kind": "access", "status": "rejected"})
    ]


def test_a_merge_and_its_split_are_told_with_both_ids(
    rights_catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/dpo", events=("subject.merged", "subject.split"))
    first = ingest("shop", "M-1", {"email": "merge.a@example.de"}).subject_id
    second = ingest("shop", "M-2", {"customer_number": "C-merge"}).subject_id
    merged = ingest("shop", "M-3", {"email": "merge.a@example.de", "customer_number": "C-merge"})
    assert merged.subject_id == first
    audit = MergeAudit.objects.get()
    subject_split(audit_id=audit.pk, now=timezone.now())
    assert received(receiver) == [
        ("subject.merged", {"survivor": str(first), "absorbed": str(second)}),
        ("subject.split", {"subjects": [str(first), str(second)]}),
    ]
    assert Subject.objects.get(pk=second).merged_into_id is None


def test_a_merge_joins_the_absorbed_persons_waiting_events_to_the_survivors_line_first(
    rights_catalogue: dict[str, Any], subscribe: Callable[..., Any], receiver: Receiver
) -> None:
    subscribe("/crm", events=("subject.merged", "subject.rectified"))
    first = ingest("shop", "J-1", {"email": "join.a@example.de"}).subject_id
    second = ingest("shop", "J-2", {"customer_number": "C-join"}).subject_id
    # the absorbed side has an event that could not be delivered yet (its endpoint answered 503 once)
    receiver.answers["/crm"] = [503, 200]
    outbox_port = ports.outbox
    with transaction.atomic():
        lock_subjects([second])
        outbox_port.record(type="subject.rectified", subject_id=second, data={"subject": str(second), "changed": {}})
    assert deliveries_run().delivered == 0
    # when the two merge, and the survivor changes again
    ingest("shop", "J-3", {"email": "join.a@example.de", "customer_number": "C-join"})
    with transaction.atomic():
        lock_subjects([first])
        outbox_port.record(type="subject.rectified", subject_id=first, data={"subject": str(first), "changed": {}})
    # then nothing about the merged person overtakes the absorbed side's waiting event
    assert deliveries_run().sent == 0  # the line waits for the retry of its head
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())
    assert [t for t, _ in received(receiver, "/crm")] == ["subject.rectified", "subject.merged", "subject.rectified"]
    assert [d["subject"] for t, d in received(receiver, "/crm") if t == "subject.rectified"] == [
        str(second),
        str(first),
    ]
