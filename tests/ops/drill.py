"""The restore drill (issue 15): what an operator does after losing the database, rehearsed end to end.

1. seed the drill's own database: a few thousand subjects with an e-mail and consent chains (tests/benchmarks/
   seed.py, COPY), two linked records each (sealed as the ingest service seals them), and a few named people with
   an e-mail, a phone, a customer number, a profile, records in five sources (the real ingest service) and a
   consent through the API;
2. back it up with `pg_dump -Fc`;
3. erase three of the named people the way the product does: an erasure request opened and approved through the
   API, its parts run by a real Celery worker (the erasure log file gets its lines there);
4. restore the backup into a new database (`createdb`, `pg_restore`): the three are back, readable;
5. run `manage.py replay_erasures --since DATE` against the restored database, in a process of its own;
6. prove it: none of the three is readable (a copy of their ciphertext taken from the backup no longer opens: the
   data key is gone) or resolvable (their e-mail and phone find nobody through the blind index; the policy check
   denies; they are on the suppression list again), everyone else is untouched (row for row the same as in the
   backup, every identifier decrypts and resolves to its owner, every check answers as before), and every consent
   chain verifies.

It prints its timings (seed, dump, erase, restore, replay, verify) and sizes, and drops the databases it made.
`make drill` runs it with 3,000 subjects; tests/ops/test_restore_drill.py with a handful.

A module with a `python -m` entry, not a management command: it seeds through the test factories and the
benchmark seed (tests/), creates and drops databases, and moves its own process from one database to the other;
none of that belongs in the product an operator deploys. Run it as `python -m tests.ops.drill [--subjects N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.ops.standalone import (
    database_create,
    database_drop,
    database_prepare,
    database_size,
    database_url,
    django_switch_database,
    manage,
    run_environment,
)

NAMED = ("drill-ada", "drill-bo", "drill-cem", "drill-dana", "drill-eli", "drill-fay")
ERASED = NAMED[:3]  # the three erased; the other named people stand beside them
RECORDS_PER_SUBJECT = 2
SUBJECT_TABLES = {  # every table holding a subject's personal data or consent, with its subject column
    "subjects_subject": "id",
    "subjects_identifier": "subject_id",
    "subjects_linkedrecord": "subject_id",
    "consent_consentevent": "subject_id",
    "consent_consentstate": "subject_id",
    "consent_ledgerhead": "subject_id",
}


class DrillFailed(AssertionError):
    """A proof of the drill did not hold."""


def check(condition: object, what: str) -> None:
    if not condition:
        raise DrillFailed(what)


@dataclass
class Report:
    subjects: int = 0
    linked_records: int = 0
    consent_events: int = 0
    database_bytes: int = 0
    dump_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    verify_seconds: dict[str, float] = field(default_factory=dict)  # the three proofs of the verify phase
    replay_output: str = ""
    erased_unreadable: int = 0
    erased_unresolvable: int = 0
    erased_check_reasons: list[str] = field(default_factory=list)  # the policy check's answers for the three
    others_untouched: int = 0
    chains_verified: int = 0

    def timed(self, phase: str, started: float) -> None:
        self.seconds[phase] = round(time.perf_counter() - started, 2)
        print(f"  {phase:<8} {self.seconds[phase]:7.2f} s", flush=True)


# --- 1. seed ------------------------------------------------------------------------------------------------------
def seed_bulk(count: int) -> None:
    """`count` subjects bench0..: e-mail and consent chains by COPY (tests/benchmarks/seed.py), then two records
    each, sealed under each subject's data key as the ingest service seals them."""
    from datetime import timedelta

    from django.utils import timezone

    from subjects.columns import RECORD_DATA
    from subjects.keys import data_key, encrypt_field
    from subjects.models import LinkedRecord, Subject
    from tests.benchmarks.seed import seed

    if count:
        seed(dict(os.environ), count)
    now = timezone.now()
    rows: list[LinkedRecord] = []
    for subject in Subject.objects.order_by("pk").iterator(chunk_size=2000):
        key = data_key(subject)
        for n in range(RECORDS_PER_SUBJECT):
            row_id = uuid.uuid4()
            payload = json.dumps({"item": f"till receipt {n}", "amount": 10 + n})
            rows.append(
                LinkedRecord(
                    id=row_id,
                    subject_id=subject.pk,
                    source="pos",
                    external_id=f"receipt-{subject.pk}-{n}",
                    category="purchases",
                    data_enc=encrypt_field(subject, key, RECORD_DATA, payload, row_id=row_id),
                    occurred_at=now - timedelta(days=30 + n),
                    created_at=now,
                    updated_at=now,
                )
            )
        if len(rows) >= 5000:
            LinkedRecord.objects.bulk_create(rows)
            rows = []
    LinkedRecord.objects.bulk_create(rows)


def seed_named(api: Any) -> dict[str, uuid.UUID]:
    """The named people through the real services: records in five sources (tests/rights/helpers.py), and a
    newsletter grant by SMS through the API."""
    from tests.catalogue import NEWSLETTER_NOTICE
    from tests.rights.helpers import seed_person

    people = {}
    for tag in NAMED:
        person = seed_person(tag, records_per_source=1)
        grant = {
            "subject": {"email": person.email},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": NEWSLETTER_NOTICE,
            "source": "webshop",
        }
        answer = api.post("/api/v1/consents", grant)
        check(answer.status_code == 201, f"consent for {tag}: {answer.status_code} {answer.content!r}")
        people[tag] = person.subject_id
    return people


# --- what is compared and proved ------------------------------------------------------------------------------------
def fingerprint(excluding: list[uuid.UUID]) -> dict[str, str]:
    """Per table, a digest of every row of every subject but `excluding`: equal digests, untouched rows."""
    from django.db import connection

    digests = {}
    with connection.cursor() as cursor:
        for table, column in SUBJECT_TABLES.items():
            cursor.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t "
                f"WHERE NOT ({column} = ANY(%s::uuid[]))",
                [excluding],
            )
            count, digest = cursor.fetchone()
            digests[table] = f"{count}:{digest}"
    return digests


def sealed_identifiers(subject_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, int, bytes]]:
    """(subject, identifier row, ciphertext) of these subjects: what a copy of the backup would hold."""
    from subjects.models import Identifier

    rows = Identifier.objects.filter(subject_id__in=subject_ids).values_list("subject_id", "pk", "value_enc")
    return [(subject_id, pk, bytes(blob)) for subject_id, pk, blob in rows]


def readable(subject_id: uuid.UUID, row_id: int, blob: bytes) -> bool:
    """Whether this ciphertext of the subject's still opens in the current database."""
    from subjects import crypto
    from subjects.columns import IDENTIFIER_VALUE
    from subjects.keys import data_key, decrypt_field
    from subjects.models import Subject

    subject = Subject.objects.filter(pk=subject_id).first()
    if subject is None:
        return False
    try:
        decrypt_field(subject, data_key(subject), IDENTIFIER_VALUE, blob, row_id=row_id)
    except crypto.DecryptionError:
        return False
    return True


def checks(api: Any, subjects: list[dict[str, str]], channel: str) -> list[dict[str, Any]]:
    """The policy check for these references through the API (the bulk endpoint, 10,000 a call)."""
    results = []
    for start in range(0, len(subjects), 10_000):
        body = {"purpose": "newsletter", "channel": channel, "subjects": subjects[start : start + 10_000]}
        answer = api.post("/api/v1/consents/check-bulk", body)
        check(answer.status_code == 200, f"check-bulk: {answer.status_code} {answer.content!r}")
        results.extend(answer.json()["results"])
    return results


def prove_erased(api: Any, people: dict[str, uuid.UUID], copies: list[tuple[uuid.UUID, int, bytes]]) -> list[str]:
    """None of the three can be read or found; returns the policy check's reasons for them."""
    from subjects.identity import normalise
    from subjects.models import Identifier, LinkedRecord, Subject
    from subjects.selectors import identifier_owners
    from subjects.suppression import identifiers_suppressed
    from tests.rights.helpers import phone_of

    erased = [people[tag] for tag in ERASED]
    for subject_id, row_id, blob in copies:
        check(not readable(subject_id, row_id, blob), f"subject {subject_id}: a backed-up identifier still opens")
    check(not Subject.objects.filter(pk__in=erased, wrapped_key__isnull=False).exists(), "a data key survived")
    check(not Subject.objects.filter(pk__in=erased, profile_enc__isnull=False).exists(), "a profile survived")
    check(not Identifier.objects.filter(subject_id__in=erased).exists(), "an identifier row survived")
    check(not LinkedRecord.objects.filter(subject_id__in=erased).exists(), "a linked record survived")
    lookups = [("email", f"{tag}@example.de") for tag in ERASED] + [("phone", phone_of(tag)) for tag in ERASED]
    owners = identifier_owners(identifiers=[(kind, normalise(kind, value)) for kind, value in lookups])
    check(not any(owners), f"an erased person's e-mail or phone still resolves: {owners}")
    for kind, value in lookups:  # the replay put them back on the suppression list, which the backup lacked
        check(identifiers_suppressed(identifiers=[(kind, normalise(kind, value))]), f"{kind} of an erased person")
    answers = checks(api, [{"email": f"{tag}@example.de"} for tag in ERASED], "sms")
    check(not any(a["allowed"] for a in answers), f"the policy check allows an erased person: {answers}")
    check(all(a["subject"] is None for a in answers), f"the policy check names an erased person: {answers}")
    return [a["reason"] for a in answers]


def prove_others(api: Any, people: dict[str, uuid.UUID], bulk: int, before: dict[str, str]) -> int:
    """Everyone but the three: the same rows as in the backup; every identifier decrypts and resolves to its
    owner; the check answers what it answered before the erasure. Returns how many people that is."""
    from subjects.identity import normalise
    from subjects.keys import data_key
    from subjects.models import Subject
    from subjects.selectors import identifier_owners, subject_identifiers
    from tests.benchmarks.seed import email, expected_reason

    erased = [people[tag] for tag in ERASED]
    after = fingerprint(erased)
    changed = [table for table in before if before[table] != after[table]]
    check(not changed, f"rows of people who were not erased changed: {changed}")
    others = Subject.objects.exclude(pk__in=erased)
    values: list[tuple[str, str]] = []
    owners_expected: list[uuid.UUID] = []
    for subject in others.iterator(chunk_size=2000):
        held = subject_identifiers(subject=subject, key=data_key(subject))
        check(held, f"subject {subject.pk} has no readable identifier")
        values.extend(held)
        owners_expected.extend([subject.pk] * len(held))
    owners = identifier_owners(identifiers=[(kind, normalise(kind, value)) for kind, value in values])
    pairs = zip(values, owners, owners_expected, strict=True)
    wrong = [value for (_, value), found, owner in pairs if found != {owner}]
    check(not wrong, f"{len(wrong)} identifier(s) no longer resolve to their owner")
    answers = checks(api, [{"email": email(i)} for i in range(bulk)], "email")
    stale = [i for i, a in enumerate(answers) if a["reason"] != expected_reason(i)]
    check(not stale, f"{len(stale)} check answer(s) changed, e.g. subject bench{stale[:1]}")
    kept = [tag for tag in NAMED if tag not in ERASED]
    named = checks(api, [{"email": f"{tag}@example.de"} for tag in kept], "sms")
    check(all(a["allowed"] for a in named), f"a named bystander lost their consent: {named}")
    return others.count()


def prove_chains() -> int:
    from consent.ledger.verification import verification_run
    from consent.models import LedgerVerification

    run, result = verification_run(kind=LedgerVerification.Kind.FULL)
    check(run.problem_count == 0, f"ledger verification: {[str(p) for p in result.problems][:5]}")
    return int(run.subjects_checked)


# --- 3. erase -----------------------------------------------------------------------------------------------------
def erase(api: Any, emails: list[str], scratch: Path) -> None:
    """Erasure requests through the API, approved, their parts run by a real worker; waits for each to settle."""
    from tests.integration.processes import Worker
    from tests.rights.helpers import wait_settled

    mail_dir = scratch / "mail"
    mail_dir.mkdir()
    worker = Worker(mail_dir, scratch / "worker.log")
    worker.start()
    try:
        ids = []
        for address in emails:
            opened = api.post(
                "/api/v1/requests",
                {"kind": "erasure", "subject": {"email": address}, "channel": "portal", "verified": True},
            )
            check(opened.status_code == 202, f"erasure request: {opened.status_code} {opened.content!r}")
            ids.append(opened.json()["id"])
            approved = api.post(f"/api/v1/requests/{ids[-1]}/approve", {})
            check(approved.status_code == 202, f"approval: {approved.status_code} {approved.content!r}")
        for request_id in ids:
            settled = wait_settled(api, request_id, timeout=120)
            check(settled["status"] == "completed", f"erasure {request_id}: {settled['status']}\n{worker.log()}")
    finally:
        worker.stop()


# --- the drill ------------------------------------------------------------------------------------------------------
def pg(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def drill(subjects: int, *, replay: bool = True, keep: bool = False) -> Report:
    """Run the drill with `subjects` people in all (the named six among them); raises DrillFailed when a proof
    fails. `replay=False` leaves the replay out: the drill must then fail (tests/ops/test_restore_drill.py)."""
    source = f"assent_drill_{os.getpid()}"
    restored = f"{source}_restored"
    report = Report()
    scratch: Path | None = None
    database_create(source)
    try:
        scratch = run_environment(source, "drill")
        return _drill(source, restored, scratch, subjects, replay, report)
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"kept for inspection: databases {source}, {restored}; dump and logs in {scratch}")
        else:
            database_drop(source)
            database_drop(restored)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def _drill(source: str, restored: str, scratch: Path, subjects: int, replay: bool, report: Report) -> Report:
    from datetime import datetime

    from consent.models import ConsentEvent
    from subjects.models import LinkedRecord, Subject
    from subjects.rights.calendar import BERLIN
    from tests.api import Api
    from tests.catalogue import rights_catalogue
    from tests.factories import ApiClientFactory

    database_prepare(rights_catalogue())
    _, key = ApiClientFactory(name="drill")
    api = Api(key)
    bulk = max(subjects - len(NAMED), 0)
    print(f"restore drill: {bulk + len(NAMED):,} subjects, database {source}", flush=True)

    started = time.perf_counter()
    seed_bulk(bulk)
    people = seed_named(api)
    report.timed("seed", started)
    report.subjects = Subject.objects.count()
    report.linked_records = LinkedRecord.objects.count()
    report.consent_events = ConsentEvent.objects.count()
    report.database_bytes = database_size(source)
    erased = [people[tag] for tag in ERASED]
    before = fingerprint(erased)
    copies = sealed_identifiers(erased)
    check(copies and all(readable(*copy) for copy in copies), "the three are not readable before the drill")

    started = time.perf_counter()
    dump = scratch / "assent.dump"
    pg("pg_dump", "--format=custom", f"--file={dump}", f"--dbname={database_url(source)}")
    report.dump_bytes = dump.stat().st_size
    report.timed("dump", started)
    since = datetime.now(BERLIN).date().isoformat()  # the backup's day: every erasure after it is replayed

    started = time.perf_counter()
    erase(api, [f"{tag}@example.de" for tag in ERASED], scratch)
    report.timed("erase", started)

    started = time.perf_counter()
    database_create(restored)
    pg("pg_restore", "--no-owner", "--jobs=2", f"--dbname={database_url(restored)}", str(dump))
    report.timed("restore", started)
    django_switch_database(restored)
    check(all(readable(*copy) for copy in copies), "the restored backup lacks the three: the restore proved nothing")

    started = time.perf_counter()
    if replay:
        report.replay_output = manage("replay_erasures", "--since", since)
        check(report.replay_output.count(": re-applied") == len(ERASED), f"replay: {report.replay_output}")
    report.timed("replay", started)

    started = time.perf_counter()
    report.erased_check_reasons = prove_erased(api, people, copies)
    report.erased_unreadable = report.erased_unresolvable = len(ERASED)
    report.verify_seconds["erased"] = round(time.perf_counter() - started, 2)
    report.others_untouched = prove_others(api, people, bulk, before)
    report.verify_seconds["others"] = round(time.perf_counter() - started - sum(report.verify_seconds.values()), 2)
    report.chains_verified = prove_chains()
    report.verify_seconds["chains"] = round(time.perf_counter() - started - sum(report.verify_seconds.values()), 2)
    report.timed("verify", started)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ops.drill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=3000, help="people in all (default 3,000)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--no-replay", action="store_true", help="leave the replay out (the drill must fail)")
    parser.add_argument("--keep", action="store_true", help="keep the databases, the dump and the logs")
    options = parser.parse_args(argv)
    try:
        report = drill(max(options.subjects, len(NAMED)), replay=not options.no_replay, keep=options.keep)
    except DrillFailed as failure:
        print(f"DRILL FAILED: {failure}", file=sys.stderr, flush=True)
        if options.json:
            options.json.write_text(json.dumps({"failed": str(failure)}))
        return 1
    print(report.replay_output.rstrip())
    print(
        f"restore drill passed: {report.subjects:,} subjects, {report.linked_records:,} linked records, "
        f"{report.consent_events:,} consent events; database {report.database_bytes / 1e6:.1f} MB, "
        f"dump {report.dump_bytes / 1e6:.1f} MB\n"
        f"  3 erased: unreadable and unresolvable after restore + replay (check: {report.erased_check_reasons}); "
        f"{report.others_untouched:,} others "
        f"untouched; {report.chains_verified:,} consent chains verified\n"
        f"  seconds: "
        + ", ".join(f"{phase} {s:.2f}" for phase, s in report.seconds.items())
        + " (verify: "
        + ", ".join(f"{proof} {s:.2f}" for proof, s in report.verify_seconds.items())
        + ")",
        flush=True,
    )
    if options.json:
        options.json.write_text(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
