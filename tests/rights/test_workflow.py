"""The workflow engine: leased conditional claims, resuming after a dead worker, failures and retries."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from subjects.models import LinkedRecord, RightsRequest, RightsRequestPart
from subjects.rights.context import Handler
from subjects.rights.erasure import erase_records
from subjects.rights.registry import handler_for
from subjects.rights.requests import Actor, request_retry
from subjects.rights.workflow import LeaseLostError, part_claim, part_run, parts_stalled
from tests.api import Api
from tests.rights.helpers import drain, records_bulk, seed_person

REQUESTS = "/api/v1/requests"


def erasure(api: Api, email: str) -> str:
    request_id: str = api.post(
        REQUESTS, {"kind": "erasure", "subject": {"email": email}, "channel": "portal", "verified": True}
    ).json()["id"]
    assert api.post(f"{REQUESTS}/{request_id}/approve", {}).status_code == 202
    return request_id


def part(request_id: str, name: str) -> RightsRequestPart:
    return RightsRequestPart.objects.get(request_id=request_id, name=name)


@pytest.mark.django_db
def test_a_part_whose_worker_died_is_claimed_again_after_its_lease_and_resumes_without_doing_anything_twice(
    rapi: Api,
) -> None:
    # given an erasure of 2,500 app records, and a worker that did one batch and died
    person = seed_person("wf1", records_per_source=0)
    records_bulk(person.subject_id, "app", "app_usage", 2500, "wf1")
    request_id = erasure(rapi, person.email)
    app = part(request_id, "source:app")
    dead = part_claim(part_id=app.pk)
    assert dead is not None
    with dead.step() as outcome:
        rows = list(LinkedRecord.objects.filter(subject_id=person.subject_id, source="app").order_by("pk")[:1000])
        erase_records(rows, None, outcome, person.subject_id, timezone.now())

    # then while its lease lives nobody else takes the part
    assert part_claim(part_id=app.pk) is None

    # when the lease runs out, another worker claims it and finishes the job
    RightsRequestPart.objects.filter(pk=app.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    part_run(part_id=app.pk, handlers=handler_for, steal=False)
    app.refresh_from_db()
    assert app.status == "done"
    assert app.attempts == 2
    assert app.outcome["deleted"] == 2500  # 1,000 by the dead worker + 1,500 by the new one, none twice
    assert not LinkedRecord.objects.filter(subject_id=person.subject_id, source="app").exists()

    # and the dead worker, should it wake up, can write nothing more
    with pytest.raises(LeaseLostError), dead.step():
        pass


@pytest.mark.django_db
def test_a_live_lease_elsewhere_makes_the_task_look_again_when_it_ends(rapi: Api) -> None:
    person = seed_person("wf2", records_per_source=1)
    request_id = erasure(rapi, person.email)
    held = part_claim(part_id=part(request_id, "source:web").pk)
    assert held is not None
    result = part_run(part_id=part(request_id, "source:app").pk, handlers=handler_for)
    assert result.retry_in is not None
    assert 0 < result.retry_in <= 61
    assert RightsRequest.objects.get(pk=request_id).status == "processing"
    assert part(request_id, "finish").status == "pending"


@pytest.mark.django_db
def test_a_failing_part_fails_the_request_with_every_error_visible_and_a_retry_runs_it_again(
    rapi: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = seed_person("wf3", records_per_source=1)
    request_id = erasure(rapi, person.email)

    def broken(context: Any) -> None:
        if context.name == "source:web":
            raise ValueError(f"a message that could hold {person.email}")
        handler_for(context.request.kind, context.name)(context)

    def handlers(kind: str, part: str) -> Handler:
        return broken if part.startswith("source:") else handler_for(kind, part)

    drain(request_id, handlers=handlers)
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "failed"
    web = next(p for p in body["parts"] if p["name"] == "source:web")
    assert web == {"name": "source:web", "status": "failed", "error": "ValueError (details in the worker log)"}
    assert body["result"]["errors"] == [{"part": "source:web", "error": web["error"]}]
    assert all(p["status"] == "done" for p in body["parts"] if p["name"] not in ("source:web", "finish"))
    assert body["history"][-1]["event"] == "failed"

    request_retry(request_id=request_id, actor=Actor("staff:dpo"))
    drain(request_id)
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "completed"


@pytest.mark.django_db
def test_a_transient_error_gives_the_part_back_for_the_retry(rapi: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    person = seed_person("wf4", records_per_source=1)
    request_id = erasure(rapi, person.email)

    def flaky(context: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    app = part(request_id, "source:app")
    with pytest.raises(OperationalError):
        part_run(part_id=app.pk, handlers=lambda kind, part: flaky)
    app.refresh_from_db()
    assert (app.status, app.lease_token) == ("pending", None)


@pytest.mark.django_db
def test_stalled_parts_are_handed_to_the_broker_again(rapi: Api) -> None:
    person = seed_person("wf5", records_per_source=1)
    request_id = erasure(rapi, person.email)
    app = part(request_id, "source:app")
    assert part_claim(part_id=app.pk) is not None
    assert app.pk not in parts_stalled()
    RightsRequestPart.objects.filter(pk=app.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    RightsRequestPart.objects.filter(request_id=request_id).exclude(pk=app.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=3)
    )
    stalled = parts_stalled()
    assert app.pk in stalled
    assert part(request_id, "finish").pk in stalled  # pending and old: its task will try it (and wait for the rest)


def claim_race(part_id: int, workers: int) -> list[bool]:
    """`workers` threads claim the same part at the same moment; each says whether it won."""
    barrier = threading.Barrier(workers)
    won: list[bool] = []

    def claim() -> None:
        try:
            barrier.wait()
            won.append(part_claim(part_id=part_id) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_part_at_once_get_it_once(rapi: Api) -> None:
    # The race showed about one round in twelve with a claim that filtered through a relation (a subquery that
    # PostgreSQL does not re-check after waiting for the row lock): 200 rounds make a regression show.
    person = seed_person("wf6", records_per_source=1)
    request_id = erasure(rapi, person.email)
    app = part(request_id, "source:app")
    workers = 8
    for round_ in range(200):
        RightsRequestPart.objects.filter(pk=app.pk).update(
            status=RightsRequestPart.Status.PENDING, lease_token=None, claimed_until=None
        )
        won = claim_race(app.pk, workers)
        assert sorted(won) == [False] * (workers - 1) + [True], f"round {round_}: {won}"
