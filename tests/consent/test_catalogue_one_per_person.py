"""The catalogue's `one_per_person`: identifier kinds of which one person holds at most one value (API.md)."""

from __future__ import annotations

from typing import Any

import pytest

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.snapshot import catalogue_forget
from consent.catalogue.validate import catalogue_validate
from consent.selectors import catalogue_snapshot
from tests.catalogue import standard_catalogue


def document(**extra: Any) -> dict[str, Any]:
    return standard_catalogue(**extra)


def test_one_per_person_is_optional_and_accepted_with_person_bound_kinds() -> None:
    assert catalogue_validate(document()) == []
    assert catalogue_validate(document(one_per_person=["customer_number", "crm_id"])) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("customer_number", "one_per_person: must be a list"),
        (["phone"], "one_per_person[0]: 'phone' is not a person-bound identifier kind"),
        (["customer_number", "passport"], "one_per_person[1]: 'passport' is not a person-bound identifier kind"),
        ([7], "one_per_person[0]: 7 is not a person-bound identifier kind"),
        (["crm_id", "crm_id"], "one_per_person[1]: 'crm_id' is listed twice"),
    ],
)
def test_it_rejects_a_wrong_one_per_person_with_its_place(value: object, expected: str) -> None:
    problems = catalogue_validate(document(one_per_person=value))
    assert any(p.startswith(expected) for p in problems), problems


def test_apply_stores_it_reports_the_change_and_the_snapshot_reads_it(db: None) -> None:
    catalogue_apply(document=document())
    catalogue_forget()
    assert catalogue_snapshot().one_per_person == frozenset()
    result = catalogue_apply(document=document(one_per_person=["customer_number"]))
    assert "one_per_person: (none) -> customer_number" in result.changes
    catalogue_forget()
    snapshot = catalogue_snapshot()
    assert snapshot.one_per_person == frozenset({"customer_number"})
    assert snapshot.merge_order == ("email", "customer_number", "loyalty_card", "crm_id")


def test_an_admin_edit_of_the_catalogue_keeps_one_per_person(db: None) -> None:
    from consent.catalogue.edit import catalogue_edit, edit_channel

    catalogue_apply(document=document(one_per_person=["customer_number"]))
    catalogue_edit(edit=edit_channel(key="sms", name="Text message"))
    catalogue_forget()
    assert catalogue_snapshot().one_per_person == frozenset({"customer_number"})
