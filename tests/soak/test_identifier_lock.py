"""The race the soak found: a till's record and a web shop's first consent for the same new address, at the same
moment, made two subjects holding one e-mail (the record locked the identifier under one advisory lock name, the
consent write under another). Both writers now queue on one name (subjects.locks.identifier_lock_names).

The two writers are held at the lock by a third transaction that holds it, and let go together once both wait
there: with two names they run side by side and both find nobody."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from consent.ledger.recording import ConsentCommand
from consent.services import consent_record
from subjects.identity import Reference
from subjects.keys import blind_index
from subjects.locks import lock_identifiers
from subjects.models import Identifier, Subject
from subjects.records import RecordInput, record_ingest
from tests.catalogue import MERGE_IDENTIFIERS, NEWSLETTER_NOTICE
from tests.integration.processes import wait_for

EMAIL = "new.person@example.de"


def waiting_for_advisory_locks() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()"
        )
        waiting: int = cursor.fetchone()[0]
        return waiting


def in_thread(work: Callable[[], Any], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)
        finally:
            connection.close()

    return threading.Thread(target=run)


@pytest.mark.django_db(transaction=True)
def test_a_record_and_a_first_consent_for_one_new_address_make_one_subject(catalogue: dict[str, Any]) -> None:
    record = RecordInput(
        source="pos",
        external_id="R-1",
        category="purchases",
        identifiers=(("email", EMAIL),),
        occurred_at=timezone.now(),
        data={"sku": "ROPE-60M"},
        merge_kinds=frozenset(MERGE_IDENTIFIERS),
    )
    command = ConsentCommand(
        reference=Reference(None, (("email", EMAIL),)),
        purpose="newsletter",
        action="grant",
        source="webshop",
        channel="sms",
        notice_version=NEWSLETTER_NOTICE,
    )
    errors: list[BaseException] = []
    writers = [
        in_thread(lambda: record_ingest(record=record), errors),
        in_thread(lambda: consent_record(command=command), errors),
    ]

    # given a transaction that holds the new address's lock
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with transaction.atomic():
            lock_identifiers([blind_index().lookup("email", EMAIL)])
            holder.set()
            release.wait(60)

    holding = in_thread(hold, errors)
    holding.start()
    assert holder.wait(30)

    # when the till and the web shop write for that address at the same moment
    for writer in writers:
        writer.start()
    wait_for(lambda: waiting_for_advisory_locks() == 2, what="both writers to wait for the address's lock")
    release.set()
    for thread in (holding, *writers):
        thread.join(60)

    # then one person holds it
    assert errors == []
    owners = Identifier.objects.filter(blind_index=blind_index().lookup("email", EMAIL)).values_list("subject_id")
    assert len(set(owners)) == 1
    assert Subject.objects.count() == 1
