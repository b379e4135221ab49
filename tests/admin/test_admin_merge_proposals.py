"""Merge proposals in the admin: a queue for the DPO, both people side by side (an audited view), approve or
reject only with `subjects.decide_mergeproposal` (the DPO group)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from consent.models import AuditEntry, CatalogueRevision
from subjects.models import MergeProposal, Subject
from tests.api import Api
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue


def post_record(api: Api, external_id: str, identifiers: dict[str, str]) -> Any:
    return api.post(
        "/api/v1/records",
        {
            "source": "pos",
            "external_id": external_id,
            "category": "purchases",
            "identifiers": identifiers,
            "occurred_at": "2026-11-20T10:00:00Z",
            "data": {"store": "Berlin"},
        },
    )


@pytest.fixture
def proposal(api: Api) -> MergeProposal:
    apply_catalogue(standard_catalogue(one_per_person=["customer_number"]))
    post_record(api, "R-A", {"email": "anna@example.de", "customer_number": "C-1"})
    post_record(api, "R-B", {"email": "ben@example.de", "customer_number": "C-2"})
    response = post_record(api, "R-X", {"email": "anna@example.de", "customer_number": "C-2"})
    assert response.status_code == 202, response.content
    return MergeProposal.objects.get(pk=response.json()["merge_proposal"])


def page(proposal: MergeProposal) -> str:
    return f"/admin/subjects/mergeproposal/{proposal.pk}/change/"


def decide(proposal: MergeProposal, decision: str) -> str:
    return f"/admin/subjects/mergeproposal/{proposal.pk}/decide/{decision}/"


def test_the_dpo_sees_open_proposals_in_a_queue(dpo: Client, proposal: MergeProposal) -> None:
    response = dpo.get("/admin/subjects/mergeproposal/?status__exact=open")
    assert response.status_code == 200
    assert str(proposal.pk) in response.content.decode()


def test_the_side_by_side_view_shows_both_people_and_is_audited(dpo: Client, proposal: MergeProposal) -> None:
    response = dpo.get(page(proposal))
    html = response.content.decode()
    assert response.status_code == 200
    assert "anna@example.de" in html
    assert "ben@example.de" in html
    assert "C-1" in html
    assert "C-2" in html
    assert 'id="approve"' in html
    assert 'id="reject"' in html
    assert AuditEntry.objects.filter(action="view", object_id=str(proposal.pk)).count() == 1
    for side in (proposal.subject_a_id, proposal.subject_b_id):
        assert AuditEntry.objects.filter(action="view", object_type="subjects.subject", object_id=str(side)).exists()
    assert not AuditEntry.objects.filter(detail__icontains="example.de").exists()


def test_the_dpo_approves_and_the_two_are_merged(dpo: Client, proposal: MergeProposal) -> None:
    response = dpo.post(decide(proposal, "approve"))
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert (proposal.status, proposal.survivor_id) == ("approved", proposal.subject_a_id)
    assert Subject.objects.get(pk=proposal.subject_b_id).merged_into_id == proposal.subject_a_id
    assert AuditEntry.objects.filter(action="action", object_id=str(proposal.pk), detail="approve").exists()
    # Decided: the buttons are gone, a second decision changes nothing.
    assert 'id="approve"' not in dpo.get(page(proposal)).content.decode()
    dpo.post(decide(proposal, "reject"))
    proposal.refresh_from_db()
    assert proposal.status == "approved"


def test_the_dpo_rejects_and_nobody_is_merged(dpo: Client, proposal: MergeProposal) -> None:
    assert dpo.post(decide(proposal, "reject")).status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == "rejected"
    assert proposal.decided_by == dpo.user.get_username()  # type: ignore[attr-defined]
    assert not Subject.objects.filter(status="merged").exists()


def test_support_may_neither_see_nor_decide_a_proposal(support: Client, proposal: MergeProposal) -> None:
    assert support.get(page(proposal)).status_code == 403
    assert support.post(decide(proposal, "approve")).status_code == 403
    assert support.post(decide(proposal, "reject")).status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == "open"
    assert not Subject.objects.filter(status="merged").exists()


def test_deciding_needs_a_post(dpo: Client, proposal: MergeProposal) -> None:
    assert dpo.get(decide(proposal, "approve")).status_code == 403
    proposal.refresh_from_db()
    assert proposal.status == "open"


def test_the_catalogue_revision_page_shows_one_per_person(dpo: Client, proposal: MergeProposal) -> None:
    latest = CatalogueRevision.objects.order_by("-pk").first()
    assert latest is not None
    html = dpo.get(f"/admin/consent/cataloguerevision/{latest.pk}/change/").content.decode()
    assert "one per person" in html.lower()
    assert "customer_number" in html
