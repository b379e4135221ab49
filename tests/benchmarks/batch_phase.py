"""Batch ingestion's speed figure (issue 12 item 4), the `batch` phase of `python -m tests.benchmarks.run`:

    python -m tests.benchmarks.run --only batch --subjects 100000 [--batch-calls 3] [--batch-size 10000]

POST /api/v1/records/batch from BATCH_CLIENTS concurrent clients, each sending --batch-calls calls of --batch-size
records (API.md's maximum is 10,000). First, unmeasured, one call per client attaches a customer number `CN{i}` and
a phone to seeded subjects of its own (i % clients == client), so that later records can name them by either.
The measured calls are a day's mix (BATCH_MIX): purchases of seeded customers by e-mail, by phone (a shared kind
held by one person: attaches), by customer number; contact updates (a profile category); new people; re-sends of
the preparation's records with new data (updates); and a few merges (a new person of the same call named beside a
seeded customer's customer number: the two are one person, the new one is absorbed), merge proposals (one seeded
customer's e-mail beside another's customer number: two customer numbers, the DPO decides) and invalid items.

Printed: records/s over the wall time of all measured calls, server CPU per record (gunicorn workers + our
PostgreSQL backends), the COPY baseline of as many rows (identity_phases.copy_baseline: linked records sealed
under their subjects' keys, COPY'd in one transaction) and the ratio (target: >= 5,000 records/s and within 1:10
of the COPY). Afterwards every result is checked against the database: statuses as planned, every record on the
subject its answer named (or that subject's survivor), as many new subjects and merges as planned, and the
identifiers of new people and prepared customers found again by blind index on the subject the answer named."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from tests.benchmarks import cpu
from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import log
from tests.benchmarks.seed import email

BATCH_CLIENTS = 2
TARGET_RECORDS_PER_S = 5_000
TARGET_COPY_RATIO = 0.1
SOURCE = "pos"
# Cumulative shares of a measured call's items; the rest (after "update") are the rare kinds below.
BATCH_MIX = (
    ("by_email", 0.30),  # a purchase of a seeded customer by e-mail
    ("by_phone", 0.40),  # the same by the phone the preparation attached (shared kind, one owner)
    ("by_customer_number", 0.50),  # by customer number
    ("contact", 0.60),  # a contact update by e-mail (profile category)
    ("new_person", 0.88),  # someone unknown: a new subject with e-mail and phone
    ("update", 1.0),  # a re-send of a preparation record with new data
)
MERGES_PER_CALL = 5  # a new person of this call, then named beside a seeded customer's customer number
PROPOSALS_PER_CALL = 5  # one seeded customer's e-mail beside another's customer number
INVALID_PER_CALL = 20  # a broken e-mail, an unknown category


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-calls", type=int, default=3, help="batch phase: measured calls per client")
    parser.add_argument("--batch-size", type=int, default=10_000, help="batch phase: records per call")


def _phone(i: int) -> str:
    # Not the records phase's +49152 numbers: there a family's new subjects share them, here each has one owner.
    return f"+49155{i:08d}"


def _purchase(rng: random.Random) -> dict[str, Any]:
    items = [
        {"sku": f"SKU-{rng.randrange(100_000):05d}", "qty": rng.randint(1, 4), "cents": rng.randint(99, 19_999)}
        for _ in range(rng.randint(1, 3))
    ]
    return {"store": f"S{rng.randint(1, 400):03d}", "till": rng.randint(1, 12), "items": items}


def _record(ext: str, ids: dict[str, str], rng: random.Random, category: str = "purchases") -> dict[str, Any]:
    if category == "contact":
        born = f"19{rng.randint(50, 99)}-05-01"  # adults: nobody turns into a child
        data: dict[str, Any] = {"name": "Bench Person", "city": "Berlin", "birth_date": born}
    else:
        data = _purchase(rng)
    day = f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:15:00Z"
    return {"source": SOURCE, "external_id": ext, "category": category, "identifiers": ids, "occurred_at": day,
            "data": data}  # fmt: skip


class _Plan:
    """One client's calls and what each item should come to."""

    def __init__(self, run: str, client: int, subjects: int, size: int, calls: int) -> None:
        self.rng = random.Random(7919 * client + 1)
        self.run, self.client, self.size = run, client, size
        # Seeded customers of this client only: two clients never name the same person (the figures stay exact).
        self.mine = list(range(client, min(subjects, 2 * size * BATCH_CLIENTS), BATCH_CLIENTS))[:size]
        self.prepare = [
            _record(
                f"bp-{run}-{client}-{i}", {"email": email(i), "customer_number": f"CN{i}", "phone": _phone(i)}, self.rng
            )
            for i in self.mine
        ]
        self.prepared = dict(zip(self.mine, self.prepare, strict=True))
        self.expected: list[list[str]] = []  # per call, per item: created/updated/proposed/invalid
        self.new_people: list[tuple[int, int, str]] = []  # (call, index, e-mail)
        self.calls = [self._call(n) for n in range(calls)]

    def _call(self, n: int) -> list[dict[str, Any]]:
        rng, run, c = self.rng, self.run, self.client
        items: list[dict[str, Any]] = []
        expected: list[str] = []
        mix = dict(BATCH_MIX)
        new_in_call: list[str] = []
        rare = (["merge"] * MERGES_PER_CALL) + (["proposal"] * PROPOSALS_PER_CALL) + (["invalid"] * INVALID_PER_CALL)
        # The rare items sit in the second half, so that merges find new people of the same call before them.
        rare_at = dict(zip(rng.sample(range(self.size // 2, self.size), len(rare)), rare, strict=True))
        for k in range(self.size):
            ext = f"bb-{run}-{c}-{n}-{k}"
            i = rng.choice(self.mine)
            kind = rare_at.get(k)
            if kind == "merge" and new_in_call:
                j = rng.choice(self.mine)
                items.append(_record(ext, {"email": new_in_call.pop(), "customer_number": f"CN{j}"}, rng))
                expected.append("created")
                continue
            if kind == "proposal":
                j = rng.choice([m for m in self.mine[:50] if m != i])
                items.append(_record(ext, {"email": email(i), "customer_number": f"CN{j}"}, rng))
                expected.append("proposed")
                continue
            if kind == "invalid":
                broken = {"email": "not an address"} if k % 2 else {"email": email(i)}
                items.append(_record(ext, broken, rng, category="contact" if k % 2 else "nope"))
                expected.append("invalid")
                continue
            q = rng.random()
            if q < mix["by_email"]:
                items.append(_record(ext, {"email": email(i)}, rng))
            elif q < mix["by_phone"]:
                items.append(_record(ext, {"phone": _phone(i)}, rng))
            elif q < mix["by_customer_number"]:
                items.append(_record(ext, {"customer_number": f"CN{i}"}, rng))
            elif q < mix["contact"]:
                items.append(_record(ext, {"email": email(i)}, rng, category="contact"))
            elif q < mix["new_person"]:
                address = f"nb-{run}-{c}-{n}-{k}@example.org"
                phone = f"+49170{(c * 7_919 + n * 104_729 + k * 31) % 100_000_000:08d}"
                items.append(_record(ext, {"email": address, "phone": phone}, rng))
                new_in_call.append(address)
                self.new_people.append((n, k, address))
            else:
                again = dict(self.prepared[i])
                again["data"] = _purchase(rng)
                items.append(again)
                expected.append("updated")
                continue
            expected.append("created")
        self.expected.append(expected)
        return items


def _post(port: int, token: str, body: bytes) -> tuple[int, Any, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request(
        "POST",
        "/api/v1/records/batch",
        body=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    response = conn.getresponse()
    raw = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    if response.status != 200:  # a worker killed by gunicorn's timeout answers no JSON
        return response.status, raw[:400].decode(errors="replace"), elapsed
    return response.status, orjson.loads(raw), elapsed


def _parallel(port: int, token: str, bodies: list[list[bytes]]) -> tuple[list[list[Any]], float, list[float]]:
    """Each client sends its bodies one after the other; all clients at once. Returns the answers, the wall time
    and every call's time."""
    answers: list[list[Any]] = [[] for _ in bodies]
    times: list[float] = []
    failures: list[str] = []

    def client(c: int) -> None:
        for n, body in enumerate(bodies[c]):
            status, answer, elapsed = _post(port, token, body)
            if status != 200:
                failures.append(f"client {c} call {n}: {status} {str(answer)[:400]}")
                return
            answers[c].append(answer["results"])
            times.append(elapsed)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(len(bodies))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if failures:
        raise RuntimeError("batch: " + "; ".join(failures))
    return answers, wall, times


def phase_batch(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    from tests.benchmarks.identity_phases import _cpu_text, _other_share, copy_baseline  # one module's helpers

    run = f"{int(time.time()) % 100_000}"
    size, calls = args.batch_size, args.batch_calls
    plans = [_Plan(run, c, args.subjects, size, calls) for c in range(BATCH_CLIENTS)]
    since = _scalar("SELECT now()")
    _one_per_person(keys)
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="batch") as server:
        log(f"batch: preparing ({BATCH_CLIENTS} calls of {size:,}: customer numbers and phones for seeded subjects)")
        prepared, prep_wall, _ = _parallel(server.port, token, [[orjson.dumps({"records": p.prepare})] for p in plans])
        for [results] in prepared:
            bad = Counter(r["status"] for r in results) - Counter({"created": len(results)})
            if bad:
                raise RuntimeError(f"batch preparation: unexpected statuses {dict(bad)}")
        log(f"  prepared {sum(len(p.prepare) for p in plans):,} records in {prep_wall:.2f} s")
        bodies = [[orjson.dumps({"records": call}) for call in plan.calls] for plan in plans]
        pids = {server.process.pid, *server.worker_pids()}
        measured_start = _scalar("SELECT now()")
        before = cpu.snapshot()
        answers, wall, times = _parallel(server.port, token, bodies)
        used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
        measured_end = _scalar("SELECT now()")
    total = BATCH_CLIENTS * calls * size
    cpu_ms = {g: round(v / total * 1000, 4) for g, v in used.items()}
    rate = total / wall
    log(
        f"  batch: {total:,} records in {wall:.2f} s = {rate:,.0f} records/s ({BATCH_CLIENTS} clients x {calls} "
        f"calls of {size:,}; calls {min(times):.2f}-{max(times):.2f} s)"
    )
    log(f"         {_cpu_text(cpu_ms)} (per record)")
    checks = _verify(plans, answers, keys, since, measured_start, measured_end)
    baseline = copy_baseline(keys, rows=total)
    ratio = rate / baseline["copy_rows_per_s"]
    log(f"  ratio to COPY: {ratio:.3f} (1 : {1 / ratio:,.1f})")
    return {
        "records_per_s": round(rate, 1),
        "clients": BATCH_CLIENTS,
        "calls_per_client": calls,
        "records_per_call": size,
        "wall_seconds": round(wall, 2),
        "call_seconds": sorted(round(t, 2) for t in times),
        "cpu_ms_per_record": cpu_ms,
        "server_cpu_us_per_record": round((used["app"] + used["db"] + used["redis"]) / total * 1e6, 1),
        # What the machine's cores would carry at this CPU per record with nothing else running: the figure that
        # holds when other processes take the CPU (the rate above then falls with their share).
        "cpu_ceiling_records_per_s": round((os.cpu_count() or 1) * total / (used["app"] + used["db"] + used["redis"])),
        "other_share": round(_other_share(cpu_ms), 3),
        "workers": workers,
        "checks": checks,
        "copy": baseline,
        "ratio_to_copy": round(ratio, 4),
        "ratio_to_seal_and_copy": round(rate / baseline["seal_and_copy_rows_per_s"], 4),
        "target_records_per_s": TARGET_RECORDS_PER_S,
        "target_ratio": TARGET_COPY_RATIO,
    }


def _one_per_person(keys: dict[str, str]) -> None:
    """The bench catalogue with API.md's `one_per_person` (customer number, CRM id), loaded into the run database
    as an operator would: without it no merge is ever proposed. Only merges read it; the later phases are unmoved."""
    document = envmod.catalogue_document() | {"one_per_person": ["customer_number", "crm_id"]}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(document, handle)
    try:
        envmod.manage(envmod.django_env(envmod.RUN_DB, keys), "apply_catalog", handle.name)
    finally:
        Path(handle.name).unlink(missing_ok=True)


def _scalar(sql: str, params: list[Any] | None = None) -> Any:
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def _verify(
    plans: list[_Plan], answers: list[list[Any]], keys: dict[str, str], since: Any, start: Any, end: Any
) -> dict[str, Any]:
    """Every answer against the plan and the database; raises on the first disagreement."""
    from subjects import crypto  # pure: no Django

    statuses: Counter[str] = Counter()
    last_subject: dict[str, str] = {}  # record id -> the subject its last answer named
    created = new_subjects = 0
    for plan, calls in zip(plans, answers, strict=True):
        for n, results in enumerate(calls):
            got = [r["status"] for r in results]
            if got != plan.expected[n]:
                wrong = next(k for k, (a, b) in enumerate(zip(got, plan.expected[n], strict=True)) if a != b)
                raise RuntimeError(
                    f"batch: client {plan.client} call {n} item {wrong}: {results[wrong]} "
                    f"(expected {plan.expected[n][wrong]}; item {plan.calls[n][wrong]})"
                )
            statuses.update(got)
            for r in results:
                if r["record"]:
                    last_subject[r["record"]] = r["subject"]
            created += got.count("created") + got.count("proposed")
        new_subjects += len(plan.new_people)
    merges_planned = MERGES_PER_CALL * sum(len(p.calls) for p in plans)
    encoded = keys["ASSENT_BLIND_INDEX_KEY"]
    index = crypto.BlindIndex(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    probes: list[tuple[bytes, str | None]] = []  # (blind index, the subject an answer named, if one did)
    for plan, calls in zip(plans, answers, strict=True):
        for n, k, address in plan.new_people[:: max(1, len(plan.new_people) // 300)]:
            probes.append((index.lookup("email", address), calls[n][k]["subject"]))
        for i in plan.mine[:: max(1, len(plan.mine) // 300)]:
            probes.append((index.lookup("customer_number", f"CN{i}"), None))
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        misplaced = conn.execute(
            "SELECT count(*) FROM unnest(%s::uuid[], %s::uuid[]) AS a(record_id, subject_id) "
            "LEFT JOIN subjects_linkedrecord r ON r.id = a.record_id "
            "LEFT JOIN subjects_subject s ON s.id = a.subject_id "
            "WHERE r.subject_id IS DISTINCT FROM COALESCE(s.merged_into_id, s.id)",
            [list(last_subject), list(last_subject.values())],
        ).fetchone()[0]
        rows = conn.execute(
            "SELECT (SELECT count(*) FROM subjects_linkedrecord WHERE created_at >= %(s)s AND created_at <= %(e)s),"
            " (SELECT count(*) FROM subjects_subject WHERE created_at >= %(s)s AND created_at <= %(e)s),"
            " (SELECT count(*) FROM subjects_subject WHERE merged_at >= %(since)s),"
            " (SELECT count(*) FROM subjects_mergeproposal WHERE created_at >= %(since)s)",
            {"s": start, "e": end, "since": since},
        ).fetchone()
        # Found by blind index, on the subject the answer named (or the survivor it merged into since).
        lost = [
            bytes(d).hex()[:12]
            for (d,) in conn.execute(
                "SELECT p.d FROM unnest(%s::bytea[], %s::uuid[]) AS p(d, expected) "
                "LEFT JOIN subjects_subject e ON e.id = p.expected "
                "WHERE NOT EXISTS (SELECT 1 FROM subjects_identifier i JOIN subjects_subject s ON s.id = i.subject_id "
                "WHERE i.blind_index = p.d AND (p.expected IS NULL "
                "OR COALESCE(s.merged_into_id, s.id) = COALESCE(e.merged_into_id, e.id)))",
                [[d for d, _ in probes], [e for _, e in probes]],
            )
        ]
    records_created, subjects_created, merged, proposals = rows
    checks = {
        "statuses": dict(statuses),
        "records_created": records_created,
        "subjects_created": subjects_created,
        "merges": merged,
        "proposals_opened": proposals,
        "misplaced_records": misplaced,
        "identifiers_probed": len(probes),
        "identifiers_lost": len(lost),
    }
    log(f"  checked: {checks}")
    problems = []
    if misplaced:
        problems.append(f"{misplaced} records not on the subject (or survivor) their answer named")
    if records_created != created:
        problems.append(f"{records_created} records created in the window, {created} answers said created")
    if subjects_created != new_subjects:
        problems.append(f"{subjects_created} subjects created in the window, {new_subjects} new people sent")
    if merged != merges_planned:
        problems.append(f"{merged} merges, {merges_planned} planned")
    if lost:
        problems.append(f"{len(lost)} identifiers not found by blind index on their subject, e.g. {lost[:3]}")
    if problems:
        raise RuntimeError("batch: " + "; ".join(problems))
    return checks


def report_line(result: dict[str, Any]) -> str:
    c = result["copy"]
    ok = (
        "PASS"
        if result["records_per_s"] >= TARGET_RECORDS_PER_S and result["ratio_to_copy"] >= TARGET_COPY_RATIO
        else "FAIL"
    )
    return (
        f"batch        : {result['records_per_s']:,.0f} records/s via POST /records/batch ({result['clients']} "
        f"clients x {result['calls_per_client']} calls of {result['records_per_call']:,}), server CPU "
        f"{result['server_cpu_us_per_record']:.0f} us/record (ceiling on {os.cpu_count()} idle cores "
        f"{result['cpu_ceiling_records_per_s']:,}/s) | COPY of {c['rows']:,} rows "
        f"{c['copy_rows_per_s']:,.0f} rows/s | ratio {result['ratio_to_copy']:.3f} (1 : "
        f"{1 / result['ratio_to_copy']:,.1f}) | target >= {TARGET_RECORDS_PER_S:,}/s and >= 1:10 {ok}"
    )
