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
from subjects.models import MergeAudit, RightsRequest
from tests.admin.conftest import admin_search

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
