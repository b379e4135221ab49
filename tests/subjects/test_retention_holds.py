"""The storage-limit purge (Art. 5(1)(e)) never deletes what a legal hold keeps or what a restriction (Art. 18)
freezes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from subjects.models import LinkedRecord, Subject
from subjects.ports import HoldingFacts
from subjects.records import records_purge
from subjects.tasks import purge_expired_records
from tests.api import Api


def record(email: str, external_id: str, category: str, days_old: int) -> dict[str, Any]:
    return {
        "source": "pos",
        "external_id": external_id,
        "category": category,
        "identifiers": {"email": email},
        "occurred_at": (timezone.now() - timedelta(days=days_old)).isoformat(),
        "data": {"n": external_id},
    }


def kept() -> list[str]:
    return sorted(LinkedRecord.objects.values_list("external_id", flat=True))


def test_the_purge_keeps_a_record_its_legal_hold_keeps_even_when_the_storage_limit_is_shorter(api: Api) -> None:
    # Given purchases of 400 days and of 11 years, and a holding (stored before the catalogue refused such a
    # limit) that deletes after 30 days but must keep purchases 8 years from the end of their year
    api.post("/api/v1/records", record("hold@example.org", "young", "purchases", 400))
    api.post("/api/v1/records", record("hold@example.org", "old", "purchases", 11 * 366))
    holding = HoldingFacts(delete_after_days=30, hold_years=8, hold_from="end_of_year", hold_law="§147 AO")
    # When the purge runs
    deleted = records_purge(holdings={("pos", "purchases"): holding})
    # Then only the record whose hold has ended is gone
    assert deleted == 1
    assert kept() == ["young"]


def test_the_purge_keeps_a_record_held_from_the_record_itself_until_the_hold_ends(api: Api) -> None:
    api.post("/api/v1/records", record("rec@example.org", "inside", "purchases", 2 * 365 - 5))
    api.post("/api/v1/records", record("rec@example.org", "after", "purchases", 2 * 365 + 5))
    holding = HoldingFacts(delete_after_days=10, hold_years=2, hold_from="record", hold_law="§257 HGB")
    assert records_purge(holdings={("pos", "purchases"): holding}) == 1
    assert kept() == ["inside"]


def test_the_purge_leaves_the_records_of_a_restricted_person_alone(api: Api) -> None:
    # Given two people with contact records past the pos source's 1095 days, one of them restricted (Art. 18)
    api.post("/api/v1/records", record("frozen@example.org", "frozen", "contact", 1100))
    api.post("/api/v1/records", record("free@example.org", "free", "contact", 1100))
    frozen = LinkedRecord.objects.get(external_id="frozen").subject_id
    Subject.objects.filter(pk=frozen).update(restricted_at=timezone.now())
    # When the scheduled purge runs
    deleted = purge_expired_records()
    # Then the restricted person's record stays
    assert deleted == 1
    assert kept() == ["frozen"]
