"""The clean-ups and safety nets the fault tests depend on, each on its own (no processes): a killed export writer's
temporary zip goes when its request completes and, for a request that never does, with the hourly purge; a lifting
whose message the broker lost is found in the database."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.db.models import F
from django.test import TestCase, override_settings

from subjects.identity import parse_reference
from subjects.models import RightsRequest, RightsRequestEvent
from subjects.rights.details import details_parse
from subjects.rights.exports import export_dir, exports_purge, files_remove_on_commit
from subjects.rights.mails import request_tell, tells_stalled
from subjects.rights.requests import Actor, request_extend, request_lift, request_open, request_reject
from subjects.rights.restriction import lift_restriction_run, lifts_stalled
from tests.catalogue import rights_catalogue
from tests.factories import apply_catalogue
from tests.rights.helpers import drain, seed_person

pytestmark = [pytest.mark.faults, pytest.mark.django_db]


def temporary_zip(request_id: uuid.UUID, *, age: timedelta = timedelta(0)) -> Path:
    """What a worker killed mid-write leaves: `<request>.zip.enc.<lease token>.tmp`."""
    export_dir().mkdir(parents=True, exist_ok=True)
    path = export_dir() / f"{request_id}.zip.enc.{uuid.uuid4().hex}.tmp"
    path.write_bytes(b"ASX1 half a zip")
    then = time.time() - age.total_seconds()
    os.utime(path, (then, then))
    return path


def test_a_killed_writers_temporary_zip_goes_when_its_request_completes(tmp_path: Path) -> None:
    request_id, other = uuid.uuid4(), uuid.uuid4()
    with override_settings(VAR_DIR=tmp_path):
        mine, theirs = temporary_zip(request_id), temporary_zip(other)

        with TestCase.captureOnCommitCallbacks(execute=True):
            files_remove_on_commit(export_ids=[], request_ids=[request_id])

        assert not mine.exists()
        assert theirs.exists()


def test_the_purge_removes_temporary_zips_older_than_an_hour_and_keeps_one_being_written(tmp_path: Path) -> None:
    with override_settings(VAR_DIR=tmp_path):
        old = temporary_zip(uuid.uuid4(), age=timedelta(hours=2))
        fresh = temporary_zip(uuid.uuid4())

        exports_purge()

        assert not old.exists()
        assert fresh.exists()


def test_a_lifting_whose_message_was_lost_is_found_after_two_minutes_and_not_after_it_is_done() -> None:
    # given a completed restriction whose lifting was asked for (its message then lost with the broker)
    apply_catalogue(rights_catalogue())
    person = seed_person("lost-lift", records_per_source=0)
    request = request_open(
        kind="restriction",
        reference=parse_reference({"email": person.email}),
        channel="api",
        verified=True,
        details=details_parse(kind="restriction", raw={"ground": "18(1)(a)"}),
        actor=Actor("client:test"),
    )
    assert drain(request.pk).status == "completed"
    request_lift(request_id=request.pk, actor=Actor("staff:dpo"))

    # then the safety net leaves it to its message for two minutes, then queues it again
    assert lifts_stalled() == []
    RightsRequest.objects.filter(pk=request.pk).update(lift_requested_at=F("lift_requested_at") - timedelta(minutes=3))
    assert lifts_stalled() == [request.pk]

    # and once lifted, it is found no more
    assert lift_restriction_run(request_id=request.pk) == "lifted"
    assert lifts_stalled() == []
    assert RightsRequest.objects.get(pk=request.pk).lifted_at is not None


def test_a_notice_whose_message_was_lost_is_found_after_two_minutes_and_sent_once() -> None:
    # given an extended request about a person with an e-mail address and a rejected one about nobody known
    apply_catalogue(rights_catalogue())
    person = seed_person("lost-notice", records_per_source=0)
    extended = open_verified("access", person.email, verified=False)
    nobody = open_verified("erasure", "nobody-lost-notice@example.de", verified=False)
    request_extend(request_id=extended, months=1, reason="many stores", actor=Actor("staff:dpo"))
    request_reject(request_id=nobody, reason="manifestly unfounded", actor=Actor("staff:dpo"))

    # then the safety net leaves the notice to its message for two minutes, then queues it again; nobody known
    # has no address to tell
    assert tells_stalled() == []
    RightsRequestEvent.objects.update(at=F("at") - timedelta(minutes=3))
    assert tells_stalled() == [(extended, "extension")]

    # and once sent, it is found no more and not sent again
    assert request_tell(request_id=extended, what="extension") is True
    assert tells_stalled() == []
    assert request_tell(request_id=extended, what="extension") is False
    assert len(mail.outbox) == 1


def open_verified(kind: str, email: str, *, verified: bool) -> uuid.UUID:
    request = request_open(
        kind=kind,
        reference=parse_reference({"email": email}),
        channel="api",
        verified=verified,
        details=details_parse(kind=kind, raw={}),
        actor=Actor("client:test"),
    )
    return request.pk
