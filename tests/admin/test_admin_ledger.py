"""The ledger and the logs are read-only in the admin: no add, change or delete, and POSTs are refused."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.db import models
from django.test import Client, RequestFactory

from consent.models import (
    AuditEntry,
    ConsentEvent,
    ConsentState,
    LedgerHead,
    ReadLog,
    Send,
    SendRecipient,
)
from subjects.identity import Reference
from subjects.models import MergeAudit, RightsRequest
from tests.admin.conftest import admin_search
from tests.factories import ConsentFactory, ingest

READ_ONLY = [ConsentEvent, LedgerHead, ConsentState, ReadLog, Send, SendRecipient, AuditEntry, MergeAudit]


@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_ledger_and_log_admins_allow_no_add_change_or_delete(model: type[models.Model], dpo: Client) -> None:
    model_admin = admin.site._registry[model]
    request = RequestFactory().get("/admin/")
    request.user = dpo.user  # type: ignore[attr-defined]

    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_ledger_rows_cannot_be_changed_or_deleted_through_admin(dpo: Client, anna: str) -> None:
    event = ConsentEvent.objects.filter(subject_id=anna).order_by("seq").first()
    head = LedgerHead.objects.get(subject_id=anna)
    assert event is not None
    before = (event.action, event.hash)

    for url, data in (
        (f"/admin/consent/consentevent/{event.pk}/change/", {"action": "withdraw", "purpose": "newsletter"}),
        (f"/admin/consent/consentevent/{event.pk}/delete/", {"post": "yes"}),
        ("/admin/consent/consentevent/add/", {"action": "grant"}),
        (f"/admin/consent/ledgerhead/{head.pk}/change/", {"last_seq": 1}),
        (f"/admin/consent/ledgerhead/{head.pk}/delete/", {"post": "yes"}),
    ):
        assert dpo.post(url, data).status_code == 403, url

    stored = ConsentEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.hash) == before
    assert LedgerHead.objects.get(pk=head.pk).last_seq == head.last_seq


def test_the_audit_log_cannot_be_changed_through_admin(dpo: Client) -> None:
    entry = AuditEntry.objects.order_by("pk").first()
    assert entry is not None

    assert dpo.post(f"/admin/consent/auditentry/{entry.pk}/change/", {"detail": "x"}).status_code == 403
    assert dpo.post(f"/admin/consent/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert dpo.post("/admin/consent/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk]})
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_the_ledger_is_listed_by_subject_id_without_evidence(dpo: Client, anna: str) -> None:
    listing = admin_search(dpo, "/admin/consent/consentevent/", anna).content.decode()
    event = ConsentEvent.objects.filter(subject_id=anna).first()
    assert event is not None
    detail = dpo.get(f"/admin/consent/consentevent/{event.pk}/change/").content.decode()

    assert anna in listing
    assert "203.0.113.0" not in detail  # the evidence is shown, decrypted and audited, on the subject only
    assert event.hash in detail


def test_rights_requests_are_not_edited_as_rows(dpo: Client) -> None:
    model_admin = admin.site._registry[RightsRequest]
    request = RequestFactory().get("/admin/")
    request.user = dpo.user  # type: ignore[attr-defined]

    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_the_ledger_is_found_by_an_identifier_through_the_blind_index(dpo: Client, anna: str) -> None:
    other = ingest("pos", "R-other", {"email": "ben@example.org"}).subject_id
    ConsentFactory(reference=Reference(other, ()), channel="sms")

    found = admin_search(dpo, "/admin/consent/consentevent/", "  ANNA.Becker@example.org ")
    by_part = admin_search(dpo, "/admin/consent/consentevent/", "anna.becker")

    assert {str(e.subject_id) for e in found.context["cl"].result_list} == {anna}
    assert found.context["cl"].result_list
    assert list(by_part.context["cl"].result_list) == []  # a part of a value finds nothing
    entry = AuditEntry.objects.filter(object_type="consent.consentevent").latest("at")
    assert "anna" not in entry.detail.lower()


def test_the_ledger_sorts_by_subject_then_sequence_and_by_time(dpo: Client, anna: str) -> None:
    other = ingest("pos", "R-other", {"email": "ben@example.org"}).subject_id
    for channel in ("sms", "push"):
        ConsentFactory(reference=Reference(other, ()), channel=channel)

    by_subject = dpo.get("/admin/consent/consentevent/?o=0").context["cl"].result_list
    newest_first = dpo.get("/admin/consent/consentevent/").context["cl"].result_list

    pairs = [(str(e.subject_id), e.seq) for e in by_subject]
    assert pairs == sorted(pairs)
    assert len({s for s, _ in pairs}) == 2
    times = [e.recorded_at for e in newest_first]
    assert times == sorted(times, reverse=True)
