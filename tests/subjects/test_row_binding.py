"""Encrypted values are bound to their row (issue 9 item 11): a ciphertext copied between two rows of the same
person in the database is refused on read, everywhere it is read; values from before row binding still read and
are converted by a resumable pass (reencrypt_fields, and rotate_master_key)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings

from consent.ledger.chain import event_evidence, ledger_retention_allow
from consent.models import ConsentEvent
from subjects import crypto, keys
from subjects.columns import EVENT_EVIDENCE, IDENTIFIER_VALUE, RECORD_DATA, SUBJECT_PROFILE
from subjects.keys import data_key
from subjects.models import Identifier, LinkedRecord, Subject
from subjects.profile import profile_read
from subjects.reencryption import ColumnProgress, fields_pending, fields_reencrypt
from subjects.selectors import subject_identifiers
from tests.admin.conftest import dpo, make_staff, staff_groups  # noqa: F401 (fixtures)
from tests.api import Api
from tests.factories import customer
from tests.portal.conftest import portal, sign_in  # noqa: F401 (fixture)


def _swap(table: str, column: str, first: Any, second: Any) -> None:
    """What an attacker with write access to the database does: exchange two rows' ciphertexts."""
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE "{table}" a SET "{column}" = b."{column}" FROM "{table}" b '
            f"WHERE (a.id, b.id) IN ((%s, %s), (%s, %s))",
            [first, second, second, first],
        )


def _swap_identifiers(subject: Subject) -> None:
    first, second = Identifier.objects.filter(subject=subject).order_by("pk").values_list("pk", flat=True)
    _swap("subjects_identifier", "value_enc", first, second)


def _downgrade(subject: Subject) -> None:
    """Rewrite the person's values as version 1 (bound to subject and column only), as before row binding."""
    key = data_key(subject)
    for identifier in Identifier.objects.filter(subject=subject):
        value = crypto.open_field(key, bytes(identifier.value_enc), subject.id, IDENTIFIER_VALUE, identifier.pk)
        blob = crypto.seal(key, value, crypto.field_aad(subject.id, IDENTIFIER_VALUE))
        Identifier.objects.filter(pk=identifier.pk).update(value_enc=blob)
    for record in LinkedRecord.objects.filter(subject=subject):
        value = crypto.open_field(key, bytes(record.data_enc), subject.id, RECORD_DATA, record.pk)
        LinkedRecord.objects.filter(pk=record.pk).update(
            data_enc=crypto.seal(key, value, crypto.field_aad(subject.id, RECORD_DATA))
        )
    profile = json.dumps(profile_read(subject, key), sort_keys=True).encode()
    Subject.objects.filter(pk=subject.pk).update(
        profile_enc=crypto.seal(key, profile, crypto.field_aad(subject.id, SUBJECT_PROFILE))
    )
    ledger_retention_allow()  # tampering with the database as its owner could: past the ledger's trigger
    for event in ConsentEvent.objects.filter(subject=subject, evidence_enc__isnull=False):
        evidence = json.dumps(event_evidence(event, key)).encode()
        ConsentEvent.objects.filter(pk=event.pk).update(
            evidence_enc=crypto.seal(key, evidence, crypto.field_aad(subject.id, EVENT_EVIDENCE))
        )


def _all_row_bound(subject: Subject) -> bool:
    subject.refresh_from_db()
    blobs = [bytes(b) for b in Identifier.objects.filter(subject=subject).values_list("value_enc", flat=True)]
    blobs += [bytes(b) for b in LinkedRecord.objects.filter(subject=subject).values_list("data_enc", flat=True)]
    blobs += [
        bytes(b)
        for b in ConsentEvent.objects.filter(subject=subject, evidence_enc__isnull=False).values_list(
            "evidence_enc", flat=True
        )
    ]
    blobs.append(bytes(subject.profile_enc or b""))
    return all(crypto.is_row_bound(b) for b in blobs)


def test_two_identifiers_swapped_between_rows_are_refused_on_read(api: Api) -> None:
    kim = customer()
    assert dict(subject_identifiers(subject=kim, key=data_key(kim))) == {
        "email": "kim@example.org",
        "phone": "+491711234567",
    }
    _swap_identifiers(kim)
    with pytest.raises(crypto.CiphertextIntegrityError) as caught:
        subject_identifiers(subject=kim, key=data_key(kim))
    assert caught.value.code == "integrity_error"
    assert caught.value.status == 503


def test_the_api_answers_a_swapped_record_with_a_503_problem(api: Api) -> None:
    kim = customer()
    first, second = LinkedRecord.objects.filter(subject=kim, category="purchases").values_list("pk", flat=True)
    _swap("subjects_linkedrecord", "data_enc", first, second)
    response = api.get(f"/api/v1/subjects/{kim.pk}/profile?purpose=order-updates")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "integrity_error"
    assert "Berlin" not in json.dumps(body)


def test_the_portal_shows_a_readable_page_for_a_swapped_identifier(api: Api, portal: None) -> None:  # noqa: F811
    kim = customer()
    client = sign_in("kim@example.org")
    assert client.get("/portal/rights/rectification").status_code == 200
    _swap_identifiers(kim)
    page = client.get("/portal/rights/rectification?lang=en")
    assert page.status_code == 503
    text = page.content.decode()
    assert "failed its integrity check" in text
    assert "kim@example.org" not in text
    assert "+491711234567" not in text


def test_the_admin_subject_page_names_the_failed_check_instead_of_a_500(api: Api, dpo: Client) -> None:  # noqa: F811
    kim = customer()
    _swap_identifiers(kim)
    page = dpo.get(f"/admin/subjects/subject/{kim.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "integrity check failed" in text
    assert "kim@example.org" not in text


def test_values_from_before_row_binding_still_read(api: Api) -> None:
    kim = customer()
    _downgrade(kim)
    kim.refresh_from_db()
    assert not _all_row_bound(kim)
    key = data_key(kim)
    assert dict(subject_identifiers(subject=kim, key=key))["email"] == "kim@example.org"
    assert profile_read(kim, key) == {"name": "Kim"}
    event = ConsentEvent.objects.get(subject=kim, evidence_enc__isnull=False)
    assert event_evidence(event, key) == {"ip": "203.0.113.9", "form": "checkout"}
    assert api.get(f"/api/v1/subjects/{kim.pk}/profile?purpose=order-updates").status_code == 200


def test_reencrypt_fields_converts_every_value_and_resumes_after_an_interruption(api: Api) -> None:
    kim, kai = customer(), customer("kai@example.org")
    _downgrade(kim)
    _downgrade(kai)
    with pytest.raises(CommandError):
        call_command("reencrypt_fields", "--check")
    before = sum(fields_pending().values())

    class Killed(Exception):
        pass

    def kill(step: ColumnProgress) -> None:
        raise Killed  # the process dies right after its first batch committed

    with pytest.raises(Killed):
        fields_reencrypt(batch=1, progress=kill)
    assert sum(fields_pending().values()) == before - 1  # the first batch stayed committed

    call_command("reencrypt_fields", "--batch", "2")
    call_command("reencrypt_fields", "--check")
    assert fields_pending() == {}
    assert _all_row_bound(kim)
    assert _all_row_bound(kai)
    key = data_key(kim)
    assert dict(subject_identifiers(subject=kim, key=key))["email"] == "kim@example.org"
    event = ConsentEvent.objects.get(subject=kim, evidence_enc__isnull=False)
    assert event_evidence(event, key) == {"ip": "203.0.113.9", "form": "checkout"}
    # And a swap between the converted rows is now refused
    _swap_identifiers(kim)
    with pytest.raises(crypto.CiphertextIntegrityError):
        subject_identifiers(subject=kim, key=key)


def test_reencryption_stops_at_a_tampered_old_value_without_showing_it(api: Api) -> None:
    kim = customer()
    _downgrade(kim)
    key = data_key(kim)
    identifier = Identifier.objects.filter(subject=kim).first()
    assert identifier is not None
    other = crypto.seal(key, b"x", crypto.field_aad(uuid.uuid4(), IDENTIFIER_VALUE))
    Identifier.objects.filter(pk=identifier.pk).update(value_enc=other)
    with pytest.raises(CommandError, match="does not authenticate"):
        call_command("reencrypt_fields")


def test_rotate_master_key_also_binds_old_values_to_their_rows(api: Api, settings: Any) -> None:
    kim = customer()
    _downgrade(kim)
    old_entry = settings.ASSENT_MASTER_KEYS[0]
    new_entry = ("k2027", os.urandom(32))
    with override_settings(ASSENT_MASTER_KEYS=[new_entry, old_entry]):
        keys.keyring.cache_clear()
        try:
            call_command("rotate_master_key", "--batch", "1")
            kim.refresh_from_db()
            assert kim.key_kid == "k2027"
            assert _all_row_bound(kim)
            assert dict(subject_identifiers(subject=kim, key=data_key(kim)))["email"] == "kim@example.org"
        finally:
            keys.keyring.cache_clear()


def test_once_converted_an_old_value_replayed_from_a_backup_is_refused(api: Api, settings: Any) -> None:
    kim = customer()
    key = data_key(kim)
    email = Identifier.objects.get(subject=kim, kind="email")
    phone = Identifier.objects.get(subject=kim, kind="phone")
    # An old backup's value of the e-mail, written into the phone's row after the conversion
    replayed = crypto.seal(key, b"kim@example.org", crypto.field_aad(kim.id, IDENTIFIER_VALUE))
    Identifier.objects.filter(pk=phone.pk).update(value_enc=replayed)
    assert email.pk != phone.pk
    settings.ASSENT_READ_UNBOUND_VALUES = False
    with pytest.raises(crypto.CiphertextIntegrityError, match="not bound to its row"):
        subject_identifiers(subject=kim, key=key)
    event = ConsentEvent.objects.get(subject=kim, evidence_enc__isnull=False)
    ledger_retention_allow()
    ConsentEvent.objects.filter(pk=event.pk).update(
        evidence_enc=crypto.seal(key, b"{}", crypto.field_aad(kim.id, EVENT_EVIDENCE))
    )
    event.refresh_from_db()
    with pytest.raises(crypto.CiphertextIntegrityError):
        event_evidence(event, key)


# Under a vault key, not a subject's, and bound to their row id already (subjects.rights.erasure, consent.rights).
# Sealed under a vault key of their own (subjects.rights.vault), not a subject's data key: outside the registry.
VAULT_COLUMNS = {
    ("subjects.RetainedRecord", "data_enc"),
    ("consent.EvidenceArchive", "events_enc"),
    ("subjects.RightsRequest", "mail_to_enc"),  # an erased person's address until their completion mail is sent
}


def test_every_encrypted_column_is_in_the_registry() -> None:
    """A new `*_enc` column must be listed in subjects.columns.COLUMNS, so reencrypt_fields and --check see it."""
    from django.apps import apps
    from django.db import models

    from subjects.columns import COLUMNS

    registered = {(c.model, c.field) for c in COLUMNS}
    found = {
        (model._meta.label, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, models.BinaryField) and field.name.endswith("_enc")
    }
    assert found - VAULT_COLUMNS == registered
    assert len({c.column for c in COLUMNS}) == len(COLUMNS)  # one associated-data name per column


def test_a_row_bound_value_opens_only_for_its_own_row_column_and_subject() -> None:
    key, kim = crypto.new_data_key(), uuid.uuid4()
    blob = crypto.seal_field(key, b"kim@example.org", kim, IDENTIFIER_VALUE, 41)
    assert crypto.is_row_bound(blob)
    assert crypto.open_field(key, blob, kim, IDENTIFIER_VALUE, 41) == b"kim@example.org"
    for subject, column, row in (
        (kim, IDENTIFIER_VALUE, 42),
        (kim, RECORD_DATA, 41),
        (uuid.uuid4(), IDENTIFIER_VALUE, 41),
    ):
        with pytest.raises(crypto.CiphertextIntegrityError):
            crypto.open_field(key, blob, subject, column, row)
    # Column "a" with row "1b" and column "a1" with row "b" are different associated data
    assert crypto.row_aad(kim, "a", "1b") != crypto.row_aad(kim, "a1", "b")
