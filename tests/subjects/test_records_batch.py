"""POST /api/v1/records/batch (API.md): records applied in order, each on its own; an invalid item is reported and
the rest still apply; a merge that needs the DPO is `proposed`, exactly as the single endpoint's 202."""

from __future__ import annotations

from typing import Any

from subjects.models import LinkedRecord, MergeProposal, Subject
from tests.api import Api
from tests.subjects.test_merge_proposals import api, record, two_people  # noqa: F401 (fixture)


def batch(api: Api, *records: Any) -> Any:  # noqa: F811
    return api.post("/api/v1/records/batch", {"records": list(records)})


def test_a_batch_creates_updates_and_reports_each_record_in_order(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de"}),
        record("R-1", {"email": "anna@example.de"}, data={"sku": "ROPE-70M"}),
        record("R-2", {"email": "ben@example.de"}),
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, "created"), (1, "updated"), (2, "created")]
    assert results[0]["record"] == results[1]["record"]
    assert results[0]["subject"] != results[2]["subject"]
    assert LinkedRecord.objects.count() == 2


def test_an_invalid_record_is_reported_and_the_rest_still_apply(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de"}),
        record("R-2", {"email": "not an address"}),
        record("R-3", {"email": "cara@example.de"}, source="nowhere"),
        {"external_id": "R-4"},
        "not even an object",
        record("R-5", {"email": "ben@example.de"}, occurred_at="2999-01-01T00:00:00Z"),
        record("R-6", {"email": "dora@example.de"}),
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "created",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "invalid",
        "created",
    ]
    assert "identifiers.email" in results[1]["errors"]
    assert "source" in results[2]["errors"]
    assert {"source", "category", "identifiers", "occurred_at"} <= set(results[3]["errors"])
    assert "occurred_at" in results[5]["errors"]
    assert all(r["record"] is None for r in results[1:6])
    assert Subject.objects.count() == 2


def test_a_record_that_would_merge_two_people_is_proposed_not_merged(api: Api) -> None:  # noqa: F811
    anna, ben = two_people(api)

    response = batch(api, record("R-X", {"email": "anna@example.de", "customer_number": "C-2"}))

    assert response.status_code == 200, response.content
    [result] = response.json()["results"]
    assert result["status"] == "proposed"
    proposal = MergeProposal.objects.get(pk=result["merge_proposal"])
    assert {str(s) for s in (proposal.subject_a_id, proposal.subject_b_id)} == {anna, ben}
    assert Subject.objects.filter(pk__in=[anna, ben], merged_into__isnull=True).count() == 2


def test_a_batch_that_is_not_a_list_of_records_is_a_problem(api: Api) -> None:  # noqa: F811
    for body in ({"records": []}, {"records": "R-1"}, {}, {"records": [{}] * 10_001}):
        response = api.post("/api/v1/records/batch", body)
        assert response.status_code == 400, body
        assert response["Content-Type"].startswith("application/problem+json")
