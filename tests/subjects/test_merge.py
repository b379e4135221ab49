"""Merging subjects that turn out to be one person, and splitting a wrong merge: identifiers, records, profiles,
consent chains and states move (re-encrypted) to the older subject, an absorbed id acts on the survivor everywhere,
and a split gives each person back exactly their own data."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from freezegun import freeze_time

from consent.adapters.merge_port import ConsentPortImpl
from consent.clients import client_create
from consent.double_opt_in import confirmation_confirm, confirmation_token
from consent.gates.check import check_target, consent_check_many
from consent.ledger.chain import event_evidence, ledger_verify_subject
from consent.ledger.recording import ConsentCommand, ConsentRecorded
from consent.models import Confirmation, ConsentEvent, ConsentState, LedgerHead, Objection, ReadLog
from consent.services import consent_record
from subjects import crypto, ports
from subjects.columns import CONFIRMATION_EMAIL, IDENTIFIER_VALUE, RECORD_DATA
from subjects.errors import AmbiguousSubjectError
from subjects.identity import Reference, parse_reference
from subjects.keys import data_key, decrypt_field
from subjects.locks import lock_subjects
from subjects.merge import MergeConflictError, SplitConflictError, subject_merge, subject_split
from subjects.models import Identifier, LinkedRecord, MergeAudit, Subject
from subjects.profile import profile_read
from subjects.selectors import subject_get_survivor, subject_resolve
from tests.api import Api
from tests.factories import ingest

LANDLINE = "030 1234567"
BASE = (timezone.now() - timedelta(days=30)).replace(microsecond=0)


@contextmanager
def on_day(day: float) -> Iterator[datetime]:
    """Every timestamp comes from Python: freeze it, so which subject is older is never left to chance."""
    moment = BASE + timedelta(days=day)
    with freeze_time(moment):
        yield moment


def consent(
    reference: dict[str, str], action: str, channel: str | None = "sms", purpose: str = "newsletter", **extra: Any
) -> ConsentRecorded:
    return consent_record(
        command=ConsentCommand(
            reference=parse_reference(reference),
            purpose=purpose,
            channel=channel,
            action=action,
            notice_version="2026-01" if action == "grant" else None,
            source=extra.pop("source", "webshop"),
            **extra,
        )
    )


def states(subject_id: uuid.UUID) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {
        (r.purpose, r.channel): (r.status, r.notice_version, r.since, r.granted_at, r.confirmed, r.actor, r.seq)
        for r in ConsentState.objects.filter(subject_id=subject_id)
    }


def objections(subject_id: uuid.UUID) -> dict[str, tuple[datetime, int]]:
    return {o.purpose: (o.since, o.seq) for o in Objection.objects.filter(subject_id=subject_id)}


def status(subject_id: uuid.UUID, purpose: str, channel: str) -> str:
    return ConsentState.objects.get(subject_id=subject_id, purpose=purpose, channel=channel).status


def chain_problems(subject_id: uuid.UUID) -> list[Any]:
    subject = Subject.objects.get(pk=subject_id)
    return ledger_verify_subject(subject, LedgerHead.objects.filter(subject=subject).first())


def last_event(subject_id: uuid.UUID) -> ConsentEvent:
    return ConsentEvent.objects.filter(subject_id=subject_id).order_by("-seq")[0]


def identifiers_of(subject_id: uuid.UUID) -> set[tuple[str, str]]:
    subject = Subject.objects.get(pk=subject_id)
    key = data_key(subject)
    return {
        (i.kind, decrypt_field(subject, key, IDENTIFIER_VALUE, bytes(i.value_enc), row_id=i.pk))
        for i in Identifier.objects.filter(subject=subject)
    }


def records_of(subject_id: uuid.UUID) -> dict[str, str]:
    subject = Subject.objects.get(pk=subject_id)
    key = data_key(subject)
    return {
        r.external_id: decrypt_field(subject, key, RECORD_DATA, bytes(r.data_enc), row_id=r.pk)
        for r in LinkedRecord.objects.filter(subject=subject)
    }


def profile_of(subject_id: uuid.UUID) -> dict[str, Any]:
    subject = Subject.objects.get(pk=subject_id)
    return profile_read(subject, data_key(subject))


def check(subject_id: uuid.UUID, channel: str = "sms", purpose: str = "newsletter") -> tuple[uuid.UUID | None, str]:
    info = check_target(purpose=purpose, channel=channel, client_purposes=frozenset())
    result = consent_check_many(references=[Reference(subject_id, ())], info=info, channel=channel)[0]
    return result.subject_id, result.decision.reason.value


# ---------------------------------------------------------------------------------------------------------
# Identity: who merges and who does not
# ---------------------------------------------------------------------------------------------------------
def test_the_consent_port_is_registered_when_django_starts() -> None:
    assert isinstance(ports.consent, ConsentPortImpl)


def test_three_systems_records_of_one_person_end_in_one_subject(catalogue: dict[str, Any]) -> None:
    # Given the web shop knows Kim by e-mail, and the call centre (before anyone knew) by phone and customer number
    with on_day(0):
        webshop = ingest("webshop", "W-1", {"email": "kim@example.org"})
    with on_day(1):
        callcentre = ingest("callcenter", "CALL-1", {"phone": "+49 171 1234567", "customer_number": "C-9"})
    with on_day(2):
        till = ingest("pos", "R-1", {"loyalty_card": "L-77", "email": "Kim@Example.org"})
    assert webshop.subject_id == till.subject_id
    assert callcentre.subject_id != webshop.subject_id

    # When an order names the customer number beside the e-mail
    with on_day(3) as merged_at:
        order = ingest("webshop", "W-2", {"email": "kim@example.org", "customer_number": "C-9"})

    # Then every record and identifier belongs to the older subject, and the call centre's id resolves to it
    kim = webshop.subject_id
    assert order.subject_id == kim
    absorbed = Subject.objects.get(pk=callcentre.subject_id)
    assert (absorbed.status, absorbed.merged_into_id, absorbed.merged_at) == ("merged", kim, merged_at)
    assert Subject.objects.filter(status="active").count() == 1
    assert set(records_of(kim)) == {"W-1", "CALL-1", "R-1", "W-2"}
    assert identifiers_of(kim) == {
        ("email", "kim@example.org"),
        ("loyalty_card", "L-77"),
        ("phone", "+491711234567"),
        ("customer_number", "C-9"),
    }
    for reference in ({"phone": "+49 171 1234567"}, {"loyalty_card": "L-77"}, {"id": str(absorbed.id)}):
        assert subject_resolve(reference=parse_reference(reference)) == kim
    audit = MergeAudit.objects.get()
    assert (audit.survivor_id, audit.absorbed_id) == (kim, absorbed.id)
    assert sorted(audit.identifier_kinds) == ["customer_number", "phone"]
    assert audit.record_ids == [str(LinkedRecord.objects.get(external_id="CALL-1").pk)]
    assert "C-9" not in str(audit.identifier_kinds) + str(audit.duplicate_identifiers)


def test_a_shared_landline_never_merges_two_people(catalogue: dict[str, Any]) -> None:
    # Given two people at one landline, each with an e-mail of their own
    with on_day(0):
        kim = ingest("webshop", "W-1", {"email": "kim@example.org", "phone": LANDLINE}).subject_id
    with on_day(1):
        alex = ingest("webshop", "W-2", {"email": "alex@example.org", "phone": LANDLINE}).subject_id

    # When the till sends a record that carries only that phone
    with on_day(2):
        only_phone = ingest("pos", "R-1", {"phone": LANDLINE}).subject_id

    # Then they stay two people, and the record goes to neither: it starts a subject of its own
    assert kim != alex
    assert only_phone not in (kim, alex)
    assert not Subject.objects.filter(status="merged").exists()
    assert not MergeAudit.objects.exists()
    assert set(records_of(kim)) == {"W-1"}
    assert set(records_of(alex)) == {"W-2"}
    with pytest.raises(AmbiguousSubjectError):
        subject_resolve(reference=parse_reference({"phone": LANDLINE}))


def test_a_subject_whose_erasure_has_started_is_not_merged(catalogue: dict[str, Any]) -> None:
    with on_day(0):
        kim = ingest("webshop", "W-1", {"email": "kim@example.org"}).subject_id
    with on_day(1):
        other = ingest("callcenter", "CALL-1", {"customer_number": "C-9"}).subject_id
    Subject.objects.filter(pk=other).update(erasure_started_at=timezone.now())

    with on_day(2), pytest.raises(MergeConflictError) as info:
        ingest("webshop", "W-2", {"email": "kim@example.org", "customer_number": "C-9"})

    assert info.value.status == 409
    assert not Subject.objects.filter(status="merged").exists()
    assert set(records_of(kim)) == {"W-1"}


# ---------------------------------------------------------------------------------------------------------
# Consent across a merge
# ---------------------------------------------------------------------------------------------------------
def kim_and_kai() -> tuple[uuid.UUID, uuid.UUID]:
    """Kim (older): newsletter granted on sms and push, pending on e-mail. Kai (the same person, unknown to be so):
    granted then withdrew sms, granted push later, objected to offers."""
    with on_day(0):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
        consent({"email": "kim@example.org"}, "grant", "push")
        consent({"email": "kim@example.org"}, "grant", "email")
    with on_day(1):
        kai = consent({"customer_number": "C-9"}, "grant", "sms").subject_id
    with on_day(2):
        consent({"customer_number": "C-9"}, "withdraw", "sms")
        consent({"customer_number": "C-9"}, "grant", "push")
        consent({"customer_number": "C-9"}, "object", None, purpose="offers")
    return kim, kai


def test_merging_two_consent_histories_keeps_both_chains_and_the_most_restrictive_state(
    catalogue: dict[str, Any],
) -> None:
    # Given two subjects with consent histories of their own
    kim, kai = kim_and_kai()
    kim_push_granted_at = ConsentState.objects.get(subject_id=kim, channel="push").granted_at
    kai_head_before = LedgerHead.objects.get(subject_id=kai).last_seq

    # When a record shows they are one person
    with on_day(3):
        result = ingest("pos", "R-1", {"email": "kim@example.org", "customer_number": "C-9"})

    # Then the older survives, and both chains are valid: the absorbed one closed, the survivor's pointing to it
    assert result.subject_id == kim
    assert Subject.objects.get(pk=kai).merged_into_id == kim
    assert chain_problems(kim) == []
    assert chain_problems(kai) == []
    closing, marker = last_event(kai), last_event(kim)
    assert (closing.seq, closing.action, closing.related_subject, closing.source) == (
        kai_head_before + 1,
        "merged",
        kim,
        "merge",
    )
    assert (marker.action, marker.related_subject, marker.actor) == ("merged", kai, "system")
    evidence = event_evidence(marker, data_key(Subject.objects.get(pk=kim)))
    assert evidence["absorbed_head_hash"] == closing.hash == LedgerHead.objects.get(subject_id=kai).last_hash

    # And the survivor's state is the most restrictive of both sides
    assert status(kim, "newsletter", "sms") == "withdrawn"  # Kai's withdrawal beats Kim's grant
    assert status(kim, "newsletter", "email") == "pending_confirmation"  # pending stays pending
    push = ConsentState.objects.get(subject_id=kim, purpose="newsletter", channel="push")
    assert (push.status, push.granted_at) == ("granted", kim_push_granted_at)  # the older grant expires first
    assert status(kim, "offers", "post") == status(kim, "offers", "email") == "objected"  # copied from Kai
    assert set(objections(kim)) == {"offers"}
    # The absorbed side keeps no state of its own: its id resolves to the survivor.
    assert not ConsentState.objects.filter(subject_id=kai).exists()
    assert not Objection.objects.filter(subject_id=kai).exists()


def test_an_absorbed_id_acts_on_the_survivor_in_checks_writes_and_the_api(catalogue: dict[str, Any], api: Api) -> None:
    # Given Kai merged into Kim
    kim, kai = kim_and_kai()
    with on_day(3):
        ingest("pos", "R-1", {"email": "kim@example.org", "customer_number": "C-9"})
    kai_head = LedgerHead.objects.get(subject_id=kai).last_seq

    # When other services use Kai's old id, then they read and write Kim
    assert check(kai) == (kim, "withdrawn")
    response = api.post(
        "/api/v1/consents/check", {"subject": {"id": str(kai)}, "purpose": "newsletter", "channel": "sms"}
    )
    assert response.status_code == 200, response.content
    assert (response.json()["subject"], response.json()["allowed"]) == (str(kim), False)
    assert api.get(f"/api/v1/subjects/{kai}/consents").json()["subject"] == str(kim)

    written = consent({"id": str(kai)}, "grant", "sms")
    assert (written.subject_id, written.state) == (kim, "granted")
    assert ConsentEvent.objects.get(pk=written.event_id).subject_id == kim
    assert LedgerHead.objects.get(subject_id=kai).last_seq == kai_head  # the absorbed chain stays closed
    assert subject_get_survivor(subject_id=kai).id == kim
    assert check(kai) == (kim, "granted")
    assert chain_problems(kim) == chain_problems(kai) == []


def test_a_late_upload_after_a_merge_does_not_undo_the_absorbed_sides_withdrawal(catalogue: dict[str, Any]) -> None:
    # Given Kim granted sms, Kai withdrew it, and they were merged
    with on_day(0):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
    with on_day(1):
        consent({"customer_number": "C-9"}, "withdraw", "sms")
    with on_day(2):
        ingest("pos", "R-1", {"email": "kim@example.org", "customer_number": "C-9"})
    assert status(kim, "newsletter", "sms") == "withdrawn"

    # When a till uploads an older signature of Kim's after the merge
    with on_day(3):
        consent({"email": "kim@example.org"}, "grant", "sms", source="pos", occurred_at=BASE + timedelta(hours=1))

    # Then the state is folded again with the absorbed chain: the withdrawal still wins
    assert status(kim, "newsletter", "sms") == "withdrawn"

    # And the person's own grant after the merge is the newest act, which does count
    with on_day(4):
        consent({"email": "kim@example.org"}, "grant", "sms")
    assert status(kim, "newsletter", "sms") == "granted"
    assert chain_problems(kim) == []


def test_an_open_double_opt_in_link_of_the_absorbed_side_confirms_on_the_survivor(catalogue: dict[str, Any]) -> None:
    # Given Kai's newsletter e-mail grant waits for his click, and Kai is merged into Kim
    with on_day(0):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
    with on_day(1):
        kai = consent({"email": "kai@example.org"}, "grant", "email").subject_id
    link = Confirmation.objects.get(subject_id=kai)
    with on_day(2):
        ingest("pos", "R-1", {"email": "kim@example.org", "crm_id": "X"})
        ingest("pos", "R-2", {"email": "kai@example.org", "crm_id": "X"})
    moved = Confirmation.objects.get(pk=link.pk)
    survivor = Subject.objects.get(pk=kim)
    assert moved.subject_id == kim
    assert (
        decrypt_field(survivor, data_key(survivor), CONFIRMATION_EMAIL, bytes(moved.email_enc), row_id=moved.pk)
        == "kai@example.org"
    )

    # When he clicks the link
    with on_day(3):
        confirmation_confirm(token=confirmation_token(link.pk), evidence={"ip": "198.51.100.0"})

    # Then the survivor's e-mail consent is granted and confirmed, on the survivor's chain
    row = ConsentState.objects.get(subject_id=kim, purpose="newsletter", channel="email")
    assert (row.status, row.confirmed) == ("granted", True)
    assert last_event(kim).action == "confirm"
    assert chain_problems(kim) == chain_problems(kai) == []


@pytest.mark.django_db(transaction=True)
def test_a_write_that_resolved_an_id_just_before_its_merge_lands_on_the_survivor(catalogue: dict[str, Any]) -> None:
    # Given Kim and Kai, and a merge of Kai into Kim that holds both row locks and has not committed yet
    with on_day(0):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
    with on_day(1):
        kai = consent({"customer_number": "C-9"}, "grant", "push").subject_id
    merging_started, may_commit = threading.Event(), threading.Event()
    written: list[ConsentRecorded] = []
    failures: list[BaseException] = []

    def merge() -> None:
        try:
            with transaction.atomic(durable=True):
                locked = {s.id: s for s in lock_subjects(sorted([kim, kai]))}
                subject_merge(survivor=locked[kim], absorbed=locked[kai], reason="test", now=timezone.now())
                merging_started.set()
                may_commit.wait(timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    def write() -> None:
        try:
            # Resolves Kai's id to Kai (the merge is not committed), then waits for Kai's row lock.
            written.append(consent({"id": str(kai)}, "withdraw", "sms"))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    merger = threading.Thread(target=merge)
    merger.start()
    assert merging_started.wait(timeout=30)
    writer = threading.Thread(target=write)
    writer.start()
    _wait_for_a_lock_wait()

    # When the merge commits
    may_commit.set()
    merger.join(timeout=30)
    writer.join(timeout=30)

    # Then the write lands on the survivor's chain, never after the absorbed chain's closing event
    assert not failures, failures
    assert written[0].subject_id == kim
    assert last_event(kai).action == "merged"
    assert status(kim, "newsletter", "sms") == "withdrawn"
    assert chain_problems(kim) == chain_problems(kai) == []


def _wait_for_a_lock_wait() -> None:
    for _ in range(300):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the writer never waited for the row lock")


# ---------------------------------------------------------------------------------------------------------
# Encryption
# ---------------------------------------------------------------------------------------------------------
def test_moved_identifiers_records_and_profile_are_re_encrypted_under_the_survivors_key(
    catalogue: dict[str, Any],
) -> None:
    # Given two subjects with identifiers, records and profiles
    with on_day(0):
        kim = ingest(
            "webshop", "W-1", {"email": "kim@example.org"}, category="contact", data={"name": "Kim"}, profile=True
        )
    with on_day(1):
        kai = ingest(
            "callcenter",
            "CALL-1",
            {"customer_number": "C-9", "phone": "+49 171 1234567"},
            category="contact",
            data={"name": "Kai", "birth_date": "1990-04-01"},
            profile=True,
        )
    absorbed = Subject.objects.get(pk=kai.subject_id)
    absorbed_key = data_key(absorbed)

    # When they are merged
    with on_day(2):
        ingest("pos", "R-1", {"email": "kim@example.org", "customer_number": "C-9"})

    # Then the absorbed key opens none of the moved values, and the survivor's key opens all of them
    survivor = Subject.objects.get(pk=kim.subject_id)
    survivor_key = data_key(survivor)
    audit = MergeAudit.objects.get()
    moved = Identifier.objects.filter(pk__in=audit.identifier_ids)
    assert moved.count() == 2
    for identifier in moved:
        blob = bytes(identifier.value_enc)
        with pytest.raises(crypto.DecryptionError):
            decrypt_field(absorbed, absorbed_key, IDENTIFIER_VALUE, blob, row_id=identifier.pk)
        with pytest.raises(crypto.DecryptionError):
            crypto.open_field(absorbed_key, blob, survivor.id, IDENTIFIER_VALUE, identifier.pk)
        assert decrypt_field(survivor, survivor_key, IDENTIFIER_VALUE, blob, row_id=identifier.pk) in (
            "C-9",
            "+491711234567",
        )
    record = LinkedRecord.objects.get(pk=kai.record_id)
    assert record.subject_id == survivor.id
    with pytest.raises(crypto.DecryptionError):
        decrypt_field(absorbed, absorbed_key, RECORD_DATA, bytes(record.data_enc), row_id=record.pk)
    assert "Kai" in decrypt_field(survivor, survivor_key, RECORD_DATA, bytes(record.data_enc), row_id=record.pk)
    # The profiles merge, the survivor's attributes winning; the absorbed row keeps none.
    assert profile_read(survivor, survivor_key) == {"name": "Kim", "birth_date": "1990-04-01"}
    assert Subject.objects.get(pk=absorbed.id).profile_enc is None


# ---------------------------------------------------------------------------------------------------------
# Split
# ---------------------------------------------------------------------------------------------------------
def snapshot(subject_id: uuid.UUID) -> dict[str, Any]:
    return {
        "identifiers": identifiers_of(subject_id),
        "records": records_of(subject_id),
        "profile": profile_of(subject_id),
        "states": states(subject_id),
        "objections": objections(subject_id),
        "reads": set(ReadLog.objects.filter(subject_id=subject_id).values_list("pk", flat=True)),
        "is_child": Subject.objects.get(pk=subject_id).is_child,
    }


def test_a_split_restores_both_people_and_a_second_split_is_a_conflict(catalogue: dict[str, Any]) -> None:
    # Given Kim and Kai, two people sharing a landline, each with records, a profile, consents and a read log
    with on_day(0):
        kim = ingest(
            "webshop",
            "W-1",
            {"email": "kim@example.org", "phone": LANDLINE},
            category="contact",
            data={"name": "Kim Doe", "city": "Berlin"},
            profile=True,
        ).subject_id
        consent({"email": "kim@example.org"}, "grant", "sms")
        consent({"email": "kim@example.org"}, "grant", "push")
    with on_day(1):
        kai = ingest(
            "callcenter",
            "CALL-1",
            {"customer_number": "C-9", "phone": LANDLINE},
            category="contact",
            data={"name": "Kai Doe", "birth_date": "2014-02-03"},
            profile=True,
        ).subject_id
        consent({"customer_number": "C-9"}, "withdraw", "sms")
        consent({"customer_number": "C-9"}, "grant", "push", actor="parental_guardian")
        consent({"customer_number": "C-9"}, "object", None, purpose="offers")
        client, _key = client_create(name="crm", scopes=["profile:read"], purposes=[])
        ReadLog.objects.create(subject_id=kai, client=client, purpose="offers", categories=["contact"], read_at=BASE)
    before = {kim: snapshot(kim), kai: snapshot(kai)}
    assert before[kai]["is_child"]
    assert not before[kim]["is_child"]

    # And a till record that wrongly joined them
    with on_day(2):
        ingest("pos", "R-1", {"email": "kim@example.org", "customer_number": "C-9"})
    audit = MergeAudit.objects.get()
    merged = snapshot(kim)
    assert merged["identifiers"] == before[kim]["identifiers"] | before[kai]["identifiers"]
    assert [d["kind"] for d in audit.duplicate_identifiers] == ["phone"]  # both had the landline
    assert merged["profile"] == {"name": "Kim Doe", "city": "Berlin", "birth_date": "2014-02-03"}
    assert merged["is_child"]
    assert merged["reads"] == before[kai]["reads"]
    assert status(kim, "newsletter", "sms") == "withdrawn"

    # When the DPO splits them
    with on_day(3) as split_at:
        survivor, restored = subject_split(audit_id=audit.pk, now=timezone.now())

    # Then each person has exactly their own identifiers, records, profile, consents and logs again
    assert (survivor.id, restored.id) == (kim, kai)
    assert (restored.status, restored.merged_into_id, restored.merged_at) == ("active", None, None)
    after_kim = snapshot(kim)
    assert {k: v for k, v in after_kim.items() if k != "records"} == {
        k: v for k, v in before[kim].items() if k != "records"
    }
    # The record that caused the merge arrived after it, under Kim's e-mail: it stays with Kim.
    assert after_kim["records"] == before[kim]["records"] | {"R-1": after_kim["records"]["R-1"]}
    assert snapshot(kai) == before[kai]
    assert subject_resolve(reference=parse_reference({"customer_number": "C-9"})) == kai
    assert check(kai) == (kai, "withdrawn")
    assert check(kim) == (kim, "granted")

    # And both chains record the split and verify; the audit is marked
    assert chain_problems(kim) == chain_problems(kai) == []
    assert (last_event(kim).action, last_event(kim).related_subject) == ("split", kai)
    assert (last_event(kai).action, last_event(kai).related_subject) == ("split", kim)
    assert MergeAudit.objects.get().split_at == split_at

    # And a second split is refused
    with pytest.raises(SplitConflictError) as info:
        subject_split(audit_id=audit.pk, now=timezone.now())
    assert info.value.status == 409


def test_a_split_returns_subjects_merged_earlier_into_the_absorbed_one(catalogue: dict[str, Any]) -> None:
    # Given Kim; Kai, who had absorbed an older record of his (Kay), withdrew sms there; Kai then merged into Kim
    with on_day(0):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
    with on_day(1):
        kai = ingest("callcenter", "CALL-1", {"customer_number": "C-9"}).subject_id
    with on_day(2):
        kay = consent({"crm_id": "K-1"}, "withdraw", "sms").subject_id
    with on_day(3):
        ingest("pos", "R-1", {"customer_number": "C-9", "crm_id": "K-1"})
    with on_day(4):
        ingest("pos", "R-2", {"email": "kim@example.org", "customer_number": "C-9"})
    assert Subject.objects.get(pk=kay).merged_into_id == kim  # always the final survivor
    assert check(kay) == (kim, "withdrawn")

    # When the second merge is split
    with on_day(5):
        subject_split(audit_id=MergeAudit.objects.get(survivor_id=kim).pk, now=timezone.now())

    # Then Kay's old id follows Kai again, and each side's state is its own history's
    assert Subject.objects.get(pk=kay).merged_into_id == kai
    assert check(kay) == (kai, "withdrawn")
    assert check(kim) == (kim, "granted")
    assert subject_resolve(reference=parse_reference({"crm_id": "K-1"})) == kai
    assert chain_problems(kim) == chain_problems(kai) == chain_problems(kay) == []


def test_a_split_is_refused_once_the_survivor_was_merged_again(catalogue: dict[str, Any]) -> None:
    with on_day(0):
        first = ingest("webshop", "W-1", {"email": "a@example.org"}).subject_id
    with on_day(1):
        ingest("webshop", "W-2", {"email": "b@example.org"})
    with on_day(2):
        ingest("webshop", "W-3", {"email": "c@example.org"})
    with on_day(3):
        ingest("pos", "R-1", {"email": "b@example.org", "customer_number": "C-3", "crm_id": "c"})
        ingest("pos", "R-2", {"email": "c@example.org", "crm_id": "c"})
    inner = MergeAudit.objects.get()
    with on_day(4):
        ingest("pos", "R-3", {"email": "a@example.org", "customer_number": "C-3"})

    assert MergeAudit.objects.filter(survivor_id=first).exists()
    with pytest.raises(SplitConflictError):
        subject_split(audit_id=inner.pk, now=timezone.now())


def test_a_merge_that_waited_behind_a_grant_is_dated_after_it(catalogue: dict[str, Any]) -> None:
    # Given Kai withdrew SMS, and Kim's grant was recorded while a merge of the two waited for their locks
    with on_day(0):
        consent({"email": "kim@example.org"}, "grant", "push")
    with on_day(0.5):
        consent({"customer_number": "C-9"}, "withdraw", "sms")
    with on_day(1):
        kim = consent({"email": "kim@example.org"}, "grant", "sms").subject_id
    kai = subject_resolve(reference=parse_reference({"customer_number": "C-9"}))
    assert kai is not None

    # When the merge, its time taken before the wait, gets the locks after the grant (the soak found this)
    with on_day(2), transaction.atomic():
        locked = {s.id: s for s in lock_subjects(sorted([kim, kai]))}
        subject_merge(survivor=locked[kim], absorbed=locked[kai], reason="test", now=BASE + timedelta(hours=23))

    # Then the merge is dated after the grant it came after, so the state and the chain's replay agree on it
    call_command("verify_ledger", stdout=io.StringIO(), stderr=io.StringIO())
    assert status(kim, "newsletter", "sms") == "withdrawn"
    assert ConsentEvent.objects.get(subject_id=kim, action="merged").occurred_at > BASE + timedelta(days=1)
