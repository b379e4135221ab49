"""The consent state the policy reads is inside the proof (issue 9, item 4): every state row names its event,
`verify_ledger` re-projects every chain and names each state row that differs, is missing or has no chain, the
ledger table refuses UPDATE and DELETE at the database, and verification runs are recorded and shown."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from consent.ledger.recording import ConsentCommand, ConsentRecorded
from consent.ledger.verification import verification_run
from consent.models import ConsentEvent, ConsentState, LedgerVerification
from consent.services import consent_record
from subjects.identity import parse_reference


def record(subject: dict[str, Any], action: str = "grant", channel: str = "sms") -> ConsentRecorded:
    return consent_record(
        command=ConsentCommand(
            reference=parse_reference(subject),
            purpose="newsletter",
            channel=channel,
            action=action,
            notice_version="2026-01" if action == "grant" else None,
            source="webshop",
        )
    )


def raw_sql(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def verify_fails() -> str:
    err = io.StringIO()
    with pytest.raises(CommandError, match="ledger verification failed"):
        call_command("verify_ledger", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


@pytest.fixture
def two_people(catalogue: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """Anna granted sms then withdrew it and granted push; Ben granted sms."""
    anna = record({"email": "anna@example.de"}).subject_id
    record({"id": str(anna)}, "withdraw")
    record({"id": str(anna)}, channel="push")
    ben = record({"email": "ben@example.de"}).subject_id
    return anna, ben


def test_every_state_row_names_the_event_it_was_projected_from(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, _ = two_people
    sms = ConsentState.objects.get(subject_id=anna, purpose="newsletter", channel="sms")
    assert sms.event is not None
    assert (sms.event.subject_id, sms.event.seq, sms.event.action) == (anna, sms.seq, "withdraw")
    call_command("verify_ledger", stdout=io.StringIO(), stderr=io.StringIO())


def test_it_names_a_state_row_flipped_to_granted_by_raw_sql(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, ben = two_people
    row = ConsentState.objects.get(subject_id=anna, purpose="newsletter", channel="sms")

    raw_sql("UPDATE consent_consentstate SET status = 'granted' WHERE id = %s", [row.pk])

    stderr = verify_fails()
    assert f"subject {anna}: state row {row.pk} (newsletter/sms): differs from its chain" in stderr
    assert "status stored 'granted', chain gives 'withdrawn'" in stderr
    assert str(ben) not in stderr


def test_it_names_a_missing_state_row(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, _ = two_people

    raw_sql("DELETE FROM consent_consentstate WHERE subject_id = %s AND channel = 'push'", [anna])

    stderr = verify_fails()
    assert f"subject {anna}: state row (newsletter/push) missing: the chain gives 'granted'" in stderr


def test_it_names_a_state_row_that_no_chain_projects(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    _, ben = two_people
    raw_sql(
        "INSERT INTO consent_consentstate (subject_id, purpose, channel, status, notice_version, since, confirmed,"
        " actor, suppressed, seq) VALUES (%s, 'newsletter', 'push', 'granted', '2026-01', now(), true, 'subject',"
        " false, 1)",
        [ben],
    )
    orphan = ConsentState.objects.get(subject_id=ben, channel="push")

    stderr = verify_fails()
    assert f"subject {ben}: state row {orphan.pk} (newsletter/push): has no chain" in stderr


def test_it_names_a_state_row_pointing_at_another_event(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, _ = two_people
    first = ConsentEvent.objects.get(subject_id=anna, seq=1)
    row = ConsentState.objects.get(subject_id=anna, channel="sms")

    raw_sql("UPDATE consent_consentstate SET event_id = %s WHERE id = %s", [first.pk, row.pk])

    assert f"state row {row.pk} (newsletter/sms): does not name the event at seq {row.seq}" in verify_fails()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_consentevent SET action = 'grant' WHERE subject_id = %s",
        "DELETE FROM consent_consentevent WHERE subject_id = %s",
    ],
)
def test_the_database_refuses_to_update_or_delete_ledger_events(
    two_people: tuple[uuid.UUID, uuid.UUID], sql: str
) -> None:
    anna, _ = two_people
    before = list(ConsentEvent.objects.filter(subject_id=anna).order_by("seq").values_list("seq", "action", "hash"))

    with pytest.raises(DatabaseError, match="the consent ledger is append-only"), transaction.atomic():
        raw_sql(sql, [anna])

    assert list(ConsentEvent.objects.filter(subject_id=anna).order_by("seq").values_list("seq", "action", "hash")) == (
        before
    )


def test_the_retention_path_opens_the_ledger_only_for_its_own_transaction(
    two_people: tuple[uuid.UUID, uuid.UUID],
) -> None:
    from consent.ledger.chain import ledger_retention_allow

    anna, _ = two_people
    with transaction.atomic():
        ledger_retention_allow()
        raw_sql("UPDATE consent_consentevent SET source = source WHERE subject_id = %s", [anna])
        # Tests run inside one outer transaction, so the switch is turned off by hand where a commit would end it.
        raw_sql("SELECT set_config('assent.ledger_retention', 'off', true)", [])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        raw_sql("DELETE FROM consent_consentevent WHERE subject_id = %s", [anna])


def test_incremental_verification_checks_only_subjects_with_new_events(
    two_people: tuple[uuid.UUID, uuid.UUID], settings: Any
) -> None:
    settings.ASSENT_LEDGER_VERIFY_OVERLAP_SECONDS = 0
    anna, ben = two_people
    first, _ = verification_run(kind=LedgerVerification.Kind.INCREMENTAL)
    assert (first.subjects_checked, first.problem_count) == (2, 0)  # no earlier run: everything

    raw_sql("UPDATE consent_consentstate SET status = 'withdrawn' WHERE subject_id = %s", [ben])
    record({"id": str(anna)}, "withdraw", channel="push")
    incremental, result = verification_run(kind=LedgerVerification.Kind.INCREMENTAL)

    assert incremental.subjects_checked == 1
    assert result.ok  # Ben has no new event: left to the daily full run
    full, result = verification_run(kind=LedgerVerification.Kind.FULL)
    assert full.subjects_checked == 2
    assert [p.subject_id for p in result.problems] == [ben]
