"""Where the time of one request goes, without the network or concurrency: the floor, the single check and the
bulk check called in this process through Django's WSGI handler against the bench database (`assent_bench`,
left by the last `python -m tests.benchmarks.run`), with the queries counted and a cProfile of each.

    python -m tests.benchmarks.inprocess [--only floor,check,bulk,write] [--n 2000] [--bulk-n 3] [--top 30]
    python -m tests.benchmarks.inprocess --only records,sends,read,floor-row [--record-n 300] [--read-n 1000]

records, sends, read and floor-row are the identity phases' requests (tests/benchmarks/identity_phases.py):
POST /api/v1/records of its mix, POST /api/v1/sends of 10,000 recipients, GET .../profile?purpose=order-updates
and the one-row floor, for the subjects of var/bench/profile-ids.txt (or random ones).

Run it after `python -m tests.benchmarks.run` (it reads var/bench/run.json for the database and its keys).
Writes it profiles stay in that database; the next run starts from a fresh copy."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import sys
import time
from collections import Counter
from typing import Any


def _setup() -> int:
    """Django against the last run's database, with its template's keys; returns the number of subjects."""
    from tests.benchmarks import environment as envmod

    run_file = envmod.VAR / "run.json"
    if not run_file.exists():
        sys.exit("no bench database yet: run `python -m tests.benchmarks.run` first")
    run = json.loads(run_file.read_text())
    keys = envmod.read_keys(run["template"])
    if keys is None:
        sys.exit(f"the keys of {run['template']} are gone: run `python -m tests.benchmarks.run` again")
    os.environ.update(envmod.django_env(envmod.RUN_DB, keys, settings="tests.benchmarks.settings"))
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    import django

    django.setup()
    return int(run["subjects"])


def _timers() -> Counter[str]:
    """Wrap the check path's steps with timers (module attribute patches, this process only)."""
    import importlib

    spans: Counter[str] = Counter()
    targets = [
        ("consent.clients", "client_authenticate", "auth: API key lookup (cached)"),
        ("consent.clients", "client_rate_limit_hit", "auth: rate limit (Redis INCR+EXPIRE round trip)"),
        ("consent.gates.check", "check_target", "check_target (catalogue snapshot, purpose/channel)"),
        ("consent.api.check", "consent_check_many", "consent_check_many (resolve + states + decide)"),
        ("consent.gates.check", "subject_resolve_many", "  subject_resolve_many (blind indexes + lookup)"),
        ("consent.gates.check", "subject_states_for_policy", "  subject_states_for_policy (flags, states, objections)"),
        ("consent.gates.check", "decide", "  decide (pure policy)"),
        ("consent.api.check", "parse_reference", "parse_reference (bulk: per item)"),
        ("consent.api.check", "decision_body", "decision_body (per result)"),
        ("django.db.backends.utils.CursorWrapper", "_execute_with_wrappers", "SQL: ORM execute (database incl.)"),
        ("django.db.backends.postgresql.base.DatabaseWrapper", "is_usable", "SQL: CONN_HEALTH_CHECKS 'SELECT 1'"),
        ("rest_framework.renderers.JSONRenderer", "render", "DRF JSONRenderer.render"),
        ("consent.api.consents", "consent_record", "write: consent_record (one durable transaction)"),
        ("consent.ledger.recording", "subject_for_write", "  write: locks + resolve (+ create)"),
        ("consent.ledger.recording", "data_key", "  write: unwrap the data key"),
        ("consent.ledger.recording", "ledger_append", "  write: ledger_append (head, hash, insert, head update)"),
        ("consent.ledger.chain", "event_hash", "    write: event_hash (RFC 8785 + HMAC)"),
        ("consent.ledger.recording", "state_project", "  write: state_project (state row select + update)"),
        ("consent.ledger.recording", "confirmation_request", "  write: confirmation_request (row + enqueue on commit)"),
        ("consent.services", "consent_validate", "  write: consent_validate"),
        ("django.db.backends.base.base.BaseDatabaseWrapper", "commit", "write: COMMIT (WAL flush)"),
        # The identity phases' paths.
        ("subjects.api.views", "normalise", "records: normalise (per identifier)"),
        ("subjects.api.views", "record_ingest", "records: record_ingest (one durable transaction)"),
        ("subjects.records", "advisory_lock", "  records: advisory_lock (one query per identifier + record)"),
        ("subjects.records", "lock_subjects", "  records: lock_subjects (SELECT ... FOR UPDATE)"),
        ("subjects.records", "subject_create_empty", "  records: subject_create_empty (new person)"),
        ("subjects.records", "data_key", "  records: data_key (unwrap)"),
        ("subjects.records", "_attach_identifiers", "  records: _attach_identifiers"),
        ("subjects.records", "encrypt_field", "  records: encrypt_field (AES-GCM)"),
        ("subjects.records", "profile_update", "  records: profile_update (contact)"),
        ("consent.api.profile", "profile_read_for_purpose", "read: profile_read_for_purpose"),
        ("consent.gates.profile_reads", "subject_get_survivor", "  read: subject_get_survivor"),
        ("consent.gates.profile_reads", "subject_states_for_policy", "  read: subject_states_for_policy"),
        ("consent.gates.profile_reads", "data_key", "  read: data_key (unwrap)"),
        ("consent.gates.profile_reads", "profile_read", "  read: profile_read (decrypt profile)"),
        ("consent.gates.profile_reads", "decrypt_field", "  read: decrypt_field (records)"),
        ("consent.api.sends", "send_target", "sends: send_target"),
        ("consent.api.sends", "parse_reference", "sends: parse_reference (per item)"),
        ("consent.api.sends", "send_create", "sends: send_create"),
        ("consent.gates.sends", "consent_check_many", "  sends: consent_check_many (resolve + states + decide)"),
        ("consent.gates.check", "policy_inputs", "    sends: policy_inputs"),
        ("consent.gates.sends", "unsubscribe_tokens", "  sends: unsubscribe_tokens"),
        ("django.db.models.query.QuerySet", "bulk_create", "sends/records: QuerySet.bulk_create"),
    ]
    for module_name, attr, label in targets:
        owner: Any
        if "." in module_name and module_name.rsplit(".", 1)[1][:1].isupper():
            mod, cls = module_name.rsplit(".", 1)
            owner = getattr(importlib.import_module(mod), cls)
        else:
            owner = importlib.import_module(module_name)
        original = getattr(owner, attr, None)
        if original is None:  # the product moved it: that timer is left out
            print(f"(no timer for {label}: {module_name}.{attr} is gone)", file=sys.stderr)
            continue

        def wrapped(*a: Any, __original: Any = original, __label: str = label, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return __original(*a, **k)
            finally:
                spans[__label] += time.perf_counter() - started

        setattr(owner, attr, wrapped)
    return spans


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000, help="requests per single-request profile")
    parser.add_argument("--bulk-n", type=int, default=3, help="bulk calls of 10,000 profiled")
    parser.add_argument("--write-n", type=int, default=300, help="consent writes profiled (they stay in the db)")
    parser.add_argument("--record-n", type=int, default=300, help="records ingested (they stay in the db)")
    parser.add_argument("--read-n", type=int, default=1000, help="profile reads (and floor-row requests) profiled")
    parser.add_argument("--sends-n", type=int, default=3, help="sends of 10,000 recipients profiled")
    parser.add_argument("--only", default="floor,check,bulk,write")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    args.subjects = _setup()

    from django.db import connection
    from django.test import Client

    from consent.clients import client_create

    scopes = ["consent:check", "consent:write", "records:write", "profile:read", "sends:create"]
    _, token = client_create(name=f"inprocess-{time.time()}", scopes=scopes, purposes=[])
    http = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    rng = random.Random(5)
    queries: Counter[str] = Counter()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries[sql.split(" WHERE ")[0][:110]] += 1
        return execute(sql, params, many, context)

    def single(path: str) -> None:
        body = json.dumps(
            {
                "subject": {"email": f"bench{rng.randrange(args.subjects)}@example.org"},
                "purpose": "newsletter",
                "channel": "email",
            }
        )
        response = http.post(path, body, content_type="application/json")
        assert response.status_code == 200, response.content

    def bulk() -> None:
        body = json.dumps(
            {
                "purpose": "newsletter",
                "channel": "email",
                "subjects": [{"email": f"bench{i}@example.org"} for i in rng.sample(range(args.subjects), 10_000)],
            }
        )
        response = http.post("/api/v1/consents/check-bulk", body, content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    spans = _timers()
    from tests.benchmarks.load import _body

    counter = [0]

    def write() -> None:
        body = _body("write", rng, args.subjects, f"inprocess-{int(time.time())}", counter)
        response = http.post("/api/v1/consents", body, content_type="application/json")
        assert response.status_code == 201, response.content[:300]

    from tests.benchmarks import identity_phases
    from tests.benchmarks.environment import VAR

    tag = f"ip{int(time.time()) % 100_000}"

    def record() -> None:
        counter[0] += 1
        body = json.dumps(identity_phases.record_body(rng, args.subjects, tag, 0, counter[0]))
        response = http.post("/api/v1/records", body, content_type="application/json")
        assert response.status_code in (200, 201), response.content[:300]

    def send() -> None:
        body = json.dumps(
            {
                "campaign": "inprocess",
                "purpose": identity_phases.SEND_PURPOSE,
                "channel": identity_phases.SEND_CHANNEL,
                "recipients": [{"email": f"bench{i}@example.org"} for i in rng.sample(range(args.subjects), 10_000)],
            }
        )
        response = http.post("/api/v1/sends", body, content_type="application/json")
        assert response.status_code == 201, response.content[:300]

    subject_ids: list[str] = []
    if {"read", "floor-row"} & set(args.only.split(",")):
        ids_file = VAR / "profile-ids.txt"
        if ids_file.exists():
            subject_ids = ids_file.read_text().split()
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT id FROM subjects_subject WHERE merged_into_id IS NULL LIMIT 10000")
                subject_ids = [str(r[0]) for r in cursor.fetchall()]

    def read(prefix: str, suffix: str) -> None:
        response = http.get(f"{prefix}{rng.choice(subject_ids)}{suffix}")
        assert response.status_code == 200, response.content[:300]

    for name, fn, n in (
        ("floor", lambda: single("/bench/floor"), args.n),
        ("check", lambda: single("/api/v1/consents/check"), args.n),
        ("bulk", bulk, args.bulk_n),
        ("write", write, args.write_n),
        ("records", record, args.record_n),
        ("sends", send, args.sends_n),
        ("read", lambda: read("/api/v1/subjects/", f"/profile?purpose={identity_phases.PROFILE_PURPOSE}"), args.read_n),
        ("floor-row", lambda: read("/bench/floor/row/", ""), args.read_n),
    ):
        if name not in args.only.split(","):
            continue
        for _ in range(min(n, 50)):
            fn()  # warm: catalogue snapshot, key cache, connection
        queries.clear()
        spans.clear()
        with connection.execute_wrapper(count):
            started, cpu_started = time.perf_counter(), time.process_time()
            for _ in range(n):
                fn()
            plain = (time.perf_counter() - started) / n
            own_cpu = (time.process_time() - cpu_started) / n
        print(
            f"\n=== {name}: wall time per request, by part (nested parts overlap; SQL = Django queries, "
            "from the ORM's execute to the rows, database time included)"
        )
        print(f"  {plain * 1000:8.3f} ms  whole request through Django's WSGI handler (test client)")
        print(f"  {own_cpu * 1000:8.3f} ms  of it this process's CPU (Python; the database's own CPU excluded)")
        for part, seconds in sorted(spans.items(), key=lambda kv: -kv[1]):
            print(f"  {seconds / n * 1000:8.3f} ms  {part}")
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(n):
            fn()
        profiler.disable()
        print(f"  {sum(queries.values()) / n:.2f} SQL queries per request (plus the health check's SELECT 1):")
        for sql, k in queries.most_common(12):
            print(f"  {k / n:6.2f} x  {sql}")
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        print("--- by own time")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
