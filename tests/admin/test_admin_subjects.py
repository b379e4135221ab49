"""Subjects in the admin: found by identifier through the blind index, shown decrypted with every view audited,
and a wrong merge split."""

from __future__ import annotations

import json

from django.test import Client

from consent.models import AuditEntry
from subjects.models import MergeAudit, Subject
from tests.admin.conftest import admin_search
from tests.api import Api


def found(client: Client, term: str) -> list[str]:
    response = admin_search(client, "/admin/subjects/subject/", term)
    assert response.status_code == 200
    return [str(s.pk) for s in response.context["cl"].result_list]


def test_search_by_email_finds_the_subject_and_a_substring_does_not(dpo: Client, anna: str) -> None:
    assert found(dpo, "anna.becker@example.org") == [anna]
    assert found(dpo, "  ANNA.BECKER@EXAMPLE.ORG ") == [anna]  # normalised like the API does
    assert found(dpo, "anna.becker") == []
    assert found(dpo, "example.org") == []
    assert found(dpo, "becker@example.org") == []


def test_search_by_phone_in_another_format_and_by_subject_id(dpo: Client, anna: str) -> None:
    assert found(dpo, "+49 171 1234567") == [anna]
    assert found(dpo, anna) == [anna]
    assert found(dpo, "1234567") == []


def test_a_search_writes_no_identifier_to_the_audit_log(dpo: Client, anna: str) -> None:
    found(dpo, "anna.becker@example.org")

    assert not AuditEntry.objects.filter(detail__icontains="anna").exists()


def test_viewing_a_subject_writes_an_audit_entry_and_shows_the_decrypted_data(dpo: Client, anna: str) -> None:
    response = dpo.get(f"/admin/subjects/subject/{anna}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "anna.becker@example.org" in page
    assert "+491711234567" in page
    assert "Berlin" in page  # the till receipt, decrypted
    assert "203.0.113.0" in page  # the consent evidence
    assert 'id="chain-status">Chain intact' in page
    assert "<code>granted</code>" in page  # newsletter on sms: the policy's reason
    entry = AuditEntry.objects.get(action="view", object_type="subjects.subject")
    assert entry.object_id == anna
    assert entry.username == dpo.user.get_username()  # type: ignore[attr-defined]
    assert "anna" not in entry.detail.lower()


def test_support_views_a_subject_and_the_view_is_audited(support: Client, anna: str) -> None:
    response = support.get(f"/admin/subjects/subject/{anna}/change/")

    assert response.status_code == 200
    username = support.user.get_username()  # type: ignore[attr-defined]
    assert AuditEntry.objects.filter(action="view", object_id=anna, username=username).count() == 1


def test_every_view_is_audited_again(dpo: Client, anna: str) -> None:
    dpo.get(f"/admin/subjects/subject/{anna}/change/")
    dpo.get(f"/admin/subjects/subject/{anna}/change/")

    assert AuditEntry.objects.filter(action="view", object_id=anna).count() == 2


def test_a_subject_is_not_changed_or_deleted_through_admin(dpo: Client, anna: str) -> None:
    assert dpo.post(f"/admin/subjects/subject/{anna}/change/", {"status": "erased"}).status_code == 403
    assert dpo.post(f"/admin/subjects/subject/{anna}/delete/", {"post": "yes"}).status_code == 403
    assert Subject.objects.get(pk=anna).status == Subject.Status.ACTIVE


def test_the_list_shows_no_decrypted_data(dpo: Client, anna: str) -> None:
    page = dpo.get("/admin/subjects/subject/").content.decode()

    assert anna in page
    assert "anna.becker" not in page
    assert not AuditEntry.objects.filter(action="view").exists()


def _merged(api: Api, anna: str) -> tuple[str, MergeAudit]:
    second = api.post(
        "/api/v1/records",
        {
            "source": "pos",
            "external_id": "R-2",
            "category": "contact",
            "identifiers": {"customer_number": "C-77"},
            "occurred_at": "2026-01-11T10:00:00Z",
            "data": {"name": "B"},
        },
    ).json()["subject"]
    response = api.post(
        "/api/v1/records",
        {
            "source": "pos",
            "external_id": "R-3",
            "category": "contact",
            "identifiers": {"customer_number": "C-77", "email": "anna.becker@example.org"},
            "occurred_at": "2026-01-12T10:00:00Z",
            "data": {"name": "A"},
        },
    )
    assert response.status_code == 201, response.json()
    merge = MergeAudit.objects.get()
    assert {str(merge.survivor_id), str(merge.absorbed_id)} == {anna, second}
    return second, merge


def test_dpo_splits_a_wrong_merge_from_the_subject_page(dpo: Client, api: Api, anna: str) -> None:
    _second, merge = _merged(api, anna)
    survivor = str(merge.survivor_id)

    page = dpo.get(f"/admin/subjects/subject/{survivor}/change/").content.decode()
    response = dpo.post(f"/admin/subjects/subject/{survivor}/split/{merge.pk}/")

    assert "Split this merge" in page
    assert response.status_code == 302
    assert MergeAudit.objects.get(pk=merge.pk).split_at is not None
    assert Subject.objects.get(pk=merge.absorbed_id).status == Subject.Status.ACTIVE
    assert AuditEntry.objects.filter(action="action", detail="split", object_id=str(merge.pk)).exists()


def test_support_cannot_split_a_merge(support: Client, api: Api, anna: str) -> None:
    _second, merge = _merged(api, anna)
    survivor = str(merge.survivor_id)

    page = support.get(f"/admin/subjects/subject/{survivor}/change/").content.decode()
    response = support.post(f"/admin/subjects/subject/{survivor}/split/{merge.pk}/")

    assert "Split this merge" not in page
    assert response.status_code == 403
    assert MergeAudit.objects.get(pk=merge.pk).split_at is None


def test_the_subject_page_downloads_the_consent_record_as_json_ld_and_audits_it(dpo: Client, anna: str) -> None:
    page = dpo.get(f"/admin/subjects/subject/{anna}/change/").content.decode()
    link = f"/admin/subjects/subject/{anna}/consent-record.jsonld"
    assert link in page

    response = dpo.get(link)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/ld+json")
    assert "attachment" in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document["@context"]["dpv"] == "https://w3id.org/dpv#"
    consents = [c for c in document["@graph"] if c.get("@type") == "dpv:Consent"]
    assert consents
    assert all(c["dpv:hasDataSubject"] == {"@id": f"urn:uuid:{anna}"} for c in consents)
    assert AuditEntry.objects.filter(object_id=anna, detail="consent record (JSON-LD)").count() == 1
