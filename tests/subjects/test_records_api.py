"""Linked records through POST /api/v1/records: idempotent, encrypted, resolving identities."""

from __future__ import annotations

import copy
import subprocess
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from subjects.models import Identifier, LinkedRecord, Subject
from subjects.profile import children_recheck
from subjects.tasks import purge_expired_records
from tests.api import Api

NOW = "2026-11-20T10:00:00Z"


def record(**overrides: Any) -> dict[str, Any]:
    body = {
        "source": "pos",
        "external_id": "R-1",
        "category": "purchases",
        "identifiers": {"email": "kim@example.org"},
        "occurred_at": NOW,
        "data": {"sku": "ROPE-60M", "total": "129.00"},
    }
    body.update(overrides)
    return body


def test_a_new_record_creates_a_subject_and_a_resent_one_updates_it(api: Api) -> None:
    first = api.post("/api/v1/records", record())
    again = api.post("/api/v1/records", record(data={"sku": "ROPE-70M"}))
    assert first.status_code == 201, first.content
    assert again.status_code == 200, again.content
    assert first.json()["record"] == again.json()["record"]
    assert first.json()["subject"] == again.json()["subject"]
    assert LinkedRecord.objects.count() == 1
    assert Subject.objects.count() == 1


def test_records_of_one_person_from_two_sources_end_in_one_subject(api: Api) -> None:
    a = api.post("/api/v1/records", record())
    b = api.post("/api/v1/records", record(external_id="R-2", identifiers={"email": "KIM@example.org "}))
    assert a.json()["subject"] == b.json()["subject"]


def test_a_shared_landline_attaches_a_record_only_when_it_names_one_person(api: Api) -> None:
    kim = api.post("/api/v1/records", record(identifiers={"email": "kim@example.org", "phone": "030 1234567"}))
    only_phone = api.post("/api/v1/records", record(external_id="R-2", identifiers={"phone": "+49 30 1234567"}))
    assert only_phone.json()["subject"] == kim.json()["subject"]
    # A second person at the same landline: a person-bound e-mail of her own, the same phone.
    alex = api.post(
        "/api/v1/records", record(external_id="R-3", identifiers={"email": "alex@example.org", "phone": "030 1234567"})
    )
    assert alex.json()["subject"] != kim.json()["subject"]
    # Now the landline names two people: a record with only the phone fuses nobody.
    ambiguous = api.post("/api/v1/records", record(external_id="R-4", identifiers={"phone": "030 1234567"}))
    assert ambiguous.json()["subject"] not in (kim.json()["subject"], alex.json()["subject"])
    assert Subject.objects.filter(status="merged").count() == 0


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"source": "nowhere"}, "source", "source_unknown"),
        (
            {"category": "contact", "source": "pos", "external_id": "x"} | {"category": "loyalty"},
            "category",
            "category_not_declared",
        ),
        ({"identifiers": {"shoe_size": "42"}}, "identifiers.shoe_size", "invalid"),
        ({"identifiers": {"phone": "12"}}, "identifiers.phone", "invalid_identifier"),
        ({"identifiers": {}}, "identifiers", "invalid"),
        ({"occurred_at": "yesterday"}, "occurred_at", "invalid"),
    ],
)
def test_bad_records_are_rejected_naming_the_field_and_nothing_is_written(
    api: Api, overrides: dict[str, Any], field: str, code: str
) -> None:
    response = api.post("/api/v1/records", record(**overrides))
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert field in body["errors"]
    assert LinkedRecord.objects.count() == 0
    assert Subject.objects.count() == 0


def test_a_purchase_makes_its_email_an_existing_customer_address(api: Api) -> None:
    api.post("/api/v1/records", record())
    email = Identifier.objects.get(kind="email")
    assert email.purchase_at is not None


@pytest.mark.django_db(transaction=True)
def test_no_personal_data_is_in_plaintext_in_a_database_dump(api: Api) -> None:
    # Given a record with a distinctive e-mail, name and phone
    api.post(
        "/api/v1/records",
        record(
            source="pos",
            category="contact",
            identifiers={"email": "zebediah.quux@example.org", "phone": "+49 171 9876543"},
            data={"name": "Zebediah Quuxworth", "phone": "+49 171 9876543"},
        ),
    )
    api.post(
        "/api/v1/consents",
        {
            "subject": {"email": "zebediah.quux@example.org"},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": "2026-01",
            "source": "webshop",
            "evidence": {"form": "checkout", "name": "Zebediah Quuxworth"},
        },
    )
    # When the whole database is dumped
    db = settings.DATABASES["default"]
    connection.close()
    dump = (
        subprocess.run(
            ["pg_dump", "--data-only", "-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"], db["NAME"]],
            capture_output=True,
            check=True,
        )
        .stdout.decode("utf-8", "replace")
        .lower()
    )
    # Then none of the values appears in it
    assert "subjects_identifier" in dump  # the dump is real
    for needle in ("zebediah", "quux", "9876543", "+491719876543"):
        assert needle not in dump, needle


def test_a_birth_date_under_sixteen_makes_the_subject_a_child_whose_consent_needs_a_guardian(api: Api) -> None:
    # Given a profile record with the birth date of a 12-year-old
    twelve = (timezone.now().date() - timedelta(days=12 * 365 + 10)).isoformat()
    made = api.post(
        "/api/v1/records",
        record(category="contact", identifiers={"email": "kid@example.org"}, data={"birth_date": twelve}),
    )
    assert made.status_code == 201, made.content
    assert Subject.objects.get().is_child
    # When the child's own grant is recorded, then the check asks for parental consent (Art. 8)
    grant = {
        "subject": {"email": "kid@example.org"},
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
    }
    api.post("/api/v1/consents", grant)
    check = {"subject": {"email": "kid@example.org"}, "purpose": "newsletter", "channel": "sms"}
    assert api.post("/api/v1/consents/check", check).json()["reason"] == "parental_consent_required"
    # And a guardian's grant makes it lawful
    api.post("/api/v1/consents", {**grant, "actor": "parental_guardian"})
    assert api.post("/api/v1/consents/check", check).json()["allowed"] is True


def test_records_past_their_categorys_retention_are_purged_and_younger_ones_kept(api: Api) -> None:
    # Given a contact record older than the pos source's 1095 days and a fresh one
    old = (timezone.now() - timedelta(days=1100)).isoformat()
    api.post("/api/v1/records", record(category="contact", external_id="old", occurred_at=old, data={"n": 1}))
    api.post("/api/v1/records", record(category="contact", external_id="new", data={"n": 2}))
    # When the scheduled purge runs
    deleted = purge_expired_records()
    # Then only the old one is gone
    assert deleted == 1
    assert list(LinkedRecord.objects.values_list("external_id", flat=True)) == ["new"]


def test_a_child_who_turns_sixteen_is_no_longer_flagged(api: Api) -> None:
    # Given a child whose sixteenth birthday is tomorrow
    born = timezone.now().date() + timedelta(days=1)
    born = born.replace(year=born.year - 16)
    api.post(
        "/api/v1/records",
        record(category="contact", identifiers={"email": "teen@example.org"}, data={"birth_date": born.isoformat()}),
    )
    assert Subject.objects.get().is_child
    # When the daily check runs today, nothing changes; when it runs in two days, the flag is gone
    assert children_recheck() == 0
    assert children_recheck(now=timezone.now() + timedelta(days=2)) == 1
    assert not Subject.objects.get().is_child


def test_the_category_flagged_purchase_decides_who_is_an_existing_customer(api: Api, catalogue: dict[str, Any]) -> None:
    # Given a catalogue whose purchases are kept under another key ("tickets") and whose "purchases" is not flagged
    from consent.catalogue.apply import catalogue_apply
    from consent.catalogue.snapshot import catalogue_forget

    document = copy.deepcopy(catalogue)
    document["data_categories"][1]["purchase"] = False
    document["data_categories"].append({"key": "tickets", "name": "Tickets", "purchase": True})
    document["sources"][0]["categories"]["tickets"] = {"delete_after_days": 365}
    catalogue_apply(document=document)
    catalogue_forget()
    # When one person's record is a ticket and another's is in the unflagged "purchases"
    api.post("/api/v1/records", record(category="tickets", identifiers={"email": "ticket@example.org"}))
    api.post("/api/v1/records", record(external_id="R-2", identifiers={"email": "plain@example.org"}))

    # Then only the ticket's address is an existing customer's (UWG §7(3))
    def check(email: str) -> Any:
        body = {"subject": {"email": email}, "purpose": "offers", "channel": "email"}
        return api.post("/api/v1/consents/check", body).json()

    assert check("ticket@example.org")["allowed"] is True
    assert check("plain@example.org")["reason"] == "no_existing_customer"
