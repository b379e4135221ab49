"""POST /api/v1/records/batch (API.md): records applied in order, each on its own; an invalid item is reported and
the rest still apply; a merge that needs the DPO is `proposed`, exactly as the single endpoint's 202."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA
from subjects.keys import data_key, decrypt_field
from subjects.models import Identifier, LinkedRecord, MergeAudit, MergeProposal, Subject
from subjects.profile import profile_read
from subjects.records import RecordIngested, RecordInput
from subjects.records_batch import CHUNK, records_ingest_batch
from tests.api import Api
from tests.catalogue import MERGE_IDENTIFIERS
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


# ---------------------------------------------------------------------------------------------------------
# Applied in order, set-based (issue 12 item 4)
# ---------------------------------------------------------------------------------------------------------
def test_a_later_item_merges_two_subjects_created_earlier_in_the_same_batch(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de"}),
        record("R-2", {"email": "anna.work@example.de", "customer_number": "C-1"}),
        record("R-3", {"email": "anna@example.de", "customer_number": "C-1"}),
        record("R-4", {"email": "anna.work@example.de"}),
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created"] * 4
    first, second = results[0]["subject"], results[1]["subject"]
    assert first != second
    # The subject the earlier item created is the older one: it survives, as when the records come one by one.
    assert results[2]["subject"] == results[3]["subject"] == first
    assert Subject.objects.get(pk=second).merged_into_id == uuid.UUID(first)
    assert MergeAudit.objects.filter(survivor_id=first, absorbed_id=second).count() == 1
    assert set(LinkedRecord.objects.values_list("subject_id", flat=True)) == {uuid.UUID(first)}
    assert sorted(Identifier.objects.filter(subject_id=first).values_list("kind", flat=True)) == [
        "customer_number",
        "email",
        "email",
    ]


def test_an_update_of_a_record_created_earlier_in_the_batch_keeps_its_id_and_the_last_data(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de"}, data={"sku": "ROPE-60M"}),
        record("R-2", {"email": "ben@example.de"}),
        record("R-1", {"email": "anna@example.de", "loyalty_card": "L-1"}, data={"sku": "ROPE-70M"}),
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "created", "updated"]
    assert results[0]["record"] == results[2]["record"]
    row = LinkedRecord.objects.get(pk=results[0]["record"])
    subject = Subject.objects.get(pk=row.subject_id)
    data = json.loads(decrypt_field(subject, data_key(subject), RECORD_DATA, bytes(row.data_enc), row_id=row.pk))
    assert data == {"sku": "ROPE-70M"}
    assert row.updated_at > row.created_at
    assert sorted(Identifier.objects.filter(subject=subject).values_list("kind", flat=True)) == [
        "email",
        "loyalty_card",
    ]


def test_an_invalid_item_between_two_of_one_person_changes_nothing_around_it(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de"}),
        record("R-2", {"email": "anna@example.de", "phone": "not a number"}),
        record("R-3", {"email": "anna@example.de", "customer_number": "C-1"}),
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "invalid", "created"]
    assert "identifiers.phone" in results[1]["errors"]
    assert results[0]["subject"] == results[2]["subject"]
    assert LinkedRecord.objects.filter(external_id="R-2").count() == 0
    assert sorted(Identifier.objects.values_list("kind", flat=True)) == ["customer_number", "email"]


def test_contact_records_attach_addresses_without_making_an_existing_customer(api: Api) -> None:  # noqa: F811
    contact = {"category": "contact", "data": {"name": "Anna", "birth_date": "2015-03-01"}}
    response = batch(
        api,
        record("R-1", {"email": "anna@example.de", "phone": "+49 171 1234567"}, **contact),
        record("R-2", {"email": "ben@example.de"}, category="contact", data={}),
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "created"]
    assert not Identifier.objects.filter(purchase_at__isnull=False).exists()  # UWG §7(3): no purchase, no mark
    anna = Subject.objects.get(pk=results[0]["subject"])
    assert anna.is_child  # Art. 8: the birth date of the profile record decides
    assert profile_read(anna, data_key(anna)) == {"name": "Anna", "birth_date": "2015-03-01"}


def test_a_batch_reads_each_form_of_a_moment_as_the_single_endpoint_does(api: Api) -> None:  # noqa: F811
    forms = [
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:00:00.5+01:00",
        "2026-11-20 10:00:00Z",  # not the batch's plain form: read by DRF's field, as the single endpoint does
        "2026-11-20T10:00:00",  # no offset: the server's time zone, as the single endpoint does
    ]
    for n, moment in enumerate(forms):
        single = api.post("/api/v1/records", record(f"S-{n}", {"email": f"s{n}@example.de"}, occurred_at=moment))
        assert single.status_code == 201, single.content
    response = batch(
        api, *(record(f"B-{n}", {"email": f"b{n}@example.de"}, occurred_at=m) for n, m in enumerate(forms))
    )

    assert [r["status"] for r in response.json()["results"]] == ["created"] * len(forms)
    for n in range(len(forms)):
        one, other = (LinkedRecord.objects.get(external_id=f"{p}-{n}").occurred_at for p in ("S", "B"))
        assert one == other, forms[n]


def test_a_proposal_inside_a_batch_leaves_the_next_items_on_the_first_owner(api: Api) -> None:  # noqa: F811
    response = batch(
        api,
        record("R-A", {"email": "anna@example.de", "customer_number": "C-1"}),
        record("R-B", {"email": "ben@example.de", "customer_number": "C-2"}),
        record("R-X", {"email": "anna@example.de", "customer_number": "C-2"}),
        record("R-Y", {"email": "anna@example.de"}),
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "created", "proposed", "created"]
    anna, ben = results[0]["subject"], results[1]["subject"]
    assert results[2]["subject"] == results[3]["subject"] == anna
    proposal = MergeProposal.objects.get(pk=results[2]["merge_proposal"])
    assert {str(proposal.subject_a_id), str(proposal.subject_b_id)} == {anna, ben}
    assert not Subject.objects.filter(merged_into__isnull=False).exists()


def test_an_item_whose_subject_stays_erased_under_it_is_refused_alone(api: Api) -> None:  # noqa: F811
    # Given Anna's subject marked erased while her identifier and record are still in place (what a batch sees when
    # an erasure commits between its reads and its locks, frozen here so that no re-read helps)
    anna = batch(api, record("R-1", {"email": "anna@example.de"})).json()["results"][0]["subject"]
    Subject.objects.filter(pk=anna).update(erased_at=timezone.now())

    # When a batch names her between two other people
    response = batch(
        api,
        record("R-2", {"email": "ben@example.de"}),
        record("R-1", {"email": "anna@example.de"}, data={"sku": "TENT-2P"}),
        record("R-3", {"email": "cara@example.de"}),
    )

    # Then her item is refused as the single endpoint refuses it, and the others apply
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "invalid", "created"]
    assert results[1]["errors"] == {"record": ["the subjects of this record kept changing; send it again"]}
    assert LinkedRecord.objects.get(external_id="R-1").subject_id == uuid.UUID(anna)


def test_a_batch_of_new_people_takes_a_fixed_number_of_statements(api: Api) -> None:  # noqa: F811
    def people(prefix: str, count: int) -> list[RecordInput]:
        return [
            RecordInput(
                source="pos",
                external_id=f"{prefix}-{n}",
                category="purchases",
                identifiers=(("email", f"{prefix}-{n}@example.de"), ("phone", f"+4917{n:08d}")),
                occurred_at=timezone.now(),
                data={"sku": "ROPE-60M"},
                merge_kinds=frozenset(MERGE_IDENTIFIERS),
                purchase=True,
            )
            for n in range(count)
        ]

    with CaptureQueriesContext(connection) as small:
        records_ingest_batch(records=people("a", 10))
    with CaptureQueriesContext(connection) as large:
        outcomes = records_ingest_batch(records=people("b", 1_000))

    assert all(isinstance(o, RecordIngested) and o.created for o in outcomes)
    assert Subject.objects.count() == 1_010
    assert Identifier.objects.count() == 2_020
    # Per chunk of 500: locks, identifiers, records, subject locks, identifier ids, then one insert each of
    # subjects, identifiers and records. The count grows with chunks, never with items.
    chunks = -(-1_000 // CHUNK)
    assert len(small) <= 12, [q["sql"][:80] for q in small.captured_queries]
    assert len(large) <= 12 * chunks, [q["sql"][:80] for q in large.captured_queries]


# ---------------------------------------------------------------------------------------------------------
# The same records one by one or in a batch: the same people
# ---------------------------------------------------------------------------------------------------------
def scenario(run: str) -> list[Any]:
    """Records of one afternoon (`run` keeps two runs' people apart in one database): new people, a shared
    landline, updates, a profile, a merge proposal, a merge of two people the batch created, an invalid item."""
    phone = "+49 30 1234562" if run.startswith("b") else "+49 30 1234561"

    def r(ext: str, ids: dict[str, str], **kw: Any) -> dict[str, Any]:
        ids = {k: (f"{run}{v}" if k != "phone" else v) for k, v in ids.items()}
        return record(f"{run}{ext}", ids, **kw)

    contact = {"category": "contact", "data": {"name": "Anna", "birth_date": "1980-02-01"}}
    return [
        r("R1", {"email": "anna@example.de"}, **contact),
        r("R2", {"email": "ben@example.de", "customer_number": "C-2"}),
        r("R3", {"email": "cara@example.de", "phone": phone}),
        r("R4", {"phone": phone}),
        r("R1", {"email": "anna@example.de", "loyalty_card": "L-1"}, category="contact", data={"city": "Köln"}),
        r("R5", {"email": "anna@example.de", "customer_number": "C-1"}),
        r("R6", {"email": "dora@example.de", "phone": phone}),
        r("R7", {"phone": phone}),
        r("R8", {"email": "not an address"}),
        r("R9", {"email": "anna@example.de", "customer_number": "C-2"}),
        r("R10", {"email": "eve@example.de"}),
        r("R11", {"email": "eve@example.de", "loyalty_card": "L-9"}),
        r("R12", {"loyalty_card": "L-9", "email": "cara@example.de"}),
        r("R3", {"email": "cara@example.de"}, data={"sku": "TENT-2P"}),
        r("R13", {"email": "eve@example.de"}),
        r("R2", {"email": "ben@example.de"}, data={"sku": "ROPE-80M"}),
    ]


def people(run: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run left, with its own names taken out: per surviving subject its identifiers (kind, value,
    purchase mark), records (id, category, data) and profile; the merges and proposals between them; and per item
    its status and which item's subject it landed on."""
    plain = {"+49301234561": "PHONE", "+49301234562": "PHONE"}

    def name(value: str) -> str:
        return plain.get(value, value.replace(run, "", 1))

    subjects = Subject.objects.filter(
        pk__in=LinkedRecord.objects.filter(external_id__startswith=run).values("subject_id")
    )
    shapes = set()
    for subject in subjects:
        key = data_key(subject)
        identifiers = frozenset(
            (
                i.kind,
                name(decrypt_field(subject, key, IDENTIFIER_VALUE, bytes(i.value_enc), row_id=i.pk)),
                bool(i.purchase_at),
            )
            for i in Identifier.objects.filter(subject=subject)
        )
        records = frozenset(
            (name(r.external_id), r.category, decrypt_field(subject, key, RECORD_DATA, bytes(r.data_enc), row_id=r.pk))
            for r in LinkedRecord.objects.filter(subject=subject)
        )
        shapes.add((identifiers, records, json.dumps(profile_read(subject, key), sort_keys=True), subject.is_child))
    first_of: dict[str | None, int] = {}
    landed = [first_of.setdefault(r["subject"], i) if r["subject"] else None for i, r in enumerate(results)]
    return {
        "subjects": shapes,
        "merged": MergeAudit.objects.filter(survivor__in=subjects).count(),
        "proposals": sorted(
            (name(p.external_id), tuple(p.conflict_kinds))
            for p in MergeProposal.objects.filter(external_id__startswith=run)
        ),
        "statuses": [r["status"] for r in results],
        "landed": landed,
    }


def test_the_same_records_one_by_one_or_in_a_batch_give_the_same_people(api: Api) -> None:  # noqa: F811
    statuses = {201: "created", 200: "updated", 202: "proposed", 400: "invalid"}
    one_by_one = []
    for body in scenario("a-"):
        response = api.post("/api/v1/records", body)
        answer = response.json()
        one_by_one.append({"status": statuses[response.status_code], "subject": answer.get("subject")})

    response = batch(api, *scenario("b-"))
    assert response.status_code == 200, response.content

    single, batched = people("a-", one_by_one), people("b-", response.json()["results"])
    assert batched == single
    assert single["merged"] == 1  # the scenario did merge, and propose
    assert len(single["proposals"]) == 1
