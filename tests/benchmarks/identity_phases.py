"""The identity issue's speed figures (issue 3), as phases of `python -m tests.benchmarks.run`:

    python -m tests.benchmarks.run --only records,sends,profile [--duration S] [--copy-rows N] [--profile]

- records: POST /api/v1/records (identity resolution on the seeded subjects) at --connections clients for
  --duration seconds, all from the bench catalogue's source `pos` (categories `purchases` and `contact`, the
  latter a profile category). The mix (RECORD_MIX): purchases of seeded customers by e-mail, purchases that also
  carry their loyalty card and phone (attached on first sight), contact updates (profile, adult birth dates so
  that no subject turns into a child), purchases of new people, purchases of a new person at a seeded customer's
  phone (a shared identifier: a new subject, never a merge), and re-sends of an earlier record (an update).
  Beside it, in the same run: the raw insert rate of the same kind of rows with psycopg COPY into
  subjects_linkedrecord (data JSON sealed with subjects.crypto.seal under each subject's own data key, as the
  product does), committed, then deleted again.
- sends: POST /api/v1/sends, --bulk-calls calls of --bulk-size seeded recipients by e-mail for the marketing
  purpose `newsletter` on `email`; every decision is checked against seed.expected_reason. Target: the
  100,000-recipient campaign in under SENDS_TARGET_SECONDS in all.
- profile: GET /api/v1/subjects/{id}/profile?purpose=order-updates (a contract purpose: allowed for every
  active subject; declares `contact` and `purchases`) for PROFILE_IDS subject ids from the bench database (half
  of them subjects with linked records when the records phase ran first), against the floor
  `bench/floor/row/<id>` (a bare Django view reading one Subject row by pk), in alternating slices like the
  single phase.

Load: wrk with the Lua scripts below (subject ids from a file read in each thread's init), or the Python
client (BENCH_LOAD=python) when wrk is missing. The phases need an API client with `records:write`,
`profile:read` and `sends:create`, created here with manage.py."""

from __future__ import annotations

import argparse
import base64
import functools
import http.client
import json
import multiprocessing
import os
import random
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from subjects.columns import RECORD_DATA
from tests.benchmarks import batch_phase, cpu, load, profiling
from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import VAR, log
from tests.benchmarks.seed import email, expected_reason

PHASES = frozenset({"records", "batch", "sends", "profile"})
SOURCE = "pos"  # the bench catalogue's (tests/conftest.py) one source: categories contact (profile), purchases
SEND_PURPOSE, SEND_CHANNEL = "newsletter", "email"  # marketing, lists email
PROFILE_TARGET = 0.70  # the profile read's requests/s over its one-row floor's (issue 12)
PROFILE_PURPOSE = "order-updates"  # contract: allowed for every active subject; declares contact and purchases
PROFILE_IDS = 10_000
SENDS_TARGET_SECONDS = 5.0
SEND_CLIENTS = 2  # the send figure: 10 calls of 10,000 from 2 concurrent clients
COPY_ROWS = 100_000

# A share of requests re-send the thread's previous record (an update, 200); the others are new records
# (201), split by the cumulative shares below.
RESEND_SHARE = 0.10
RECORD_MIX = (
    ("existing_purchase", 0.50),  # a seeded customer's purchase, by e-mail
    ("existing_linked", 0.67),  # the same with the loyalty card and a phone (attached on first sight)
    ("contact", 0.80),  # a contact update of a seeded customer (profile category)
    ("new_person", 0.95),  # a purchase by someone unknown: a new subject
    ("family", 1.0),  # a new e-mail at a seeded customer's phone (shared kind): a new subject, never a merge
)


# ---------------------------------------------------------------------------------------------------------
# Load scripts
# ---------------------------------------------------------------------------------------------------------
_LUA_RECORDS = (
    load._LUA_COMMON
    + r"""
local fmt = string.format
local last = nil
local function stamp()
  return fmt("2026-%02d-%02dT%02d:%02d:%02dZ", math.random(1, 10), math.random(1, 28), math.random(0, 23),
             math.random(0, 59), math.random(0, 59))
end
local function purchase()
  local items = {}
  for k = 1, math.random(1, 3) do
    items[k] = fmt('{"sku":"SKU-%05d","qty":%d,"cents":%d}', math.random(0, 99999), math.random(1, 4),
                   math.random(99, 19999))
  end
  return fmt('{"store":"S%03d","till":%d,"items":[%s],"total_cents":%d}', math.random(1, 400), math.random(1, 12),
             table.concat(items, ","), math.random(99, 59999))
end
local function contact(i)
  return fmt('{"name":"Bench Person %d","city":"Berlin","birth_date":"19%02d-%02d-%02d"}', i, math.random(50, 99),
             math.random(1, 12), math.random(1, 28))
end
request = function()
  if last ~= nil and math.random() < __RESEND__ then
    return wrk.format(nil, "/api/v1/records", nil, last)
  end
  counter = counter + 1
  local i = math.random(0, N - 1)
  local q = math.random()
  local category, ids, data = "purchases", nil, nil
  if q < __EXISTING__ then
    ids = fmt('{"email":"bench%d@example.org"}', i)
  elseif q < __LINKED__ then
    ids = fmt('{"email":"bench%d@example.org","loyalty_card":"LC%d","phone":"+49152%08d"}', i, i, i)
  elseif q < __CONTACT__ then
    category = "contact"
    ids = fmt('{"email":"bench%d@example.org"}', i)
    data = contact(i)
  elseif q < __NEW__ then
    ids = fmt('{"email":"new-__RUN__-%d-%d@example.org","phone":"+49170%08d"}', tid, counter,
              (tid * 7919 + counter * 104729) % 100000000)
  else
    ids = fmt('{"email":"fam-__RUN__-%d-%d@example.org","phone":"+49152%08d"}', tid, counter, i)
  end
  data = data or purchase()
  last = fmt('{"source":"__SOURCE__","external_id":"rb-__RUN__-%d-%d","category":"%s","identifiers":%s,' ..
             '"occurred_at":"%s","data":%s}', tid, counter, category, ids, stamp(), data)
  return wrk.format(nil, "/api/v1/records", nil, last)
end
"""
)

# GETs of a path with a subject id from a file (one per line), read by each thread at init.
_LUA_IDS = (
    load._LUA_COMMON
    + r"""
local ids = {}
function init(args)
  math.randomseed(tonumber(args[1] or "1") * 7919 + tid * 104729)
  counter = 0
  for line in io.lines("__IDS__") do
    if #line > 0 then ids[#ids + 1] = line end
  end
end
request = function()
  return wrk.format("GET", "__PREFIX__" .. ids[math.random(1, #ids)] .. "__SUFFIX__", nil, nil)
end
"""
)


def _fill(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace(name, value)
    return text


def _records_script(token: str, subjects: int, run: str) -> Path:
    mix = dict(RECORD_MIX)
    text = _fill(
        _LUA_RECORDS,
        {
            "__TOKEN__": token,
            "__N__": str(subjects),
            "__RUN__": run,
            "__SOURCE__": SOURCE,
            "__RESEND__": str(RESEND_SHARE),
            "__EXISTING__": str(mix["existing_purchase"]),
            "__LINKED__": str(mix["existing_linked"]),
            "__CONTACT__": str(mix["contact"]),
            "__NEW__": str(mix["new_person"]),
        },
    )
    target = VAR / "records.lua"  # rewritten per load run (the run tag is inside)
    target.write_text(text)
    return target


def _ids_script(token: str, ids_file: Path, prefix: str, suffix: str, name: str) -> Path:
    text = _fill(
        _LUA_IDS,
        {"__TOKEN__": token, "__N__": "0", "__IDS__": str(ids_file), "__PREFIX__": prefix, "__SUFFIX__": suffix},
    )
    target = VAR / f"{name}.lua"
    target.write_text(text)
    return target


# Python equivalents (BENCH_LOAD=python or no wrk) --------------------------------------------------------
def _purchase(rng: random.Random) -> dict[str, Any]:
    items = [
        {"sku": f"SKU-{rng.randrange(100_000):05d}", "qty": rng.randint(1, 4), "cents": rng.randint(99, 19_999)}
        for _ in range(rng.randint(1, 3))
    ]
    return {"store": f"S{rng.randint(1, 400):03d}", "till": rng.randint(1, 12), "items": items, "total_cents": 0}


def _contact(rng: random.Random, i: int) -> dict[str, Any]:
    born = f"19{rng.randint(50, 99)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {"name": f"Bench Person {i}", "city": "Berlin", "birth_date": born}


def record_body(rng: random.Random, subjects: int, run: str, tid: int, counter: int) -> dict[str, Any]:
    """One new record of RECORD_MIX (the Lua script's twin)."""
    i = rng.randrange(subjects)
    q = rng.random()
    mix = dict(RECORD_MIX)
    category, data = "purchases", None
    if q < mix["existing_purchase"]:
        ids: dict[str, str] = {"email": email(i)}
    elif q < mix["existing_linked"]:
        ids = {"email": email(i), "loyalty_card": f"LC{i}", "phone": f"+49152{i:08d}"}
    elif q < mix["contact"]:
        category, ids, data = "contact", {"email": email(i)}, _contact(rng, i)
    elif q < mix["new_person"]:
        ids = {
            "email": f"new-{run}-{tid}-{counter}@example.org",
            "phone": f"+49170{(tid * 7919 + counter * 104729) % 100_000_000:08d}",
        }
    else:
        ids = {"email": f"fam-{run}-{tid}-{counter}@example.org", "phone": f"+49152{i:08d}"}
    occurred = datetime(2026, rng.randint(1, 10), rng.randint(1, 28), rng.randint(0, 23), tzinfo=UTC)
    return {
        "source": SOURCE,
        "external_id": f"rb-{run}-{tid}-{counter}",
        "category": category,
        "identifiers": ids,
        "occurred_at": occurred.isoformat(),
        "data": data if data is not None else _purchase(rng),
    }


def _py_worker(args: tuple[int, str, str, float, int, str, int, str, list[str]]) -> tuple[list[int], int]:
    port, kind, token, seconds, seed, run, subjects, prefix, ids = args
    latencies: list[int] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        counter, last = 0, b""
        mine: list[int] = []
        bad = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < deadline:
            if kind == "records":
                if not last or rng.random() >= RESEND_SHARE:
                    counter += 1
                    last = json.dumps(record_body(rng, subjects, run, seed * 1000 + n, counter)).encode()
                method, url, body = "POST", "/api/v1/records", last
            else:
                method, url, body = "GET", prefix.replace("{id}", rng.choice(ids)), b""
            t0 = time.perf_counter_ns()
            try:
                conn.request(method, url, body=body or None, headers=headers)
                response = conn.getresponse()
                response.read()
                bad += response.status >= 300
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            mine.append((time.perf_counter_ns() - t0) // 1000)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def _py_load(
    port: int, kind: str, *, token: str, connections: int, seconds: float, seed: int, run: str = "", **kw: Any
) -> load.LoadResult:
    processes = max(1, connections // 4)
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    spec = (kw.get("subjects", 0), kw.get("prefix", ""), kw.get("ids", []))
    with context.Pool(processes) as pool:
        parts = pool.map(
            _py_worker, [(port, kind, token, seconds, seed * 100 + p, f"{run}p{p}", *spec) for p in range(processes)]
        )
    elapsed = min(time.perf_counter() - started, seconds + 0.5)
    latencies = sorted(x for part in parts for x in part[0])
    if not latencies:
        raise RuntimeError("the Python load client made no request")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] / 1000

    return load.LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        errors=sum(part[1] for part in parts),
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        mean_ms=sum(latencies) / len(latencies) / 1000,
        max_ms=latencies[-1] / 1000,
        tool="python",
    )


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
def _request(
    port: int, method: str, path: str, token: str, body: Any = None, timeout: float = 120
) -> tuple[int, Any, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}"} | ({"Content-Type": "application/json"} if payload else {})
    started = time.perf_counter()
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return response.status, json.loads(raw) if raw else None, elapsed


def _measured(server: envmod.Server, run: Callable[[], load.LoadResult]) -> load.LoadResult:
    """A load run with the CPU it cost per request, by group (see cpu.py), as run._load does."""
    pids = {server.process.pid, *server.worker_pids()}
    before = cpu.snapshot()
    result = run()
    used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
    done = max(1, result.requests)
    result.cpu_ms = {group: round(value / done * 1000, 3) for group, value in used.items()}
    result.cpu_busy = round(used["machine"] / ((os.cpu_count() or 1) * result.seconds), 3)
    return result


def _other_share(cpu_ms: dict[str, float]) -> float:
    return cpu_ms.get("other", 0.0) / max(cpu_ms.get("machine", 0.0), 1e-9)


def _cpu_text(c: dict[str, float]) -> str:
    return (
        f"CPU/request app {c['app']:.2f} + db {c['db']:.2f} + redis {c['redis']:.2f} ms (client {c['client']:.2f},"
        f" other processes {c['other']:.2f} ms = {100 * _other_share(c):.0f}% of the machine's CPU)"
    )


def _profile_run(server: envmod.Server, args: argparse.Namespace, name: str, drive: Callable[[float], Any]) -> str:
    """A py-spy profile of the workers while `drive(seconds)` loads them (not counted in the figures)."""
    seconds = max(4.0, args.duration / 2)
    spy, out = profiling.start(server.process.pid, seconds, name)
    drive(seconds)
    spy.wait(timeout=60)
    summary = profiling.summarise(out, top=30)
    log(f"{name} profile (py-spy, {out}):\n{summary}")
    return summary


def _scalar(sql: str, params: list[Any] | None = None) -> Any:
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        row = conn.execute(sql, params or []).fetchone()
    return row[0] if row else None


def create_client(keys: dict[str, str]) -> str:
    env = envmod.django_env(envmod.RUN_DB, keys)
    scopes = ("records:write", "profile:read", "sends:create")
    out = envmod.manage(
        env, "create_api_client", f"bench-identity-{int(time.time())}", *[a for s in scopes for a in ("--scope", s)]
    )
    return out.strip().splitlines()[-1].strip()


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------
def phase_records(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    since = _scalar("SELECT now()")
    records_before = _scalar("SELECT count(*) FROM subjects_linkedrecord")
    run = f"{int(time.time()) % 100_000}"

    def go(server: envmod.Server, seconds: float, seed: int) -> load.LoadResult:
        tag = f"{run}s{seed}"  # external ids and new people's addresses unique per load run
        if load.wrk_path():
            script = _records_script(token, args.subjects, tag)
            return load.run_wrk_script(
                script, server.base + "/api/v1/records", connections=args.connections, seconds=seconds, seed=seed
            )
        return _py_load(
            server.port,
            "records",
            token=token,
            connections=args.connections,
            seconds=seconds,
            seed=seed,
            run=tag,
            subjects=args.subjects,
        )

    profile = None
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="records") as server:
        _sanity_records(server.port, token, run)
        log(
            f"records: warm-up {args.warmup:.0f} s, then {args.duration:.0f} s at {args.connections} connections "
            f"(gunicorn -w {workers}, {'wrk' if load.wrk_path() else 'python client'})"
        )
        go(server, args.warmup, 1)
        measured_start = _scalar("SELECT now()")
        result = _measured(server, functools.partial(go, server, args.duration, 2))
        measured_end = _scalar("SELECT now()")
        if args.profile and profiling.py_spy():
            profile = _profile_run(server, args, "records", lambda s: go(server, s, 3))
    ok = result.requests - result.errors
    rate = ok / result.seconds
    log(
        f"  records: {rate:,.0f} records/s (2xx) p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms, "
        f"{result.errors} errors of {result.requests:,}"
    )
    log(f"           {_cpu_text(result.cpu_ms)}")
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM subjects_linkedrecord WHERE created_at >= %(s)s AND created_at <= %(e)s),"
            " (SELECT count(*) FROM subjects_subject WHERE created_at >= %(s)s AND created_at <= %(e)s),"
            " (SELECT count(*) FROM subjects_subject WHERE merged_at >= %(since)s),"
            " (SELECT count(*) FROM subjects_identifier WHERE created_at >= %(s)s AND created_at <= %(e)s),"
            " (SELECT count(*) FROM subjects_linkedrecord GROUP BY source, external_id ORDER BY 1 DESC LIMIT 1)",
            {"s": measured_start, "e": measured_end, "since": since},
        ).fetchone()
    assert row is not None
    created_in_window, subjects_new, merges, identifiers_new, most_copies = row
    log(
        f"  db, during the measured run: {created_in_window:,} records created (the other 2xx were updates; "
        f"requests in flight at the start and stop fall on either side), {subjects_new:,} new subjects, "
        f"{identifiers_new:,} identifiers attached; {merges} merges in the phase (expected 0), at most "
        f"{most_copies} row per (source, external_id)"
    )
    baseline = copy_baseline(keys, rows=args.copy_rows)
    return {
        "records_per_s": round(rate, 1),
        "p50_ms": round(result.p50_ms, 2),
        "p99_ms": round(result.p99_ms, 2),
        "requests": result.requests,
        "errors": result.errors,
        "seconds": round(result.seconds, 2),
        "connections": args.connections,
        "workers": workers,
        "tool": result.tool,
        "mix": {"resend": RESEND_SHARE, "new_records_cumulative": dict(RECORD_MIX)},
        "cpu_ms_per_record": result.cpu_ms,
        "machine_busy": result.cpu_busy,
        "db": {
            "records_before": records_before,
            "records_created_in_window": created_in_window,
            "subjects_created": subjects_new,
            "identifiers_attached": identifiers_new,
            "merges": merges,
            "max_rows_per_external_id": most_copies,
        },
        "copy": baseline,
        "ratio_to_copy": round(rate / baseline["copy_rows_per_s"], 5),
        "ratio_to_seal_and_copy": round(rate / baseline["seal_and_copy_rows_per_s"], 5),
        "profile": profile,
    }


def _sanity_records(port: int, token: str, run: str) -> None:
    """A new record (201), its re-send (200, same record and subject), a record for seeded subject 0 (its
    subject), and a source the catalogue lacks (400), before the load."""
    rng = random.Random(3)
    body = record_body(rng, 1, f"{run}sanity", 0, 1)
    body["identifiers"] = {"email": email(0)}
    first = _request(port, "POST", "/api/v1/records", token, body)
    again = _request(port, "POST", "/api/v1/records", token, body)
    if first[0] != 201 or again[0] != 200 or first[1] != again[1]:
        raise RuntimeError(f"records sanity: {first[0]} {first[1]} then {again[0]} {again[1]}")
    seeded = _scalar(
        "SELECT subject_id FROM subjects_linkedrecord WHERE source = %s AND external_id = %s",
        [SOURCE, body["external_id"]],
    )
    if str(seeded) != first[1]["subject"]:
        raise RuntimeError(f"records sanity: record attached to {first[1]['subject']}, db says {seeded}")
    bad = _request(port, "POST", "/api/v1/records", token, body | {"source": "nowhere"})
    if bad[0] != 400:
        raise RuntimeError(f"records sanity: an unknown source answered {bad[0]} {bad[1]}")


def _master_keyring(keys: dict[str, str]) -> Any:
    from subjects import crypto  # pure: no Django

    ring = []
    for entry in keys["ASSENT_MASTER_KEYS"].split(","):
        kid, _, encoded = entry.strip().rpartition(":")
        ring.append((kid, base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))))
    return crypto.Keyring(tuple(ring))


def copy_baseline(keys: dict[str, str], *, rows: int) -> dict[str, Any]:
    """The raw insert rate of the same kind of rows: `rows` linked records for as many random seeded subjects,
    data JSON (the record mix's payloads) sealed under each subject's own data key, COPY'd into
    subjects_linkedrecord in one transaction (all its indexes and the subject foreign key in place), committed,
    then deleted again. Sealing (this process, one core) and COPY + commit are timed apart."""
    from subjects import crypto

    ring = _master_keyring(keys)
    run = uuid.uuid4().hex[:8]
    log(f"records: COPY baseline of {rows:,} rows into subjects_linkedrecord")
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        subjects = conn.execute(
            "SELECT id, key_kid, wrapped_key FROM subjects_subject WHERE merged_into_id IS NULL "
            "AND wrapped_key IS NOT NULL ORDER BY random() LIMIT %s",
            [rows],
        ).fetchall()
    rng = random.Random(5)
    now = datetime.now(UTC).isoformat()
    mix = dict(RECORD_MIX)
    started = time.perf_counter()
    lines = []
    for n, (sid, kid, wrapped) in enumerate(subjects):
        key = ring.unwrap(kid, bytes(wrapped), sid)
        contact = mix["existing_linked"] <= rng.random() < mix["contact"]
        data = _contact(rng, n) if contact else _purchase(rng)
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        record_id = uuid.uuid4()
        sealed = crypto.seal_field(key, payload, sid, RECORD_DATA, record_id)
        occurred = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400 * 300))
        lines.append(
            f"{record_id}\t{sid}\t{SOURCE}\tcopy-{run}-{n}\t{'contact' if contact else 'purchases'}\t"
            f"\\\\x{sealed.hex()}\t{occurred.isoformat()}\t{now}\t{now}\n"
        )
    sealed_seconds = time.perf_counter() - started
    data_text = "".join(lines)
    columns = "id, subject_id, source, external_id, category, data_enc, occurred_at, created_at, updated_at"
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        conn.autocommit = False
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY subjects_linkedrecord ({columns}) FROM STDIN") as copy:
            step = 1 << 20
            for offset in range(0, len(data_text), step):
                copy.write(data_text[offset : offset + step])
        conn.commit()
        copy_seconds = time.perf_counter() - started
        conn.autocommit = True
        started = time.perf_counter()
        deleted = conn.execute(
            "DELETE FROM subjects_linkedrecord WHERE source = %s AND external_id LIKE %s", [SOURCE, f"copy-{run}-%"]
        ).rowcount
        delete_seconds = time.perf_counter() - started
    if deleted != len(subjects):
        raise RuntimeError(f"COPY baseline: {len(subjects)} rows copied, {deleted} deleted")
    result = {
        "rows": len(subjects),
        "seal_seconds": round(sealed_seconds, 2),
        "copy_seconds": round(copy_seconds, 2),
        "delete_seconds": round(delete_seconds, 2),
        "copy_rows_per_s": round(len(subjects) / copy_seconds, 1),
        "seal_and_copy_rows_per_s": round(len(subjects) / (sealed_seconds + copy_seconds), 1),
        "bytes": len(data_text),
    }
    log(
        f"  COPY: {result['copy_rows_per_s']:,.0f} rows/s ({len(subjects):,} rows, {copy_seconds:.2f} s incl. "
        f"commit); sealing them in Python (unwrap + seal) {sealed_seconds:.2f} s -> seal+COPY "
        f"{result['seal_and_copy_rows_per_s']:,.0f} rows/s; deleted again in {delete_seconds:.2f} s"
    )
    return result


# ---------------------------------------------------------------------------------------------------------
# Sends
# ---------------------------------------------------------------------------------------------------------
def _access_times(server: envmod.Server, path: str) -> list[float]:
    if server.access_log is None or not server.access_log.exists():
        return []
    times = []
    for line in server.access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == path and parts[3].isdigit():
            times.append(int(parts[3]) / 1e6)
    return times


def phase_sends(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    rng = random.Random(42)
    size = min(args.bulk_size, args.subjects)
    path = "/api/v1/sends"

    def body(indices: list[int], n: int) -> dict[str, Any]:
        return {
            "campaign": f"bench-campaign-{n}",
            "purpose": SEND_PURPOSE,
            "channel": SEND_CHANNEL,
            "recipients": [{"email": email(i)} for i in indices],
        }

    calls: list[float] = []
    sizes: list[int] = []
    allowed_total = 0
    send_ids: list[uuid.UUID] = []
    profile = None
    with envmod.gunicorn(
        envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, access_log=True, tag="sends"
    ) as server:
        log(f"sends: {workers} warm-up calls of 1,000, then {args.bulk_calls} calls of {size:,} recipients")
        for w in range(workers):
            status, result, _ = _request(
                server.port, "POST", path, token, body(rng.sample(range(args.subjects), 1000), -w)
            )
            if status != 201:
                raise RuntimeError(f"sends warm-up: {status} {str(result)[:500]}")
        time.sleep(0.5)  # gunicorn writes the access log line after the response
        warm = len(_access_times(server, path))
        pids = {server.process.pid, *server.worker_pids()}
        # The figure: the calls split between SEND_CLIENTS concurrent clients (processes), each sending its
        # share back to back; the wall time from the first request to the last answer is the send's time.
        plans: list[list[tuple[int, list[int], bytes]]] = [[] for _ in range(SEND_CLIENTS)]
        for n in range(args.bulk_calls):
            indices = rng.sample(range(args.subjects), size)
            plans[n % SEND_CLIENTS].append((n, indices, json.dumps(body(indices, n)).encode()))
        log(f"  {SEND_CLIENTS} concurrent clients")
        with ProcessPoolExecutor(SEND_CLIENTS) as pool:
            pool.submit(time.sleep, 0).result()  # the pool's processes are up before the clock starts
            before = cpu.snapshot()
            started = time.perf_counter()
            futures = [pool.submit(_send_client, server.port, path, token, plan) for plan in plans]
            outcomes = [outcome for future in futures for outcome in future.result()]
            wall = time.perf_counter() - started
            used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
        for n, elapsed, send_id, response_bytes, allowed in sorted(outcomes):
            calls.append(elapsed)
            send_ids.append(uuid.UUID(send_id))
            sizes.append(response_bytes)
            allowed_total += allowed
            log(f"  call {n + 1}: {elapsed * 1000:,.0f} ms ({size / elapsed:,.0f} decisions/s)")
        cpu_ms = {g: round(v / len(calls) * 1000, 1) for g, v in used.items()}
        log(
            f"  CPU per call: app {cpu_ms['app']:,.0f} ms, db {cpu_ms['db']:,.0f} ms, redis {cpu_ms['redis']:,.0f} "
            f"ms, this client {cpu_ms['client']:,.0f} ms; other processes {cpu_ms['other']:,.0f} ms "
            f"({100 * _other_share(cpu_ms):.0f}% of the machine's CPU)"
        )
        if args.profile and profiling.py_spy():

            def drive(seconds: float) -> None:
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    _request(server.port, "POST", path, token, body(rng.sample(range(args.subjects), size), 99))

            profile = _profile_run(server, args, "sends", drive)
        time.sleep(0.3)
        server_times = _access_times(server, path)[warm : warm + len(calls)]
    logged = _scalar("SELECT count(*) FROM consent_sendrecipient WHERE send_id = ANY(%s)", [send_ids])
    total = wall
    decisions = size * len(calls)
    out: dict[str, Any] = {
        "calls": len(calls),
        "clients": SEND_CLIENTS,
        "recipients_per_call": size,
        "total_seconds": round(total, 3),
        "decisions_per_s": round(decisions / total, 1),
        "p50_ms": round(statistics.median(calls) * 1000, 1),
        "max_ms": round(max(calls) * 1000, 1),
        "allowed": allowed_total,
        "recipients_logged": logged,
        "response_bytes_p50": int(statistics.median(sizes)),
        "target_seconds": SENDS_TARGET_SECONDS,
        "client_ms": [round(c * 1000, 1) for c in calls],
        "cpu_ms_per_call": cpu_ms,
        "profile": profile,
    }
    if len(server_times) == len(calls):
        out["server_ms"] = [round(s * 1000, 1) for s in server_times]
        out["server_p50_ms"] = round(statistics.median(server_times) * 1000, 1)
    log(
        f"  sends: {decisions:,} recipients in {total:.2f} s ({out['decisions_per_s']:,.0f} decisions/s), "
        f"{allowed_total:,} allowed, {logged:,} recipient decisions logged"
    )
    return out


def _send_client(
    port: int, path: str, token: str, plan: list[tuple[int, list[int], bytes]]
) -> list[tuple[int, float, str, int, int]]:
    """One concurrent sends client (a process of its own): its calls back to back on one keep-alive connection,
    every answer checked. Returns (call number, seconds, send id, response bytes, allowed) per call."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    done = []
    for n, indices, payload in plan:
        started = time.perf_counter()
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 201:
            raise RuntimeError(f"sends call {n}: {response.status} {raw[:500]!r}")
        result = json.loads(raw)
        _check_send(indices, result, n)
        done.append((n, elapsed, result["send"], len(raw), len(result["allowed"])))
    conn.close()
    return done


def _check_send(indices: list[int], result: dict[str, Any], n: int) -> None:
    allowed = {a["index"] for a in result["allowed"]}
    wrong = [i for k, i in enumerate(indices) if (k in allowed) != (expected_reason(i) == "granted")]
    reasons = {b["index"]: b["reason"] for b in result["blocked"]}
    wrong += [indices[k] for k, reason in reasons.items() if reason != expected_reason(indices[k])]
    if wrong:
        raise RuntimeError(f"sends call {n}: {len(wrong)} wrong decisions, e.g. subject {wrong[0]}")
    sample = result["allowed"][0] if result["allowed"] else None
    if sample and not (
        "/u/" in sample["unsubscribe_url"]
        and sample["list_unsubscribe"] == f"<{sample['unsubscribe_url']}>"
        and sample["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    ):
        raise RuntimeError(f"sends call {n}: unexpected unsubscribe fields {sample}")


# ---------------------------------------------------------------------------------------------------------
# Profile reads
# ---------------------------------------------------------------------------------------------------------
def _profile_ids(count: int) -> tuple[Path, list[str], int]:
    """Half seeded subjects with linked records (if any: the records phase made them), the rest random active
    ones (seeded, bar the few people the records phase created)."""
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        with_records = [
            str(r[0])
            for r in conn.execute(
                "SELECT DISTINCT r.subject_id FROM subjects_linkedrecord r JOIN subjects_subject s ON s.id = "
                "r.subject_id WHERE s.merged_into_id IS NULL AND s.status = 'active' "
                "AND s.created_at < now() - interval '1 day' LIMIT %s",  # seeded ones (created 400+ days ago)
                [count // 2],
            )
        ]
        others = [
            str(r[0])
            for r in conn.execute(
                "SELECT id FROM subjects_subject WHERE merged_into_id IS NULL AND status = 'active' "
                "ORDER BY random() LIMIT %s",
                [count - len(with_records)],
            )
        ]
    ids = list(dict.fromkeys(with_records + others))
    random.Random(9).shuffle(ids)
    target = VAR / "profile-ids.txt"
    target.write_text("\n".join(ids) + "\n")
    return target, ids, len(with_records)


def phase_profile(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    ids_file, ids, with_records = _profile_ids(PROFILE_IDS)
    contenders = [
        ("floor", "/bench/floor/row/", ""),
        ("profile", "/api/v1/subjects/", f"/profile?purpose={PROFILE_PURPOSE}"),
    ]
    scripts = {name: _ids_script(token, ids_file, prefix, suffix, f"ids-{name}") for name, prefix, suffix in contenders}

    def go(server: envmod.Server, name: str, seconds: float, seed: int) -> load.LoadResult:
        _, prefix, suffix = next(c for c in contenders if c[0] == name)
        if load.wrk_path():
            return load.run_wrk_script(
                scripts[name], server.base + prefix, connections=args.connections, seconds=seconds, seed=seed
            )
        return _py_load(
            server.port,
            "get",
            token=token,
            connections=args.connections,
            seconds=seconds,
            seed=seed,
            prefix=prefix + "{id}" + suffix,
            ids=ids,
        )

    slice_seconds = max(1.0, args.duration / args.rounds)
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in contenders}
    reads_before = _scalar("SELECT count(*) FROM consent_readlog")
    profile = None
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="profile") as server:
        shapes = _sanity_profile(server.port, token, ids[:40])
        log(
            f"profile: {len(ids):,} subject ids ({with_records:,} with linked records), purpose {PROFILE_PURPOSE}; "
            f"warm-up {args.warmup:.0f} s each, then {args.rounds} rounds of floor-row / profile, "
            f"{slice_seconds:.1f} s each, {args.connections} connections, gunicorn -w {workers}"
        )
        for n, (name, _, _) in enumerate(contenders):
            go(server, name, args.warmup, 10 + n)
        reads_warm = _scalar("SELECT count(*) FROM consent_readlog")
        for r in range(args.rounds):
            line = []
            for n, (name, _, _) in enumerate(contenders):
                result = _measured(server, functools.partial(go, server, name, slice_seconds, 100 * r + n))
                parts[name].append(result.as_dict() | {"cpu_ms": result.cpu_ms, "cpu_busy": result.cpu_busy})
                line.append(f"{name} {result.rps:,.0f}/s p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms")
            other = statistics.mean(_other_share(p[-1]["cpu_ms"]) for p in parts.values())
            log(
                f"  round {r + 1}: "
                + " | ".join(line)
                + f" | ratio {parts['profile'][-1]['rps'] / parts['floor'][-1]['rps']:.2f}"
                f" (other processes {100 * other:.0f}% of CPU)"
            )
        reads_after = _scalar("SELECT count(*) FROM consent_readlog")
        if args.profile and profiling.py_spy():
            profile = _profile_run(server, args, "profile-read", lambda s: go(server, "profile", s, 77))
    floor, read = _aggregate(parts["floor"]), _aggregate(parts["profile"])
    for name, agg in (("floor", floor), ("profile", read)):
        log(f"  {name}: {_cpu_text(agg['cpu_ms'])}")
    logged = reads_after - reads_warm
    ok = read["requests"] - read["errors"]
    log(f"  read log: {logged:,} reads logged during the measured slices, {ok:,} 2xx answers counted by the client")
    return {
        "purpose": PROFILE_PURPOSE,
        "ids": len(ids),
        "ids_with_records": with_records,
        "answer_shapes": shapes,
        "workers": workers,
        "connections": args.connections,
        "slice_seconds": slice_seconds,
        "tool": parts["profile"][0]["tool"],
        "floor": floor,
        "profile": read,
        "ratio": round(read["rps"] / floor["rps"], 3),
        "cpu_ratio": round(_server_cpu(floor) / _server_cpu(read), 3),
        "reads_logged": logged,
        "reads_logged_before": reads_before,
        "rounds": [{name: parts[name][r] for name in parts} for r in range(args.rounds)],
        "profile_summary": profile,
    }


def _sanity_profile(port: int, token: str, ids: list[str]) -> dict[str, int]:
    shapes: Counter[str] = Counter()
    for sid in ids:
        status, body, _ = _request(port, "GET", f"/api/v1/subjects/{sid}/profile?purpose={PROFILE_PURPOSE}", token)
        if status != 200 or body["subject"] != sid or set(body["data"]) != {"contact", "purchases"}:
            raise RuntimeError(f"profile sanity of {sid}: {status} {str(body)[:400]}")
        shapes["with purchases" if body["data"]["purchases"] else "no purchases"] += 1
        shapes["with contact" if body["data"]["contact"] else "no contact"] += 1
        status, floor, _ = _request(port, "GET", f"/bench/floor/row/{sid}", token)
        if status != 200 or floor["subject"] != sid:
            raise RuntimeError(f"floor row of {sid}: {status} {floor}")
    status, body, _ = _request(port, "GET", f"/api/v1/subjects/{ids[0]}/profile?purpose=nothing", token)
    if status != 400:
        raise RuntimeError(f"profile sanity: an unknown purpose answered {status} {body}")
    return dict(shapes)


def _aggregate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(p["requests"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    return {
        "rps": round(requests / seconds, 1),
        "p50_ms": round(statistics.mean(p["p50_ms"] for p in parts), 2),
        "p99_ms": round(statistics.mean(p["p99_ms"] for p in parts), 2),
        "requests": requests,
        "errors": sum(p["errors"] for p in parts),
        "cpu_ms": {
            g: round(sum(p["cpu_ms"][g] * p["requests"] for p in parts) / max(1, requests), 3)
            for g in parts[0]["cpu_ms"]
        },
    }


def _server_cpu(agg: dict[str, Any]) -> float:
    c = agg["cpu_ms"]
    return float(c["app"] + c["db"] + c["redis"]) or 1e-9


# ---------------------------------------------------------------------------------------------------------
# Entry points for run.py
# ---------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--copy-rows", type=int, default=COPY_ROWS, help="records phase: rows of the COPY insert baseline"
    )
    batch_phase.add_arguments(parser)


def run_phases(keys: dict[str, str], args: argparse.Namespace, workers: int, results: dict[str, Any]) -> None:
    """The phases of PHASES in args.phases, in the order records, sends, profile (the profile read then finds
    subjects with linked records), each result into `results`."""
    wanted = [p for p in ("records", "batch", "sends", "profile") if p in args.phases]
    if not wanted:
        return
    token = create_client(keys)
    phases = {
        "records": phase_records,
        "batch": batch_phase.phase_batch,
        "sends": phase_sends,
        "profile": phase_profile,
    }
    for name in wanted:
        results[name] = phases[name](keys, token, args, workers)


def noise_shares(results: dict[str, Any]) -> list[float]:
    shares = []
    if results.get("records"):
        shares.append(_other_share(results["records"]["cpu_ms_per_record"]))
    if results.get("batch"):
        shares.append(results["batch"]["other_share"])
    if results.get("sends"):
        shares.append(_other_share(results["sends"]["cpu_ms_per_call"]))
    if results.get("profile"):
        shares += [_other_share(results["profile"][k]["cpu_ms"]) for k in ("floor", "profile")]
    return shares


def report_lines(results: dict[str, Any]) -> list[str]:
    lines = []
    rec = results.get("records")
    if rec:
        c = rec["copy"]
        lines.append(
            f"records      : {rec['records_per_s']:,.0f} records/s via POST /records (identity resolution, "
            f"{rec['connections']} clients) p50 {rec['p50_ms']:.1f} ms p99 {rec['p99_ms']:.1f} ms, "
            f"{rec['errors']} errors | COPY of {c['rows']:,} rows {c['copy_rows_per_s']:,.0f} rows/s "
            f"(seal+COPY {c['seal_and_copy_rows_per_s']:,.0f}/s) | ratio {rec['ratio_to_copy']:.4f} "
            f"(1 : {1 / rec['ratio_to_copy']:,.0f}) (no target)"
        )
    if results.get("batch"):
        lines.append(batch_phase.report_line(results["batch"]))
    sends = results.get("sends")
    if sends:
        ok = "PASS" if sends["total_seconds"] < SENDS_TARGET_SECONDS else "FAIL"
        server = f", server p50 {sends['server_p50_ms']:,.0f} ms" if "server_p50_ms" in sends else ""
        lines.append(
            f"sends        : {sends['calls'] * sends['recipients_per_call']:,} recipients in "
            f"{sends['total_seconds']:.2f} s ({sends['calls']} calls x {sends['recipients_per_call']:,} from "
            f"{sends.get('clients', 1)} clients), {sends['decisions_per_s']:,.0f} decisions/s, p50 "
            f"{sends['p50_ms']:,.0f} ms/call{server} | ratio {SENDS_TARGET_SECONDS / sends['total_seconds']:.2f} "
            f"(target < {SENDS_TARGET_SECONDS:.0f} s) {ok}"
        )
    prof = results.get("profile")
    if prof:
        f, p = prof["floor"], prof["profile"]
        lines.append(
            f"profile read : {p['rps']:,.0f} req/s p50 {p['p50_ms']:.1f} ms p99 {p['p99_ms']:.1f} ms | floor row "
            f"{f['rps']:,.0f} req/s p50 {f['p50_ms']:.1f} ms p99 {f['p99_ms']:.1f} ms | ratio {prof['ratio']:.2f},"
            f" CPU ratio {prof['cpu_ratio']:.2f} (target >= {PROFILE_TARGET:.2f}) "
            + ("PASS" if prof["ratio"] >= PROFILE_TARGET else "FAIL")
        )
        if p["errors"] or f["errors"]:
            lines.append(f"               errors: profile {p['errors']}, floor {f['errors']}")
    shares = noise_shares(results)
    if shares:
        lines.append(
            f"               noise (records, sends, profile): other processes took "
            f"{100 * statistics.mean(shares):.0f}% of the machine's CPU (up to {100 * max(shares):.0f}%)"
        )
    return lines
