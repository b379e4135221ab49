"""What the fault tests share: holding a row or table lock from a connection of the test's own (so that a worker is
observably inside a part, waiting, when it is killed), seeing that it waits, the people and requests of every kind,
the leftovers a crash could leave, and the count of faults injected (printed, and appended to $FAULTS_REPORT)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from django.db import connection

from subjects.identity import parse_reference
from subjects.models import LinkedRecord, RightsRequest, RightsRequestPart, Subject
from subjects.rights.details import details_parse
from subjects.rights.requests import Actor, request_approve, request_open
from tests.integration.processes import test_database_url
from tests.rights.helpers import Person, records_bulk, seed_person

KINDS = ("access", "portability", "erasure", "rectification", "restriction", "objection")
DETAILS: dict[str, dict[str, Any]] = {
    "restriction": {"ground": "18(1)(a)"},
    "objection": {"scope": "direct_marketing"},
}
# The safety nets of the product's beat schedule that recover lost or abandoned work from the database.
SAFETY_NETS = ("rights-resume-stalled", "resend-unsent-confirmations")


def fault_rounds() -> int:
    """How often each fault is injected: 1 in `make test`, 5 in `make faults` (FAULT_ROUNDS)."""
    return max(1, int(os.environ.get("FAULT_ROUNDS", "1")))


class Hold:
    """A lock held by a connection of the test's own until `release()`: a row (`FOR UPDATE`) or a whole table. A
    worker that needs it waits inside its transaction, where the test can see it wait (`waiting()`)."""

    def __init__(self, sql: str, params: list[Any] | None = None) -> None:
        self.conn = psycopg.connect(test_database_url())
        self.conn.execute(sql, params or [])

    @classmethod
    def row(cls, model: type[Any], pk: Any) -> Hold:
        return cls(f"SELECT 1 FROM {model._meta.db_table} WHERE id = %s FOR UPDATE", [pk])

    @classmethod
    def table(cls, model: type[Any]) -> Hold:
        return cls(f"LOCK TABLE {model._meta.db_table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def waiting() -> int:
    """Backends of this test database that wait for a lock (only the worker runs besides the test)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()"
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------------------
# People and requests
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One request of one kind about one person, and what the test knows of it before it ran."""

    kind: str
    person: Person
    request_id: uuid.UUID
    records: int
    new_email: str = ""
    point: str = ""
    killed_parts: list[str] = field(default_factory=list)  # the parts that were running when the worker died
    before: dict[str, Any] = field(default_factory=dict)


def person_for(kind: str, tag: str, *, heavy: int) -> tuple[Person, int]:
    """A person with a record in each source, a profile and (for the kinds that go through every record) `heavy`
    more: web-shop orders, kept under a legal hold on erasure (re-encrypted under the retention key: slow)."""
    person = seed_person(tag, records_per_source=1)
    if heavy and kind in ("access", "portability", "erasure"):
        records_bulk(person.subject_id, "shop", "orders", heavy, f"{tag}-bulk")
    return person, LinkedRecord.objects.filter(subject_id=person.subject_id).count()


def open_case(kind: str, tag: str, *, heavy: int = 0, by: str = "fault-test") -> Case:
    """Open (and for erasure approve) a verified request through the services, as the API does."""
    person, records = person_for(kind, tag, heavy=heavy)
    new_email = f"new-{tag}@example.de"
    raw = {"identifiers": {"email": new_email}, "profile": {"name": f"New-{tag}"}} if kind == "rectification" else {}
    request = request_open(
        kind=kind,
        reference=parse_reference({"email": person.email}),
        channel="api",
        verified=True,
        details=details_parse(kind=kind, raw=DETAILS.get(kind, raw)),
        actor=Actor(f"client:{by}"),
    )
    if kind == "erasure":
        request_approve(request_id=request.pk, actor=Actor("staff:dpo"))
    return Case(kind, person, request.pk, records, new_email=new_email)


def settled(cases: list[Case]) -> bool:
    ids = [c.request_id for c in cases]
    return not RightsRequest.objects.filter(pk__in=ids).exclude(status__in=("completed", "failed")).exists()


def statuses(cases: list[Case]) -> dict[str, str]:
    return {c.kind: RightsRequest.objects.get(pk=c.request_id).status for c in cases}


def unfinished_parts() -> list[tuple[str, str, str]]:
    return list(
        RightsRequestPart.objects.exclude(status__in=("done", "skipped")).values_list("request__kind", "name", "status")
    )


def leftovers(var: Path) -> list[str]:
    """Files a crash could leave behind under ASSENT_VAR_DIR: half-written temporaries, part pieces."""
    found = [str(p.relative_to(var)) for p in var.rglob("*.tmp")]
    parts = var / "exports" / "parts"
    if parts.exists():
        found += [str(p.relative_to(var)) for p in parts.rglob("*") if p.is_file()]
    return sorted(found)


def subject_of(case: Case) -> Subject:
    return Subject.objects.get(pk=case.person.subject_id)


# ---------------------------------------------------------------------------------------------------------
# The figures
# ---------------------------------------------------------------------------------------------------------
def report_faults(test: str, **figures: Any) -> None:
    """Print the test's figures (faults injected, by kind and point) and append them to $FAULTS_REPORT."""
    line = json.dumps({"test": test, **figures}, sort_keys=True)
    print(f"FAULTS {line}")
    path = os.environ.get("FAULTS_REPORT")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
