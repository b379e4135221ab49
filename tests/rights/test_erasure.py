"""Erasure (Art. 17) as DESIGN.md describes it: every copy gone, holds reported, system-of-record data kept
restricted under its own key, consent proof in the evidence store, recipients in the report, suppression hashes,
the data key destroyed, the erasure log and its replay after a backup restore."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from consent.adapters.evidence_archive import ARCHIVE_COLUMN
from consent.models import (
    Confirmation,
    EvidenceArchive,
)
from subjects import crypto
from subjects.columns import RETAINED_RECORD_DATA
from subjects.keys import blind_index
from subjects.models import (
    ErasureLog,
    IdentifierChange,
    LinkedRecord,
    RetainedRecord,
    RightsExport,
    RightsRequest,
    RightsRequestPart,
    Subject,
    Suppression,
    UndeliveredMail,
    VaultKey,
)
from subjects.portal.addresses import address_change_request
from subjects.rights import texts
from subjects.rights.calendar import BERLIN, add_months
from subjects.rights.erasure import retention_purge
from subjects.rights.exports import export_path
from subjects.rights.registry import handler_for
from subjects.rights.vault import vault_key_open
from tests.api import Api
from tests.factories import ConsentFactory
from tests.rights.erasure_checks import assert_gone_from_every_table, busy_person
from tests.rights.helpers import drain, phone_of, records_bulk, seed_person

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def erase(api: Api, subject: dict[str, Any], *, run: bool = True) -> str:
    body = api.post(REQUESTS, {"kind": "erasure", "subject": subject, "channel": "portal", "verified": True}).json()
    assert body["status"] == "awaiting_approval", body
    assert api.post(f"{REQUESTS}/{body['id']}/approve", {}).status_code == 202
    if run:
        drain(body["id"])
    request_id: str = body["id"]
    return request_id


def test_erasure_leaves_none_of_the_persons_data_in_any_table(rapi: Api) -> None:
    # given a person with data everywhere, an access export, and a bystander
    person = busy_person(rapi, "era1")
    bystander = seed_person("bystander1", records_per_source=1)
    access = rapi.post(
        REQUESTS, {"kind": "access", "subject": {"email": person.email}, "channel": "portal", "verified": True}
    ).json()["id"]
    drain(access)
    assert export_path(access).exists()
    group = [person.subject_id]

    # when the person is erased
    request_id = erase(rapi, {"email": person.email})

    # then nothing of theirs is left but what the law keeps, restricted
    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "completed", body
    subject = Subject.objects.get(pk=person.subject_id)
    assert subject.wrapped_key is None
    assert subject.profile_enc is None
    assert subject.status == Subject.Status.ERASED
    assert subject.erased_at is not None
    assert_gone_from_every_table(person, group)
    assert not RightsExport.objects.exists()
    assert not export_path(access).exists()
    assert RightsRequest.objects.get(pk=access).details_enc is None
    # the bystander is untouched
    assert LinkedRecord.objects.filter(subject_id=bystander.subject_id).count() == 6
    assert Subject.objects.get(pk=bystander.subject_id).wrapped_key is not None

    # and the restricted stores hold what the law keeps, under their own keys
    retained = RetainedRecord.objects.filter(subject_id=person.subject_id)
    assert retained.count() == 5  # the shop's 2 + 3 orders; the shop's contact record is not held
    row = retained.get(source="shop", category="orders", occurred_at=datetime(2024, 3, 1, 12, tzinfo=UTC))
    assert row.retained_until == date(2032, 12, 31)
    kept = json.loads(
        crypto.open_sealed(vault_key_open(row.vault), bytes(row.data_enc), row.pk.bytes + RETAINED_RECORD_DATA.encode())
    )
    assert kept["data"]["item"] == "item-era1-old-shop-0"  # unchanged, only restricted
    archive = EvidenceArchive.objects.get(subject_id=person.subject_id)
    events = json.loads(
        crypto.open_sealed(
            vault_key_open(archive.vault), bytes(archive.events_enc), archive.id.bytes + ARCHIVE_COLUMN.encode()
        )
    )
    assert [e["action"] for e in events] == ["grant", "object", "erased"]
    assert events[0]["evidence"] == {"call": "call-era1"}
    assert events[-1]["prev_hash"] == events[-2]["hash"]
    assert archive.phone is True
    # phone consent: five years after its last use (§7a UWG), which is later than the end of the third year
    assert archive.keep_until == add_months(timezone.now().astimezone(BERLIN).date(), 60)

    # and the identifiers' keyed hashes are on the suppression list
    index = blind_index()
    for kind, value in (("email", person.email), ("customer_number", "C-era1"), ("phone", phone_of("era1"))):
        assert Suppression.objects.filter(digest=index.suppression(kind, value)).exists()

    # and the erasure log knows who and when, without personal data
    log = ErasureLog.objects.get(request_id=request_id)
    assert log.subject_id == person.subject_id
    line = Path(settings.ASSENT_ERASURE_LOG).read_text().strip().splitlines()[-1]
    assert json.loads(line)["subject"] == str(person.subject_id)
    assert person.email not in line


def test_erasure_also_removes_a_grant_waiting_for_its_double_opt_in(rapi: Api) -> None:
    # given a person whose newsletter grant by e-mail waits for its double opt-in (a Confirmation row)
    person = seed_person("era9", records_per_source=1)
    ConsentFactory(email=person.email, channel="email")
    assert Confirmation.objects.filter(subject_id=person.subject_id).exists()

    # when the person is erased
    request_id = erase(rapi, {"email": person.email})

    # then the confirmation is gone, and nothing else of theirs is left
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "completed"
    assert_gone_from_every_table(person, [person.subject_id])


def test_erasure_also_removes_a_pending_address_change(rapi: Api) -> None:
    # given a person who asked in the portal to change her e-mail address, not yet confirmed
    person = seed_person("era10", records_per_source=1)
    new_email = "era10-new@example.de"
    address_change_request(subject_id=person.subject_id, kind="email", value=new_email)
    person.secrets.append(new_email)
    assert IdentifierChange.objects.filter(subject_id=person.subject_id).exists()

    # when the person is erased
    request_id = erase(rapi, {"email": person.email})

    # then the change is gone, and nothing else of theirs is left
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "completed"
    assert not IdentifierChange.objects.filter(subject_id=person.subject_id).exists()
    assert_gone_from_every_table(person, [person.subject_id])


def test_erasure_also_removes_the_record_of_a_mail_that_did_not_reach_the_person(rapi: Api) -> None:
    # given a person whose double opt-in mail the mail server refused (the DPO's dashboard lists it)
    person = seed_person("era11", records_per_source=1)
    ConsentFactory(email=person.email, channel="email")
    confirmation = Confirmation.objects.get(subject_id=person.subject_id)
    now = timezone.now()
    UndeliveredMail.objects.create(
        kind=UndeliveredMail.Kind.CONFIRMATION,
        reference=str(confirmation.pk),
        subject_id=person.subject_id,
        attempts=2,
        last_error="SMTPRecipientsRefused 550",
        first_failed_at=now,
        last_failed_at=now,
    )

    # when the person is erased
    request_id = erase(rapi, {"email": person.email})

    # then no failure is tied to them any more
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "completed"
    assert not UndeliveredMail.objects.filter(subject_id=person.subject_id).exists()
    assert_gone_from_every_table(person, [person.subject_id])


def test_the_report_says_per_source_what_was_deleted_and_what_is_kept_where_why_and_until(rapi: Api) -> None:
    person = busy_person(rapi, "era2")
    result = rapi.get(f"{REQUESTS}/{erase(rapi, {'email': person.email})}").json()["result"]
    assert result["data_found"] is True
    assert result["message"] == texts.ERASURE_DONE
    sources = {s["source"]: s for s in result["sources"]}
    assert set(sources) == {"pos", "shop", "app", "callcenter", "web"}
    assert sources["app"] == {"source": "app", "name": "App", "deleted": 2, "kept": []}
    # till receipts: Assent's copies go; the till system is told to restrict instead of delete (§147 AO)
    assert sources["pos"]["deleted"] == 2
    (pos_hold,) = sources["pos"]["kept"]
    assert pos_hold["where"] == "Store tills (the source system)"
    assert pos_hold["why"] == "§147 AO, §257 HGB"
    assert pos_hold["until"] == f"{timezone.now().year + 8}-12-31"
    assert pos_hold["instruction"] == "restrict until the end date instead of deleting"
    # the web shop is the system of record: its orders stay restricted in Assent until the latest end date
    assert sources["shop"]["deleted"] == 1  # the contact record
    (shop_hold,) = sources["shop"]["kept"]
    assert (shop_hold["count"], shop_hold["where"]) == (5, texts.RETENTION_STORE)
    assert shop_hold["until"] == f"{timezone.now().year + 8}-12-31"
    evidence = next(k for k in result["kept"] if k["category"] == "consent proof")
    assert evidence["where"] == texts.EVIDENCE_STORE
    assert result["profile"] == {"identifiers_deleted": 3, "profile_deleted": True}
    assert result["suppressed_identifiers"] == 3
    assert result["data_key_destroyed"] is True
    # Art. 19: the recipients, copied before the logs went
    assert {(r["name"], r["kind"]) for r in result["recipients"]} == {
        ("client-0", "profile_read"),
        ("client-0", "send"),
    }


def test_the_policy_denies_every_use_as_erased_from_approval_on(rapi: Api) -> None:
    person = seed_person("era3", records_per_source=1)
    check = {"subject": {"email": person.email}, "purpose": "order-updates", "channel": "email"}
    assert rapi.post("/api/v1/consents/check", check).json()["allowed"] is True
    erase(rapi, {"email": person.email}, run=False)
    assert rapi.post("/api/v1/consents/check", check).json()["reason"] == "erased"


def test_an_erased_person_is_unknown_afterwards_and_a_new_request_finds_nothing(rapi: Api) -> None:
    person = seed_person("era4", records_per_source=1)
    erase(rapi, {"email": person.email})
    assert_gone_from_every_table(person, [person.subject_id])
    check = {"subject": {"email": person.email}, "purpose": "order-updates", "channel": "email"}
    assert rapi.post("/api/v1/consents/check", check).json()["reason"] == "unknown_subject"
    again = erase(rapi, {"id": str(person.subject_id)})
    result = rapi.get(f"{REQUESTS}/{again}").json()["result"]
    assert result["message"] == texts.NO_DATA_FOUND


def test_records_arriving_while_the_parts_run_are_erased_by_the_finish_step(rapi: Api) -> None:
    person = seed_person("era5", records_per_source=1)
    request_id = erase(rapi, {"email": person.email}, run=False)
    from subjects.rights.workflow import part_run

    finish = RightsRequestPart.objects.get(request_id=request_id, name="finish")
    for part in RightsRequestPart.objects.filter(request_id=request_id).exclude(name="finish"):
        part_run(part_id=part.pk, handlers=handler_for, steal=False)
        break  # the first source part only ...
    records_bulk(person.subject_id, "app", "app_usage", 4, "late")  # ... then late records arrive
    drain(request_id)
    finish.refresh_from_db()
    assert finish.status == "done"
    assert not LinkedRecord.objects.filter(subject_id=person.subject_id).exists()
    person.secrets.append("item-late-app-0")
    assert_gone_from_every_table(person, [person.subject_id])
    app = next(s for s in rapi.get(f"{REQUESTS}/{request_id}").json()["result"]["sources"] if s["source"] == "app")
    assert app["deleted"] == 5


def test_retained_records_and_evidence_are_purged_at_their_end_date_with_their_keys(rapi: Api) -> None:
    person = busy_person(rapi, "era6")
    erase(rapi, {"email": person.email})
    # (the third, the completion mail's key, goes once the mail is sent: test_completion_mail.py)
    vaults = VaultKey.objects.filter(subject_id=person.subject_id).exclude(purpose=VaultKey.Purpose.MAIL)
    assert vaults.count() == 2
    assert not vaults.filter(wrapped_key__isnull=True).exists()
    assert retention_purge(now=datetime(2030, 1, 1, tzinfo=UTC)) == 0
    assert retention_purge(now=datetime(timezone.now().year + 9, 1, 2, tzinfo=UTC)) == 5
    assert not RetainedRecord.objects.exists()
    assert vaults.get(purpose="retention").wrapped_key is None
    from subjects import ports

    keep_until = EvidenceArchive.objects.get().keep_until
    assert ports.consent_rights.evidence_purge(now=datetime.combine(keep_until, datetime.min.time(), UTC)) == 0
    after = datetime.combine(keep_until + timedelta(days=1), datetime.min.time(), UTC)
    assert ports.consent_rights.evidence_purge(now=after) == 1
    assert not EvidenceArchive.objects.exists()
    assert vaults.get(purpose="evidence").wrapped_key is None


def test_replay_erasures_reapplies_logged_erasures_to_a_restored_backup(rapi: Api) -> None:
    # given an erasure that was logged, and a "restored backup" that still holds the person's data
    person = seed_person("era7", records_per_source=1)
    request_id = erase(rapi, {"email": person.email}, run=False)
    restored = seed_person("era7b", records_per_source=2)  # stands in for the person as the backup has them
    log = Path(settings.ASSENT_ERASURE_LOG)
    with log.open("a") as handle:
        handle.write(
            json.dumps(
                {"request": request_id, "subject": str(restored.subject_id), "erased_at": timezone.now().isoformat()}
            )
            + "\n"
        )
        handle.write("{cut off by a crash\n")

    # when the operator replays
    out = StringIO()
    call_command("replay_erasures", "--since", (timezone.now() - timedelta(days=1)).date().isoformat(), stdout=out)

    # then the restored person is erased again, and a second replay finds nothing left
    assert f"subject {restored.subject_id}: re-applied" in out.getvalue()
    assert not LinkedRecord.objects.filter(subject_id=restored.subject_id).exists()
    assert Subject.objects.get(pk=restored.subject_id).wrapped_key is None
    assert RightsRequest.objects.get(pk=request_id).status == "completed"
    again = StringIO()
    call_command("replay_erasures", "--since", "2020-01-01", stdout=again)
    assert f"subject {restored.subject_id}: already erased" in again.getvalue()


def test_replay_erasures_rejects_a_bad_date(rapi: Api) -> None:
    with pytest.raises(CommandError, match="--since"):
        call_command("replay_erasures", "--since", "yesterday")


def test_the_suppression_list_recognises_an_erased_persons_identifiers_and_nothing_else(rapi: Api) -> None:
    from subjects.suppression import identifiers_suppressed

    person = seed_person("era8", records_per_source=0)
    assert not identifiers_suppressed(identifiers=[("email", person.email)])
    erase(rapi, {"email": person.email})
    assert identifiers_suppressed(identifiers=[("email", person.email)])
    assert identifiers_suppressed(identifiers=[("email", "other@example.de"), ("phone", phone_of("era8"))])
    assert not identifiers_suppressed(identifiers=[("email", "other@example.de")])
    assert not identifiers_suppressed(identifiers=[])
