"""record_ingest's pure decision (subjects.records.choose_target): which subject a record attaches to, from who
holds its identifiers, before anything is locked. No database."""

from __future__ import annotations

import uuid

import pytest

from subjects.records import Target, choose_target

A = uuid.UUID(int=1)
B = uuid.UUID(int=2)
OLD = uuid.UUID(int=3)  # the subject of the record this one replaces (same source and external id)
MERGE_KINDS = frozenset({"email", "customer_number"})
EMAIL = ("email", "kim@example.org")
OTHER_EMAIL = ("email", "new@example.org")
NUMBER = ("customer_number", "4711")
LANDLINE = ("phone", "+4930123456")


@pytest.mark.parametrize(
    ("case", "identifiers", "owners", "existing", "expected"),
    [
        ("nobody holds anything: a new subject", [EMAIL], {}, None, Target()),
        ("nobody holds anything, the record exists: its subject", [EMAIL], {}, OLD, Target(subject_id=OLD)),
        (
            "one holder of a person-bound identifier: merge of one",
            [EMAIL],
            {EMAIL: {A}},
            None,
            Target(merge_of=frozenset({A})),
        ),
        (
            "two holders of person-bound identifiers: they are one person",
            [EMAIL, NUMBER],
            {EMAIL: {A}, NUMBER: {B}},
            OLD,
            Target(merge_of=frozenset({A, B})),
        ),
        (
            "person-bound holders win over a shared identifier's",
            [EMAIL, LANDLINE],
            {EMAIL: {A}, LANDLINE: {B}},
            None,
            Target(merge_of=frozenset({A})),
        ),
        (
            "a shared identifier of exactly one subject: that one",
            [LANDLINE],
            {LANDLINE: {A}},
            OLD,
            Target(subject_id=A),
        ),
        (
            "a shared identifier of several subjects decides nothing",
            [LANDLINE],
            {LANDLINE: {A, B}},
            OLD,
            Target(subject_id=OLD),
        ),
        (
            "a new person-bound identifier beside the family's landline: another person at that number",
            [OTHER_EMAIL, LANDLINE],
            {LANDLINE: {A}},
            None,
            Target(),
        ),
    ],
)
def test_choose_target_attaches_the_record_as_the_identity_rules_say(
    case: str,
    identifiers: list[tuple[str, str]],
    owners: dict[tuple[str, str], set[uuid.UUID]],
    existing: uuid.UUID | None,
    expected: Target,
) -> None:
    chosen = choose_target(
        identifiers=identifiers, merge_kinds=MERGE_KINDS, owners=owners, existing_subject_id=existing
    )
    assert chosen == expected, case
