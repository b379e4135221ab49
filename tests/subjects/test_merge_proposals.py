"""Issue 9 item 2: one /records call naming one person's e-mail and another's customer number no longer merges them.
A merge that would give the survivor two values of a `one_per_person` kind becomes a proposal for the DPO."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from subjects.merge_proposals import (
    MergeProposalDecidedError,
    merge_proposal_approve,
    merge_proposal_reject,
)
from subjects.models import Identifier, LinkedRecord, MergeProposal, Subject
from tests.api import Api
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue

NOW = "2026-11-20T10:00:00Z"


@pytest.fixture
def api(db: None, make_client: Callable[..., str]) -> Api:
    apply_catalogue(standard_catalogue(one_per_person=["customer_number", "crm_id"]))
    return Api(make_client())


def record(external_id: str, identifiers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    return {
        "source": "pos",
        "external_id": external_id,
        "category": "purchases",
        "identifiers": identifiers,
        "occurred_at": NOW,
        "data": {"sku": "ROPE-60M"},
    } | overrides


def two_people(api: Api) -> tuple[str, str]:
    anna = api.post("/api/v1/records", record("R-A", {"email": "anna@example.de", "customer_number": "C-1"}))
    ben = api.post("/api/v1/records", record("R-B", {"email": "ben@example.de", "customer_number": "C-2"}))
    assert anna.status_code == ben.status_code == 201, (anna.content, ben.content)
    return anna.json()["subject"], ben.json()["subject"]


def attack(api: Api, external_id: str = "R-X") -> Any:
    """The reviewer's reproduction: Anna's e-mail beside Ben's customer number."""
    return api.post("/api/v1/records", record(external_id, {"email": "anna@example.de", "customer_number": "C-2"}))


def kinds_of(subject_id: str) -> list[str]:
    return sorted(Identifier.objects.filter(subject_id=subject_id).values_list("kind", flat=True))


def test_a_record_naming_two_people_with_two_customer_numbers_merges_nobody_and_answers_202(api: Api) -> None:
    anna, ben = two_people(api)
    response = attack(api)
    assert response.status_code == 202, response.content
    body = response.json()
    proposal = MergeProposal.objects.get(pk=body["merge_proposal"])
    # The record stays on the subject of its first identifier in merge_identifiers order (email).
    assert body["subject"] == anna
    assert LinkedRecord.objects.get(external_id="R-X").subject_id.hex == anna.replace("-", "")
    assert not Subject.objects.filter(status="merged").exists()
    # Ben's customer number is not attached to Anna, so neither person reaches the other's data.
    assert kinds_of(anna) == ["customer_number", "email"]
    assert kinds_of(ben) == ["customer_number", "email"]
    assert {str(proposal.subject_a_id), str(proposal.subject_b_id)} == {anna, ben}
    assert proposal.conflict_kinds == ["customer_number"]
    assert (proposal.status, proposal.survivor_id) == ("open", None)
    detail = api.get(f"/api/v1/merge-proposals/{proposal.pk}")
    assert detail.status_code == 200
    assert detail.json() == {"id": str(proposal.pk), "status": "open", "subjects": [anna, ben], "survivor": None}


def test_the_portal_shows_each_person_only_their_own_records_after_the_attack(api: Api) -> None:
    anna, ben = two_people(api)
    attack(api)
    assert set(LinkedRecord.objects.filter(subject_id=ben).values_list("external_id", flat=True)) == {"R-B"}
    assert set(LinkedRecord.objects.filter(subject_id=anna).values_list("external_id", flat=True)) == {"R-A", "R-X"}
    from tests.portal.conftest import sign_in

    for email, own in (("anna@example.de", anna), ("ben@example.de", ben)):
        client = sign_in(email)
        assert client.get("/portal/preferences").status_code == 200
        assert client.session["assent.portal"]["subject"] == own


def test_approving_the_proposal_merges_as_a_record_would_have(api: Api) -> None:
    anna, ben = two_people(api)
    proposal_id = attack(api).json()["merge_proposal"]
    approved = merge_proposal_approve(proposal_id=proposal_id, decided_by="dpo")
    assert str(approved.survivor_id) == anna
    absorbed = Subject.objects.get(pk=ben)
    assert (absorbed.status, str(absorbed.merged_into_id)) == ("merged", anna)
    assert kinds_of(anna) == ["customer_number", "customer_number", "email", "email"]
    assert LinkedRecord.objects.filter(subject_id=anna).count() == 3
    assert api.get(f"/api/v1/merge-proposals/{proposal_id}").json()["survivor"] == anna
    with pytest.raises(MergeProposalDecidedError):
        merge_proposal_reject(proposal_id=proposal_id, decided_by="dpo")


def test_a_rejected_proposal_is_not_proposed_again_by_the_same_identifiers(api: Api) -> None:
    two_people(api)
    proposal_id = attack(api).json()["merge_proposal"]
    merge_proposal_reject(proposal_id=proposal_id, decided_by="dpo")
    again = attack(api, external_id="R-Y")
    assert again.status_code == 202, again.content
    assert again.json()["merge_proposal"] == proposal_id
    assert MergeProposal.objects.count() == 1
    assert MergeProposal.objects.get().status == "rejected"
    assert not Subject.objects.filter(status="merged").exists()
    assert api.get(f"/api/v1/merge-proposals/{proposal_id}").json()["status"] == "rejected"


def test_a_merge_that_adds_no_second_customer_number_still_happens_at_once(api: Api) -> None:
    anna = api.post("/api/v1/records", record("R-A", {"email": "anna@example.de"})).json()["subject"]
    ben = api.post("/api/v1/records", record("R-B", {"customer_number": "C-2"})).json()["subject"]
    merged = api.post("/api/v1/records", record("R-X", {"email": "anna@example.de", "customer_number": "C-2"}))
    assert merged.status_code == 201, merged.content
    assert merged.json()["subject"] == anna
    assert "merge_proposal" not in merged.json()
    assert Subject.objects.get(pk=ben).status == "merged"
    assert not MergeProposal.objects.exists()


def test_an_unknown_proposal_is_a_problem_404(api: Api) -> None:
    response = api.get("/api/v1/merge-proposals/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["code"] == "merge_proposal_unknown"


def test_the_schema_describes_the_202_and_the_proposal_endpoint(api: Api) -> None:
    schema = Api(None).get("/api/schema/").content.decode()
    assert "/api/v1/merge-proposals/{proposal_id}" in schema
    assert "merge_proposal_get" in schema
    assert "'202':" in schema or '"202"' in schema
