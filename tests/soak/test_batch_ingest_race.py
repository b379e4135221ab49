"""Batches and single records for the same people at the same moment (issue 12 item 4): a batch takes all its
identifier and record locks at once, in the same sorted order as every single writer, so nobody deadlocks, and
whoever comes second sees the first one's people. Whatever the order, each person ends as one subject holding
their e-mail and customer number and every record sent for them."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from subjects.keys import blind_index
from subjects.models import Identifier, LinkedRecord, Subject
from subjects.records import RecordInput, record_ingest
from subjects.records_batch import records_ingest_batch
from tests.catalogue import MERGE_IDENTIFIERS
from tests.soak.test_identifier_lock import in_thread

PEOPLE = 40


def item(external_id: str, identifiers: tuple[tuple[str, str], ...]) -> RecordInput:
    return RecordInput(
        source="pos",
        external_id=external_id,
        category="purchases",
        identifiers=identifiers,
        occurred_at=timezone.now(),
        data={"sku": "ROPE-60M"},
        merge_kinds=frozenset(MERGE_IDENTIFIERS),
    )


def email(round_: int, i: int) -> tuple[str, str]:
    return ("email", f"p{round_}-{i}@example.de")


def number(round_: int, i: int) -> tuple[str, str]:
    return ("customer_number", f"C-{round_}-{i}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_two_batches_and_single_records_for_the_same_people_make_one_subject_each(
    catalogue: dict[str, Any], round_: int
) -> None:
    rng = random.Random(round_)
    order = list(range(PEOPLE))
    # given three writers for the same people: a batch by e-mail, a batch (in reverse) by e-mail and customer
    # number, and single records by customer number in random order
    by_email = [item(f"A-{round_}-{i}", (email(round_, i),)) for i in order]
    both = [item(f"B-{round_}-{i}", (email(round_, i), number(round_, i))) for i in reversed(order)]
    singles = [item(f"C-{round_}-{i}", (number(round_, i),)) for i in rng.sample(order, PEOPLE)]
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(work: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            start.wait(30)
            work()

        return run

    threads = [
        in_thread(writer(lambda: records_ingest_batch(records=by_email)), errors),
        in_thread(writer(lambda: records_ingest_batch(records=both)), errors),
        in_thread(writer(lambda: [record_ingest(record=r) for r in singles]), errors),
    ]

    # when they run at the same moment
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    # then nobody failed (no deadlock), and each person is one subject with both identifiers and all three records
    assert not errors, errors
    index = blind_index()
    for i in order:
        holders = set(
            Identifier.objects.filter(
                blind_index__in=[index.lookup(*email(round_, i)), index.lookup(*number(round_, i))]
            ).values_list("subject_id", flat=True)
        )
        assert len(holders) == 1, (i, holders)
        [subject] = holders
        assert Subject.objects.get(pk=subject).merged_into_id is None
        records = set(LinkedRecord.objects.filter(subject_id=subject).values_list("external_id", flat=True))
        assert records == {f"A-{round_}-{i}", f"B-{round_}-{i}", f"C-{round_}-{i}"}
