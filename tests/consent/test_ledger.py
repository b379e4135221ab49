"""The consent ledger: each subject's events form an HMAC chain with a head, `verify_ledger` notices any edit,
deletion or truncation, and concurrent writers on one person never break the chain or the projected state."""

from __future__ import annotations

import hmac
import io
import random
import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
import rfc8785
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from consent.ledger.chain import GENESIS, canonical_fields, event_evidence
from consent.ledger.recording import ConsentCommand, ConsentRecorded
from consent.models import ConsentEvent, ConsentState, LedgerHead
from consent.services import consent_record
from subjects.identity import parse_reference
from subjects.keys import data_key
from subjects.models import Subject


def record(
    subject: dict[str, Any], action: str = "grant", channel: str = "sms", source: str = "webshop", **extra: Any
) -> ConsentRecorded:
    return consent_record(
        command=ConsentCommand(
            reference=parse_reference(subject),
            purpose="newsletter",
            channel=channel,
            action=action,
            notice_version="2026-01" if action == "grant" else None,
            source=source,
            **extra,
        )
    )


def history(subject_id: uuid.UUID) -> list[ConsentEvent]:
    return list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("seq"))


def verify() -> tuple[str, str]:
    """Run `verify_ledger`; (stdout, stderr). Raises CommandError when a chain is broken."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=err)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{err.getvalue()}") from None
    return out.getvalue(), err.getvalue()


def verify_fails() -> str:
    """Run `verify_ledger` expecting it to fail; what it wrote to stderr."""
    err = io.StringIO()
    with pytest.raises(CommandError, match="ledger verification failed"):
        call_command("verify_ledger", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def raw_sql(sql: str, params: list[Any]) -> int:
    """An edit by someone who can write the database and knows the retention switch (or drops the trigger): the
    append-only trigger stops everyone else, the hash chain catches this one."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('assent.ledger_retention', 'on', true)")
        cursor.execute(sql, params)
        rowcount = cursor.rowcount
        cursor.execute("SELECT set_config('assent.ledger_retention', 'off', true)")
        return rowcount


def detach_states(subject_id: uuid.UUID) -> None:
    """States name their event by a foreign key: whoever deletes events underneath them must unhook them first."""
    raw_sql("UPDATE consent_consentstate SET event_id = NULL WHERE subject_id = %s", [subject_id])


@pytest.fixture
def two_people(catalogue: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    """Anna with four events (the second with evidence), Ben with two."""
    anna = record({"email": "anna@example.de"}).subject_id
    record({"id": str(anna)}, "withdraw", evidence={"form": "account", "ip": "198.51.100.0"})
    record({"id": str(anna)}, channel="push")
    record({"id": str(anna)}, source="pos", occurred_at=timezone.now() - timedelta(days=1))
    ben = record({"email": "ben@example.de"}).subject_id
    record({"id": str(ben)}, "withdraw")
    return anna, ben


# ---------------------------------------------------------------------------------------------------------
# The chain
# ---------------------------------------------------------------------------------------------------------
def test_each_subjects_events_are_numbered_from_one_and_linked_by_hash(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, ben = two_people

    for subject_id, count in ((anna, 4), (ben, 2)):
        events = history(subject_id)
        assert [e.seq for e in events] == list(range(1, count + 1))
        assert events[0].prev_hash == GENESIS
        assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
        assert len({e.hash for e in events}) == count
        head = LedgerHead.objects.get(subject_id=subject_id)
        assert (head.last_seq, head.last_hash) == (events[-1].seq, events[-1].hash)


def test_each_hash_is_the_ledger_keys_hmac_over_the_previous_hash_and_the_canonical_event(
    two_people: tuple[uuid.UUID, uuid.UUID],
) -> None:
    anna, _ = two_people
    subject = Subject.objects.get(pk=anna)
    key = data_key(subject)

    for event in history(anna):
        evidence = event_evidence(event, key)
        message = event.prev_hash.encode() + rfc8785.dumps(canonical_fields(event, evidence))
        assert hmac.new(settings.ASSENT_LEDGER_KEY, message, "sha256").hexdigest() == event.hash
    assert event_evidence(history(anna)[1], key) == {"form": "account", "ip": "198.51.100.0"}
    assert b"198.51.100" not in bytes(history(anna)[1].evidence_enc)  # stored encrypted


def test_verify_ledger_passes_on_a_healthy_ledger(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    out, err = verify()

    assert "ledger verified" in out
    assert err == ""


# ---------------------------------------------------------------------------------------------------------
# Tampering
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("source", "'x'"),
        ("action", "'grant'"),
        ("notice_version", "'2025-01'"),
        ("actor", "'parental_guardian'"),
        ("occurred_at", "occurred_at - interval '1 second'"),
        ("recorded_at", "recorded_at + interval '1 microsecond'"),
    ],
)
def test_verify_ledger_names_the_subject_and_seq_of_an_edited_event(
    two_people: tuple[uuid.UUID, uuid.UUID], column: str, value: str
) -> None:
    # given a healthy ledger
    anna, ben = two_people

    # when someone edits Anna's second event in the database
    changed = raw_sql(f"UPDATE consent_consentevent SET {column} = {value} WHERE subject_id = %s AND seq = 2", [anna])
    assert changed == 1

    # then verification fails and names Anna's seq 2, and nobody else
    stderr = verify_fails()
    assert f"subject {anna}: event seq 2: hash does not match" in stderr
    assert str(ben) not in stderr
    assert "seq 3" not in stderr


def test_verify_ledger_notices_evidence_that_was_removed(
    two_people: tuple[uuid.UUID, uuid.UUID],
) -> None:
    anna, _ = two_people
    raw_sql(
        "UPDATE consent_consentevent SET evidence_enc = NULL WHERE subject_id = %s AND seq = 2",
        [anna],
    )

    stderr = verify_fails()

    assert f"subject {anna}: event seq 2" in stderr


def test_verify_ledger_notices_an_event_rewritten_with_a_recomputed_chain_but_without_the_key(
    two_people: tuple[uuid.UUID, uuid.UUID],
) -> None:
    # An attacker who can write the database but not read ASSENT_LEDGER_KEY cannot forge a valid link.
    anna, _ = two_people
    event = history(anna)[-1]
    assert event.action == "grant"
    event.action = "withdraw"
    fields = canonical_fields(event, {})
    forged = hmac.new(b"\x00" * 32, event.prev_hash.encode() + rfc8785.dumps(fields), "sha256").hexdigest()
    raw_sql("UPDATE consent_consentevent SET action = 'withdraw', hash = %s WHERE id = %s", [forged, event.id])
    raw_sql("UPDATE consent_ledgerhead SET last_hash = %s WHERE subject_id = %s", [forged, anna])

    stderr = verify_fails()

    assert f"subject {anna}: event seq {event.seq}: hash does not match" in stderr


def test_verify_ledger_names_the_subject_whose_last_event_was_deleted(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    anna, ben = two_people

    assert raw_sql("DELETE FROM consent_consentevent WHERE subject_id = %s AND seq = 4", [anna]) == 1

    stderr = verify_fails()
    assert f"subject {anna}: chain head" in stderr
    assert "shortened" in stderr
    assert str(ben) not in stderr


def test_verify_ledger_names_the_missing_seq_of_an_event_deleted_from_the_middle(
    two_people: tuple[uuid.UUID, uuid.UUID],
) -> None:
    anna, _ = two_people

    detach_states(anna)
    raw_sql("DELETE FROM consent_consentevent WHERE subject_id = %s AND seq = 2", [anna])

    stderr = verify_fails()
    assert f"subject {anna}: event seq 2: missing" in stderr
    assert f"subject {anna}: event seq 3: prev_hash does not match" in stderr


def test_verify_ledger_notices_a_whole_chain_deleted_below_its_head(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    _, ben = two_people

    detach_states(ben)
    raw_sql("DELETE FROM consent_consentevent WHERE subject_id = %s", [ben])

    stderr = verify_fails()
    assert f"subject {ben}: chain head: head says seq 2, chain ends at seq 0" in stderr


def test_verify_ledger_notices_events_whose_head_was_deleted(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    _, ben = two_people

    raw_sql("DELETE FROM consent_ledgerhead WHERE subject_id = %s", [ben])

    stderr = verify_fails()
    assert f"subject {ben}: chain head: events without a chain head" in stderr


def test_verify_ledger_notices_a_chain_deleted_together_with_its_head(two_people: tuple[uuid.UUID, uuid.UUID]) -> None:
    _, ben = two_people

    detach_states(ben)
    raw_sql("DELETE FROM consent_consentevent WHERE subject_id = %s", [ben])
    raw_sql("DELETE FROM consent_ledgerhead WHERE subject_id = %s", [ben])

    stderr = verify_fails()
    assert f"subject {ben}: chain head: consent state without a chain" in stderr


# ---------------------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------------------
WRITERS = 16
WRITES = 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_on_one_person_keep_the_chain_whole_and_the_state_on_the_newest_event(
    catalogue: dict[str, Any],
) -> None:
    # given 200 grants and withdrawals for one new person, each with a random moment in the last few hours
    # (some at the same second, so that ties are broken by seq), split over 16 writers with their own connections
    rng = random.Random(20260110)
    now = timezone.now().replace(microsecond=0)
    plan = [
        (rng.choice(["grant", "withdraw"]), now - timedelta(seconds=rng.randrange(1, 4 * 3600, 60)))
        for _ in range(WRITES)
    ]
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def writer(share: list[tuple[str, Any]]) -> None:
        try:
            start.wait(timeout=30)
            for action, occurred_at in share:
                record({"email": "anna@example.de"}, action, occurred_at=occurred_at)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    # when they all write at once (the first writers race to create the person)
    threads = [threading.Thread(target=writer, args=(plan[i::WRITERS],)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then every write landed on one person, in one unbroken chain numbered 1..200
    assert not failures, failures
    assert not any(thread.is_alive() for thread in threads)
    subject = Subject.objects.get()
    events = history(subject.id)
    assert [e.seq for e in events] == list(range(1, WRITES + 1))
    verify()
    # and the stored state is that of the newest event by (occurred_at, seq), not of the last one to arrive
    newest = max(events, key=lambda e: (e.occurred_at, e.seq))
    state = ConsentState.objects.get(subject=subject, purpose="newsletter", channel="sms")
    assert state.status == {"grant": "granted", "withdraw": "withdrawn"}[newest.action]
    assert (state.seq, state.since) == (newest.seq, newest.occurred_at)
    assert LedgerHead.objects.get(subject=subject).last_seq == WRITES
