"""The issue's speed figures, measured over HTTP through gunicorn on PostgreSQL (make bench BENCH_ARGS="...").

    python -m tests.benchmarks.run [--only single,bulk,writes,records,batch,sends,sendjobs,profile,fides,rights]
        [--subjects N] [--duration S]
        [--workers 4] [--what-if] [--profile] [--knobs ssb,nohealth,nojit] [--wait-quiet S] [--reseed]

- single: POST /api/v1/consents/check at 16 keep-alive clients against a floor measured in the same run on the
  same server (bench/floor: a bare Django view, one indexed lookup), in alternating slices. Target: the check at
  >= 0.9 of the floor's requests/s. Also printed: server CPU per request (gunicorn workers + our PostgreSQL
  backends + Redis, from /proc) and its ratio, which other load on the machine moves less than requests/s.
- bulk: POST /api/v1/consents/check-bulk, calls of 10,000 random seeded subjects, every answer checked: 10 calls
  from one client (latency), then 10 calls from each of 2 concurrent clients. Targets: >= 60,000 decisions/s with
  the 2 clients, and <= 20 us of server CPU (gunicorn workers + PostgreSQL) per decision.
- writes: POST /api/v1/consents at 8 clients (hash chain, encryption included) against a floor measured in the same
  run on the same server (bench/floor/write: a bare Django view that inserts one row in a durable transaction), in
  alternating slices. Target: the writes at >= 0.5 of the floor's requests/s; server CPU per write printed beside
  the floor's. Afterwards the chains and heads of every subject written to are verified.
- batch: POST /api/v1/records/batch, 2 clients x --batch-calls calls of --batch-size realistic records beside a COPY
  baseline, every answer checked against the database (tests/benchmarks/batch_phase.py).
- records, sends, profile: the identity issue's figures (record ingestion beside a COPY baseline, a 100,000-recipient
  marketing send, the gated profile read against a one-row floor): see tests/benchmarks/identity_phases.py.
- sendjobs: a 1,000,000-line send job (--sendjob-lines) end to end with one worker, its wall time and the worker's
  peak RSS (tests/benchmarks/sendjobs_bench.py).
- fides: the side-by-side with Fides' published figures (tests/benchmarks/fides_compare.py). rights: the rights
  engine's figures, on a database of their own (tests/benchmarks/rights_bench.py); not in the default run.

Load: wrk (`apt-get install wrk`) with Lua scripts for rotating bodies; without it (or with BENCH_LOAD=python)
several Python processes with keep-alive connections. `--workers 2,4,6` sweeps gunicorn's sync workers and keeps
the best for floor and check alike. `--what-if` adds the lean prototypes of whatif.py, `--profile` py-spy
profiles of the workers (`pip install py-spy`), `--knobs` database settings to try (see settings.py).

The database of N subjects (default 1,000,000) is seeded once (seed.py) into a template database named after a
hash of the migrations, the catalogue and the seed's shape; its keys live beside it in var/bench/. When only new
migration files appeared, a copy of the old template is migrated instead of seeding again. Each run works on a
fresh copy (`assent_bench`), kept afterwards for `python -m tests.benchmarks.inprocess` (per-request breakdown
and cProfile). Results: var/bench/results.json."""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.benchmarks import cpu, fides_compare, identity_phases, load, profiling, sendjobs_bench
from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import VAR, log
from tests.benchmarks.seed import email, expected_reason

SINGLE_TARGET = 0.90  # issue 12
BULK_TARGET = 60_000.0  # decisions/s with BULK_CLIENTS concurrent clients (issue 12)
BULK_CLIENTS = 2
BULK_CPU_TARGET_US = 20.0  # server CPU (app + PostgreSQL) per decision
WRITES_TARGET = 0.50  # consent writes/s over the write floor's, at --write-connections clients (issue 12)


# ---------------------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------------------
def apply_catalogue(env: dict[str, str]) -> str:
    """tests/conftest.py's catalogue, through `manage.py apply_catalog` as an operator would load it."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(envmod.catalogue_document(), handle)
        path = handle.name
    try:
        envmod.manage(env, "apply_catalog", path)
    finally:
        Path(path).unlink(missing_ok=True)
    return "apply_catalog (tests/conftest.py CATALOGUE)"


def ensure_template(subjects: int, *, reseed: bool) -> tuple[str, dict[str, str], dict[str, Any]]:
    template = envmod.template_name(subjects)
    keys = envmod.read_keys(template)
    meta_file = envmod.meta_path(template)
    fresh = not reseed and keys is not None and meta_file.exists() and envmod.database_exists(template)
    if fresh:
        assert keys is not None
        meta: dict[str, Any] = json.loads(meta_file.read_text())
        log(f"template {template}: reused (seeded {meta['seeded_at']} in {meta['seed']['seconds']:.0f} s)")
        return template, keys, meta
    others = [n for n in envmod.list_databases(envmod.TEMPLATE_PREFIX) if n != template and n.endswith(f"_{subjects}")]
    if not reseed:
        upgraded = _upgrade_template(template, others, subjects)
        if upgraded is not None:
            return upgraded
    # A template for the same size under another schema is stale: drop it with its files.
    for name in [*others, template]:
        if envmod.database_exists(name) or envmod.meta_path(name).exists():
            log(f"dropping old template {name}")
        _drop_template(name)
    log(f"template {template}: seeding {subjects:,} subjects")
    started = time.perf_counter()
    keys = envmod.new_keys()
    migrations = envmod.migration_digests()  # as migrate will see them (the files may change while we seed)
    envmod.write_keys(template, keys)
    envmod.create_database(template)
    env = envmod.django_env(template, keys)
    envmod.manage(env, "migrate", "--noinput")
    catalogue_by = apply_catalogue(env)
    setup_seconds = time.perf_counter() - started
    from tests.benchmarks.seed import seed

    stats = seed(env, subjects)
    total = time.perf_counter() - started
    size = _db_size(template)
    meta = {
        "template": template,
        "subjects": subjects,
        "seed_identity": envmod.seed_identity(subjects),
        "migrations": migrations,
        "seeded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "catalogue": catalogue_by,
        "seed": {
            **{k: round(v, 1) for k, v in stats.items()},
            "setup_seconds": round(setup_seconds, 1),
            "seconds": round(total, 1),
        },
        "size_bytes": size,
    }
    meta_file.write_text(json.dumps(meta, indent=2))
    log(
        f"template {template}: seeded {subjects:,} subjects in {total:.0f} s "
        f"(migrate+catalogue {setup_seconds:.0f} s, load {stats['load_seconds']:.0f} s, "
        f"vacuum/analyze {stats['vacuum_seconds']:.0f} s); {size / 2**30:.2f} GiB"
    )
    return template, keys, meta


def _drop_template(name: str) -> None:
    envmod.drop_database(name)
    envmod.keys_path(name).unlink(missing_ok=True)
    envmod.meta_path(name).unlink(missing_ok=True)


def _upgrade_template(
    template: str, others: list[str], subjects: int
) -> tuple[str, dict[str, str], dict[str, Any]] | None:
    """When the only change since an existing template is new migration files (the ones it was migrated with are
    unchanged), migrate a copy of it, as production would, instead of seeding again."""
    current = envmod.migration_digests()
    for name in others:
        meta_file, keys = envmod.meta_path(name), envmod.read_keys(name)
        if keys is None or not meta_file.exists():
            continue
        meta: dict[str, Any] = json.loads(meta_file.read_text())
        applied = meta.get("migrations") or {}
        if meta.get("seed_identity") != envmod.seed_identity(subjects) or not applied:
            continue
        if any(current.get(path) != digest for path, digest in applied.items()):
            continue  # an applied migration was edited or removed: the old template's schema cannot be trusted
        started = time.perf_counter()
        new = sorted(set(current) - set(applied))
        log(f"template {template}: migrating a copy of {name} ({len(new)} new migration file(s))")
        envmod.drop_database(template)
        envmod.create_database(template, name)
        try:
            env = envmod.django_env(template, keys)
            envmod.manage(env, "migrate", "--noinput")
            with envmod.admin_connect(template) as conn:
                conn.execute("VACUUM (ANALYZE)")
        except Exception:
            envmod.drop_database(template)
            raise
        envmod.write_keys(template, keys)
        meta.update(
            {
                "template": template,
                "migrations": current,
                "migrated_from": name,
                "migrated_seconds": round(time.perf_counter() - started, 1),
            }
        )
        envmod.meta_path(template).write_text(json.dumps(meta, indent=2))
        _drop_template(name)
        log(f"template {template}: migrated in {meta['migrated_seconds']:.0f} s")
        return template, keys, meta
    return None


def _db_size(name: str) -> int:
    with envmod.admin_connect() as conn:
        row = conn.execute("SELECT pg_database_size(%s)", [name]).fetchone()
    return int(row[0]) if row else 0


def prepare_run_db(template: str, keys: dict[str, str]) -> tuple[str, float]:
    started = time.perf_counter()
    envmod.drop_database(envmod.RUN_DB)
    envmod.create_database(envmod.RUN_DB, template)
    env = envmod.django_env(envmod.RUN_DB, keys)
    out = envmod.manage(
        env, "create_api_client", f"bench-{int(time.time())}", "--scope", "consent:check", "--scope", "consent:write"
    )
    token = out.strip().splitlines()[-1].strip()
    for db in (envmod.REDIS_CACHE_DB, envmod.REDIS_BROKER_DB):
        envmod.redis_flush(db)
    return token, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------------
# HTTP helpers
# ---------------------------------------------------------------------------------------------------------
def post(port: int, path: str, body: Any, token: str, timeout: float = 120) -> tuple[int, Any, float]:
    payload = json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    conn.request(
        "POST", path, body=payload, headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    response = conn.getresponse()
    raw = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return response.status, json.loads(raw) if raw else None, elapsed


def sanity_single(port: int, token: str, subjects: int) -> None:
    rng = random.Random(7)
    for i in [0, 1, 5, *(rng.randrange(subjects) for _ in range(12))]:
        i %= subjects
        status, body, _ = post(
            port,
            "/api/v1/consents/check",
            {"subject": {"email": email(i)}, "purpose": "newsletter", "channel": "email"},
            token,
        )
        if status != 200 or body["reason"] != expected_reason(i):
            raise RuntimeError(f"check of subject {i}: expected {expected_reason(i)}, got {status} {body}")
        status, floor, _ = post(port, "/bench/floor", {"subject": {"email": email(i)}}, token)
        if status != 200 or floor["subject"] != body["subject"]:
            raise RuntimeError(f"floor of subject {i}: got {status} {floor}, check said {body['subject']}")


# ---------------------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------------------
def _load(
    server: envmod.Server, kind: str, path: str, token: str, args: argparse.Namespace, seconds: float, seed: int
) -> load.LoadResult:
    pids = {server.process.pid, *server.worker_pids()}
    before = cpu.snapshot()
    result = load.run_load(
        server.base,
        kind,
        path=path,
        token=token,
        subjects=args.subjects,
        connections=args.connections,
        seconds=seconds,
        seed=seed,
        run_id=str(int(time.time())),
    )
    used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
    done = max(1, result.requests)
    result.cpu_ms = {group: round(value / done * 1000, 3) for group, value in used.items()}
    result.cpu_busy = round(used["machine"] / ((os.cpu_count() or 1) * result.seconds), 3)
    return result


def _server_cpu_result(result: load.LoadResult) -> float:
    return result.cpu_ms["app"] + result.cpu_ms["db"] + result.cpu_ms["redis"]


def _cpu_text(result: load.LoadResult) -> str:
    c = result.cpu_ms
    return (
        f"CPU/request app {c['app']:.2f} + db {c['db']:.2f} + redis {c['redis']:.2f} + client {c['client']:.2f}"
        f" ms, other procs {c['other']:.2f} ms; machine {100 * result.cpu_busy:.0f}% busy"
    )


def sweep_workers(template_keys: dict[str, str], token: str, args: argparse.Namespace) -> int:
    candidates = args.workers
    if len(candidates) == 1:
        return candidates[0]
    log(f"sweeping gunicorn workers {candidates} (floor and check, {args.sweep_seconds:.0f} s each)")
    best, best_score = candidates[0], -1.0
    for workers in candidates:
        with envmod.gunicorn(
            envmod.RUN_DB, template_keys, knobs=args.knobs, workers=workers, tag=f"sweep-{workers}"
        ) as server:
            _load(server, "check", "/bench/floor", token, args, 1, 1)
            _load(server, "check", "/api/v1/consents/check", token, args, 1, 2)
            floors, checks = [], []
            for r in range(2):
                floors.append(_load(server, "check", "/bench/floor", token, args, args.sweep_seconds / 2, 3 + r))
                checks.append(
                    _load(server, "check", "/api/v1/consents/check", token, args, args.sweep_seconds / 2, 5 + r)
                )
        floor_rps = sum(f.requests for f in floors) / sum(f.seconds for f in floors)
        check_rps = sum(c.requests for c in checks) / sum(c.seconds for c in checks)
        score = math.sqrt(floor_rps * check_rps)
        other = statistics.mean(x.cpu_ms["other"] / max(x.cpu_ms["machine"], 1e-9) for x in floors + checks)
        log(
            f"  -w {workers}: floor {floor_rps:,.0f} req/s p50 {statistics.mean(f.p50_ms for f in floors):.1f} ms, "
            f"check {check_rps:,.0f} req/s p50 {statistics.mean(c.p50_ms for c in checks):.1f} ms, CPU/request "
            f"floor {statistics.mean(_server_cpu_result(f) for f in floors):.2f} ms, check "
            f"{statistics.mean(_server_cpu_result(c) for c in checks):.2f} ms (others {100 * other:.0f}% of CPU)"
        )
        if score > best_score:
            best, best_score = workers, score
    log(f"  chosen: -w {best}")
    return best


WHATIF_SINGLE = (
    ("lean check: plain view, one SQL, Redis rate limit", "/bench/whatif/check"),
    ("lean check: plain view, one SQL, no rate limit", "/bench/whatif/check-no-limit"),
)


def _aggregate(parts: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(p["requests"] for p in parts)
    seconds = sum(p["seconds"] for p in parts)
    return {
        "rps": round(requests / seconds, 1),
        "p50_ms": round(statistics.mean(p["p50_ms"] for p in parts), 2),
        "p99_ms": round(statistics.mean(p["p99_ms"] for p in parts), 2),
        "requests": requests,
        "errors": sum(p["errors"] for p in parts),
        "cpu_ms": {g: round(statistics.mean(p["cpu_ms"][g] for p in parts), 3) for g in parts[0]["cpu_ms"]},
        "machine_busy": round(statistics.mean(p["cpu_busy"] for p in parts), 3),
    }


def _server_cpu(agg: dict[str, Any]) -> float:
    c = agg["cpu_ms"]
    return float(c["app"] + c["db"] + c["redis"])


def phase_single(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """Floor and check (and the what-ifs) in alternating slices of duration/rounds seconds, so that whatever else
    the machine does meanwhile falls on all of them alike."""
    contenders = [("floor", "/bench/floor"), ("check", "/api/v1/consents/check")]
    if args.what_if:
        contenders += list(WHATIF_SINGLE)
    slice_seconds = max(1.0, args.duration / args.rounds)
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="single") as server:
        sanity_single(server.port, token, args.subjects)
        log(
            f"single: warm-up {args.warmup:.0f} s each, then {args.rounds} rounds of "
            f"{' / '.join(name.split(':')[0] for name, _ in contenders)}, {slice_seconds:.1f} s each "
            f"({args.duration:.0f} s per endpoint), {args.connections} connections, gunicorn -w {workers} "
            f"({'wrk' if load.wrk_path() else 'python client'})"
        )
        for n, (_, path) in enumerate(contenders):
            _load(server, "check", path, token, args, args.warmup, 10 + n)
        for r in range(args.rounds):
            line = []
            for n, (name, path) in enumerate(contenders):
                result = _load(server, "check", path, token, args, slice_seconds, 100 * r + n)
                parts[name].append(result.as_dict() | {"cpu_ms": result.cpu_ms, "cpu_busy": result.cpu_busy})
                line.append(f"{name.split(':')[0]} {result.rps:,.0f}/s p50 {result.p50_ms:.1f} ms")
            other = statistics.mean(
                p[-1]["cpu_ms"]["other"] / max(p[-1]["cpu_ms"]["machine"], 1e-9) for p in parts.values()
            )
            log(
                f"  round {r + 1}: "
                + " | ".join(line)
                + f" | ratio {parts['check'][-1]['rps'] / parts['floor'][-1]['rps']:.2f}"
                f" (other processes {100 * other:.0f}% of CPU)"
            )
        if args.profile and profiling.py_spy():
            for name, path in contenders[:2]:
                log(f"single: py-spy profile of {name} for {args.duration:.0f} s (not counted)")
                spy, out = profiling.start(server.process.pid, args.duration, name)
                _load(server, "check", path, token, args, args.duration, 60)
                spy.wait(timeout=60)
                log(profiling.summarise(out, top=30 if name == "check" else 12))

    floor, check = _aggregate(parts["floor"]), _aggregate(parts["check"])
    for name, agg in (("floor", floor), ("check", check)):
        log(f"  {name}: {_cpu_text_agg(agg)}")
    whatifs = {}
    for name, _ in contenders[2:]:
        agg = _aggregate(parts[name])
        agg["ratio"] = round(agg["rps"] / floor["rps"], 3)
        agg["cpu_ratio"] = round(_server_cpu(floor) / _server_cpu(agg), 3)
        whatifs[name] = agg
        log(f"  what-if {name}: {agg['rps']:,.0f} req/s, ratio {agg['ratio']:.2f}; {_cpu_text_agg(agg)}")
    return {
        "workers": workers,
        "connections": args.connections,
        "tool": parts["check"][0]["tool"],
        "slice_seconds": slice_seconds,
        "floor": floor,
        "check": check,
        "ratio": round(check["rps"] / floor["rps"], 3),
        "cpu_ratio": round(_server_cpu(floor) / _server_cpu(check), 3),
        "target_ratio": SINGLE_TARGET,
        "what_if": whatifs,
        "rounds": [{name: parts[name][r] for name in parts} for r in range(args.rounds)],
    }


def _cpu_text_agg(agg: dict[str, Any]) -> str:
    c = agg["cpu_ms"]
    return (
        f"CPU/request app {c['app']:.2f} + db {c['db']:.2f} + redis {c['redis']:.2f} ms (client {c['client']:.2f},"
        f" other processes {c['other']:.2f} ms)"
    )


def _access_times(server: envmod.Server, path: str) -> list[float]:
    if server.access_log is None or not server.access_log.exists():
        return []
    times = []
    for line in server.access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == path and parts[3].isdigit():
            times.append(int(parts[3]) / 1e6)
    return times


def phase_bulk(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    rng = random.Random(99)
    size = min(args.bulk_size, args.subjects)
    path = "/api/v1/consents/check-bulk"

    def body(indices: list[int]) -> dict[str, Any]:
        return {"purpose": "newsletter", "channel": "email", "subjects": [{"email": email(i)} for i in indices]}

    calls: list[float] = []
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, access_log=True, tag="bulk") as server:
        log(f"bulk: {workers} warm-up calls, then {args.bulk_calls} calls of {size:,} subjects")
        for _ in range(workers):
            post(server.port, path, body(rng.sample(range(args.subjects), min(1000, size))), token)
        time.sleep(0.5)  # gunicorn writes the access log line after the response
        warm = len(_access_times(server, path))
        pids = {server.process.pid, *server.worker_pids()}
        before = cpu.snapshot()
        for n in range(args.bulk_calls):
            indices = rng.sample(range(args.subjects), size)
            status, result, elapsed = post(server.port, path, body(indices), token)
            if status != 200:
                raise RuntimeError(f"bulk call {n}: {status} {str(result)[:500]}")
            wrong = [i for i, r in zip(indices, result["results"], strict=True) if r["reason"] != expected_reason(i)]
            if wrong:
                raise RuntimeError(f"bulk call {n}: {len(wrong)} wrong reasons, e.g. subject {wrong[0]}")
            calls.append(elapsed)
            log(f"  call {n + 1}: {elapsed * 1000:,.0f} ms ({size / elapsed:,.0f} decisions/s)")
        used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
        # The client's share here is this process (building bodies, checking answers), not a child: not counted.
        cpu_ms = {g: round(v / len(calls) * 1000, 1) for g, v in used.items() if g not in ("client", "other")}
        log(f"  CPU per call: app {cpu_ms['app']:,.0f} ms, db {cpu_ms['db']:,.0f} ms, redis {cpu_ms['redis']:,.0f} ms")
        concurrent = _bulk_concurrent(server, path, token, args, size, pids)
        what_if = None
        if args.what_if:
            lean = []
            for n in range(args.bulk_calls):
                indices = rng.sample(range(args.subjects), size)
                status, result, elapsed = post(server.port, "/bench/whatif/check-bulk", body(indices), token)
                if status != 200:
                    raise RuntimeError(f"what-if bulk call {n}: {status} {str(result)[:300]}")
                wrong = [
                    i for i, r in zip(indices, result["results"], strict=True) if r["reason"] != expected_reason(i)
                ]
                if wrong:
                    raise RuntimeError(f"what-if bulk call {n}: {len(wrong)} wrong reasons, e.g. subject {wrong[0]}")
                lean.append(elapsed)
            what_if = {
                "decisions_per_s": round(size * len(lean) / sum(lean), 1),
                "p50_ms": round(statistics.median(lean) * 1000, 1),
            }
            log(
                f"  what-if lean bulk (plain view, one SQL with an array): {what_if['decisions_per_s']:,.0f} "
                f"decisions/s, p50 {what_if['p50_ms']:,.0f} ms/call"
            )
        profile = None
        if args.profile and profiling.py_spy():
            seconds = max(3.0, 3 * statistics.median(calls))
            spy, out = profiling.start(server.process.pid, seconds, "bulk")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                post(server.port, path, body(rng.sample(range(args.subjects), size)), token)
            spy.wait(timeout=60)
            profile = profiling.summarise(out)
            log("bulk profile:\n" + profile)
        time.sleep(0.3)  # the access log line follows the response
        server_times = _access_times(server, path)[warm : warm + len(calls)]
    total = sum(calls)
    decisions = size * len(calls)
    result_body: dict[str, Any] = {
        "calls": len(calls),
        "subjects_per_call": size,
        "decisions_per_s": round(decisions / total, 1),
        "p50_ms": round(statistics.median(calls) * 1000, 1),
        "max_ms": round(max(calls) * 1000, 1),
        "target_decisions_per_s": BULK_TARGET,
        "client_ms": [round(c * 1000, 1) for c in calls],
        "cpu_ms_per_call": cpu_ms,
        "cpu_us_per_decision": round((cpu_ms["app"] + cpu_ms["db"]) * 1000 / size, 1),
        "concurrent": concurrent,
        "what_if": what_if,
    }
    if len(server_times) == len(calls):
        result_body["server_p50_ms"] = round(statistics.median(server_times) * 1000, 1)
        result_body["server_ms"] = [round(s * 1000, 1) for s in server_times]
        result_body["outside_server_p50_ms"] = round(
            statistics.median(c - s for c, s in zip(calls, server_times, strict=True)) * 1000, 1
        )
    return result_body


def _bulk_client(port: int, path: str, token: str, bodies: list[bytes], expected: list[list[str]]) -> list[float]:
    """One of the concurrent bulk clients (a process of its own): its calls, every answer checked."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    times = []
    for n, (payload, reasons) in enumerate(zip(bodies, expected, strict=True)):
        started = time.perf_counter()
        conn.request("POST", path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        times.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"concurrent bulk call {n}: {response.status} {raw[:300]!r}")
        got = [r["reason"] for r in json.loads(raw)["results"]]
        if got != reasons:
            wrong = sum(a != b for a, b in zip(got, reasons, strict=False)) + abs(len(got) - len(reasons))
            raise RuntimeError(f"concurrent bulk call {n}: {wrong} wrong reasons")
    conn.close()
    return times


def _bulk_concurrent(
    server: envmod.Server, path: str, token: str, args: argparse.Namespace, size: int, pids: set[int]
) -> dict[str, Any]:
    """The issue's throughput figure: BULK_CLIENTS clients at once, each sending its calls of `size` back to back.
    Bodies are built and serialised before the clock starts; the answers are checked after each call (the
    clients' CPU is theirs, not the server's, and is not counted in the CPU per decision)."""
    from concurrent.futures import ProcessPoolExecutor

    rng = random.Random(1234)
    plans = []
    for _ in range(BULK_CLIENTS):
        bodies, expected = [], []
        for _ in range(args.bulk_calls):
            indices = rng.sample(range(args.subjects), size)
            subjects = [{"email": email(i)} for i in indices]
            bodies.append(json.dumps({"purpose": "newsletter", "channel": "email", "subjects": subjects}).encode())
            expected.append([expected_reason(i) for i in indices])
        plans.append((bodies, expected))
    log(f"bulk: {BULK_CLIENTS} concurrent clients x {args.bulk_calls} calls of {size:,}")
    with ProcessPoolExecutor(BULK_CLIENTS) as pool:
        before = cpu.snapshot()
        started = time.perf_counter()
        futures = [pool.submit(_bulk_client, server.port, path, token, b, e) for b, e in plans]
        times = [t for f in futures for t in f.result()]
        wall = time.perf_counter() - started
        used = cpu.usage(before, cpu.snapshot(), app_pids=pids, database=envmod.RUN_DB)
    decisions = size * len(times)
    us = {g: round(used[g] / decisions * 1e6, 1) for g in ("app", "db", "redis", "other")}
    figure = {
        "clients": BULK_CLIENTS,
        "calls": len(times),
        "decisions_per_s": round(decisions / wall, 1),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "cpu_us_per_decision": us,
        "server_cpu_us_per_decision": round(us["app"] + us["db"], 1),
    }
    log(
        f"  {figure['decisions_per_s']:,.0f} decisions/s, p50 {figure['p50_ms']:,.0f} ms/call, server CPU "
        f"{figure['server_cpu_us_per_decision']} us/decision (app {us['app']} + db {us['db']}; other {us['other']})"
    )
    return figure


def phase_writes(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """Consent writes against their floor (bench/floor/write: a bare view, one row in a durable transaction) at
    --write-connections clients, in alternating slices as the single phase does; afterwards the chains and heads of
    every subject written to are verified."""
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        conn.execute(envmod.FLOOR_WRITE_TABLE)
        row = conn.execute("SELECT now()").fetchone()
        assert row is not None
        since: datetime = row[0]
    contenders = [("floor", "/bench/floor/write"), ("writes", "/api/v1/consents")]
    wargs = argparse.Namespace(**{**vars(args), "connections": args.write_connections})
    slice_seconds = max(1.0, args.duration / args.rounds)
    parts: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in contenders}
    accepted = 0
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="writes") as server:
        log(
            f"writes: warm-up {args.warmup:.0f} s each, then {args.rounds} rounds of floor / writes, "
            f"{slice_seconds:.1f} s each ({args.duration:.0f} s per endpoint), {wargs.connections} connections, "
            f"gunicorn -w {workers} ({'wrk' if load.wrk_path() else 'python client'})"
        )
        for n, (name, path) in enumerate(contenders):
            warm = _load(server, "write", path, token, wargs, args.warmup, 80 + n)
            if name == "writes":
                accepted += warm.requests - warm.errors
        for r in range(args.rounds):
            line = []
            for n, (name, path) in enumerate(contenders):
                result = _load(server, "write", path, token, wargs, slice_seconds, 200 + 10 * r + n)
                parts[name].append(result.as_dict() | {"cpu_ms": result.cpu_ms, "cpu_busy": result.cpu_busy})
                if name == "writes":
                    accepted += result.requests - result.errors
                line.append(f"{name} {result.rps:,.0f}/s p50 {result.p50_ms:.1f} ms")
            log(
                f"  round {r + 1}: "
                + " | ".join(line)
                + f" | ratio {parts['writes'][-1]['rps'] / parts['floor'][-1]['rps']:.2f}"
            )
        if args.profile and profiling.py_spy():
            spy, out = profiling.start(server.process.pid, args.duration, "writes")
            _load(server, "write", "/api/v1/consents", token, wargs, args.duration, 82)
            spy.wait(timeout=60)
            log("writes profile:\n" + profiling.summarise(out))
    floor, writes = _aggregate(parts["floor"]), _aggregate(parts["writes"])
    for name, agg in (("floor", floor), ("writes", writes)):
        log(f"  {name}: {agg['rps']:,.0f}/s p50 {agg['p50_ms']:.1f} ms, {_cpu_text_agg(agg)}")
    import subprocess

    env = envmod.django_env(envmod.RUN_DB, keys)
    verified = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.verify_touched", since.isoformat()],
        cwd=envmod.PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if verified.returncode:
        # The figures stand without it; say why the chains went unverified.
        log(f"  ledger verification could not run: {verified.stderr.strip()[-800:]}")
        check = {"events": -1, "subjects": 0, "problems": -1, "seconds": 0, "error": verified.stderr[-800:]}
    else:
        check = json.loads(verified.stdout.strip().splitlines()[-1])
    log(
        f"  ledger: {check['events']:,} events since the start, chains of {check['subjects']:,} subjects verified "
        f"in {check['seconds']} s: {check['problems']} problems"
    )
    # The load client counts the answers it read; requests in flight when it stops still commit, so the ledger may
    # hold up to one event per connection and slice more than it counted, never fewer.
    surplus = None if args.profile else check["events"] - accepted
    slices = 1 + args.rounds
    return {
        "events_per_s": writes["rps"],
        "floor_per_s": floor["rps"],
        "ratio": round(writes["rps"] / floor["rps"], 3),
        "cpu_ratio": round(_server_cpu(floor) / _server_cpu(writes), 3),
        "target_ratio": WRITES_TARGET,
        "p50_ms": writes["p50_ms"],
        "p99_ms": writes["p99_ms"],
        "requests": writes["requests"],
        "errors": writes["errors"],
        "floor": floor,
        "writes": writes,
        "workers": workers,
        "cpu_ms_per_event": writes["cpu_ms"],
        "machine_busy": writes["machine_busy"],
        "connections": wargs.connections,
        "tool": parts["writes"][0]["tool"],
        "slice_seconds": slice_seconds,
        "rounds": [{name: parts[name][r] for name in parts} for r in range(args.rounds)],
        "ledger": check,
        "events_minus_2xx": surplus,
        "events_consistent": None if surplus is None else 0 <= surplus <= slices * wargs.connections,
    }


# ---------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------
def report(results: dict[str, Any]) -> str:
    knobs = results["args"].get("knobs")
    lines = [
        "",
        "=" * 100,
        f"Assent benchmark ({results['subjects']:,} subjects, gunicorn sync -w {results['workers']}, "
        f"PostgreSQL 127.0.0.1, {results.get('load_tool', '?')} load client"
        + (f", knobs: {knobs}" if knobs else "")
        + ")",
        "-" * 100,
    ]
    single = results.get("single")
    if single:
        f, c = single["floor"], single["check"]
        ok = "PASS" if single["ratio"] >= SINGLE_TARGET else "FAIL"
        lines.append(
            f"single check : {c['rps']:,.0f} req/s p50 {c['p50_ms']:.1f} ms p99 {c['p99_ms']:.1f} ms | floor "
            f"{f['rps']:,.0f} req/s p50 {f['p50_ms']:.1f} ms p99 {f['p99_ms']:.1f} ms | ratio {single['ratio']:.2f} "
            f"(target >= {SINGLE_TARGET:.2f}) {ok}"
        )
        lines.append(
            f"               server CPU per request (app+db+redis): check {_server_cpu(c):.2f} ms, floor "
            f"{_server_cpu(f):.2f} ms -> CPU ratio {single['cpu_ratio']:.2f} (less sensitive to other load)"
        )
        for name, w in (single.get("what_if") or {}).items():
            lines.append(
                f"   what-if    : {name}: {w['rps']:,.0f} req/s p50 {w['p50_ms']:.1f} ms | ratio "
                f"{w['ratio']:.2f}, CPU ratio {w['cpu_ratio']:.2f}"
            )
        if c["errors"] or f["errors"]:
            lines.append(f"               errors: check {c['errors']}, floor {f['errors']}")
    bulk = results.get("bulk")
    if bulk:
        split = (
            f", server p50 {bulk['server_p50_ms']:,.0f} ms + outside {bulk['outside_server_p50_ms']:,.0f} ms"
            if "server_p50_ms" in bulk
            else ""
        )
        lines.append(
            f"bulk check   : one client {bulk['decisions_per_s']:,.0f} decisions/s ({bulk['calls']} calls x "
            f"{bulk['subjects_per_call']:,}) p50 {bulk['p50_ms']:,.0f} ms/call{split}"
        )
        c = bulk.get("concurrent")
        if c:
            ok = "PASS" if c["decisions_per_s"] >= BULK_TARGET else "FAIL"
            lines.append(
                f"               {c['clients']} clients {c['decisions_per_s']:,.0f} decisions/s ({c['calls']} calls) | "
                f"ratio {c['decisions_per_s'] / BULK_TARGET:.2f} (target >= {BULK_TARGET:,.0f}/s) {ok}"
            )
            cpu_us = c["server_cpu_us_per_decision"]
            ok = "PASS" if cpu_us <= BULK_CPU_TARGET_US else "FAIL"
            lines.append(
                f"               server CPU {cpu_us} us/decision (app {c['cpu_us_per_decision']['app']} + db "
                f"{c['cpu_us_per_decision']['db']}) | ratio {BULK_CPU_TARGET_US / cpu_us:.2f} "
                f"(target <= {BULK_CPU_TARGET_US:.0f} us) {ok}"
            )
    if bulk and bulk.get("what_if"):
        w = bulk["what_if"]
        lines.append(
            f"   what-if    : lean bulk (plain view, one SQL with an array): {w['decisions_per_s']:,.0f} "
            f"decisions/s p50 {w['p50_ms']:,.0f} ms/call | ratio {w['decisions_per_s'] / BULK_TARGET:.2f}"
        )
    writes = results.get("writes")
    if writes:
        ledger = writes["ledger"]
        ok = "PASS" if writes["ratio"] >= WRITES_TARGET else "FAIL"
        f, w = writes["floor"], writes["writes"]
        lines.append(
            f"writes       : {writes['events_per_s']:,.0f} events/s p50 {writes['p50_ms']:.1f} ms p99 "
            f"{writes['p99_ms']:.1f} ms | floor {writes['floor_per_s']:,.0f}/s p50 {f['p50_ms']:.1f} ms | ratio "
            f"{writes['ratio']:.2f} (target >= {WRITES_TARGET:.2f}) {ok}, at {writes['connections']} clients"
        )
        lines.append(
            f"               server CPU per request (app+db+redis): write {_server_cpu(w):.2f} ms, floor "
            f"{_server_cpu(f):.2f} ms -> CPU ratio {writes['cpu_ratio']:.2f} | ledger: {ledger['subjects']:,} chains "
            f"verified, {ledger['problems']} problems, events in db - 2xx = {writes['events_minus_2xx']} (in flight)"
        )
        if writes["errors"] or f["errors"]:
            lines.append(f"               errors: writes {writes['errors']}, floor {f['errors']}")
    lines += identity_phases.report_lines(results)
    lines += sendjobs_bench.report_lines(results)
    lines += fides_compare.report_lines(results)
    noise = [p for p in ("single", "writes") if results.get(p)]
    shares = identity_phases.noise_shares(results)
    if noise or shares:
        for p in noise:
            parts = [results[p]["floor"], results[p]["check" if p == "single" else "writes"]]
            for part in parts:
                cpu_ms = part.get("cpu_ms") or {}
                if cpu_ms.get("machine"):
                    shares.append(cpu_ms["other"] / cpu_ms["machine"])
        if shares and max(shares) > 0.05:
            lines.append(
                f"note: other processes on this machine took {100 * statistics.mean(shares):.0f}% of the CPU"
                " during the measurements (up to "
                f"{100 * max(shares):.0f}%): absolute figures are lower than on a quiet machine"
            )
    lines.append("=" * 100)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only",
        default="single,bulk,writes,records,batch,sends,sendjobs,profile,fides",
        help="phases, comma-separated (also: rights)",
    )
    parser.add_argument("--subjects", type=int, default=1_000_000, help="seeded subjects (a template per size)")
    parser.add_argument(
        "--duration",
        type=float,
        default=12.0,
        help="seconds measured per endpoint (single: split into --rounds alternating slices; writes)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before measuring")
    parser.add_argument("--rounds", type=int, default=4, help="alternating floor/check slices per endpoint")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive clients")
    parser.add_argument(
        "--write-connections", type=int, default=8, help="concurrent keep-alive clients of the writes phase"
    )
    parser.add_argument("--workers", default="4", help="gunicorn sync workers; a list (4,6,8) sweeps and picks")
    parser.add_argument("--sweep-seconds", type=float, default=4.0)
    parser.add_argument("--bulk-calls", type=int, default=10)
    parser.add_argument("--bulk-size", type=int, default=10_000)
    parser.add_argument("--reseed", action="store_true", help="seed a new template even if one exists")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for other processes to leave the CPU before measuring",
    )
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of each phase (extra, not counted)")
    parser.add_argument(
        "--knobs",
        default="",
        help="database settings to try on the bench server, for floor and "
        "check alike: ssb (server-side binding), nohealth (no CONN_HEALTH_CHECKS), nojit",
    )
    parser.add_argument(
        "--what-if",
        action="store_true",
        help="also measure the lean prototypes of tests/benchmarks/whatif.py (estimates)",
    )
    identity_phases.add_arguments(parser)
    sendjobs_bench.add_arguments(parser)
    args = parser.parse_args(argv)
    args.phases = [p.strip() for p in args.only.split(",") if p.strip()]
    phases = {
        "single",
        "bulk",
        "writes",
        "rights",
        "webhooks",
        "fides",
        *identity_phases.PHASES,
        *sendjobs_bench.PHASES,
    }
    unknown = set(args.phases) - phases
    if unknown:
        parser.error(f"--only: unknown phase(s) {', '.join(sorted(unknown))}")
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    if args.subjects < 100:
        parser.error("--subjects: at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if "rights" in args.phases:
        # The rights engine's figures (issue 4) run on their own database and worker: tests/benchmarks/rights_bench.py.
        import subprocess

        subprocess.run([sys.executable, "-m", "tests.benchmarks.rights_bench"], cwd=envmod.PROJECT, check=True)
        args.phases.remove("rights")
        if not args.phases:
            return 0
    if "webhooks" in args.phases:
        # The webhooks' figures (issue 13) run on their own database and worker: tests/benchmarks/webhooks_bench.py.
        import subprocess

        subprocess.run([sys.executable, "-m", "tests.benchmarks.webhooks_bench"], cwd=envmod.PROJECT, check=True)
        args.phases.remove("webhooks")
        if not args.phases:
            return 0
    started = time.perf_counter()
    template, keys, meta = ensure_template(args.subjects, reseed=args.reseed)
    token, copy_seconds = prepare_run_db(template, keys)
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "run.json").write_text(
        json.dumps({"database": envmod.RUN_DB, "template": template, "subjects": args.subjects})
    )
    log(f"run database {envmod.RUN_DB}: copied from the template and API client created in {copy_seconds:.1f} s")
    if args.wait_quiet:
        log(f"waiting up to {args.wait_quiet:.0f} s for the machine to be quiet (< 15% CPU busy for 3 s)")
        quiet, share = cpu.wait_quiet(args.wait_quiet)
        log(f"  {'quiet' if quiet else 'still busy'}: {100 * share:.0f}% busy")
    busy = cpu.machine_busy_share(1.0)
    if busy > 0.15:
        log(f"note: the machine is {100 * busy:.0f}% busy before the run (other processes): expect noisy figures")
    workers = sweep_workers(keys, token, args)
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "subjects": args.subjects,
        "template": template,
        "seed": meta["seed"],
        "catalogue": meta.get("catalogue"),
        "workers": workers,
        "load_tool": "wrk" if load.wrk_path() else "python",
        "args": {k: v for k, v in vars(args).items() if k != "phases"},
    }
    try:
        if "single" in args.phases:
            results["single"] = phase_single(keys, token, args, workers)
        if "bulk" in args.phases:
            results["bulk"] = phase_bulk(keys, token, args, workers)
        if "writes" in args.phases:
            results["writes"] = phase_writes(keys, token, args, workers)
            if identity_phases.PHASES & set(args.phases):
                # The writes changed seeded people's consents; the sends phase checks every decision against the
                # seed's expectations, so the later phases start again from the template.
                token, copy_seconds = prepare_run_db(template, keys)
                log(f"run database restored from the template for the identity phases in {copy_seconds:.1f} s")
        identity_phases.run_phases(keys, args, workers, results)
        if sendjobs_bench.PHASES & set(args.phases):  # checks every line against the seed: before fides
            sendjobs_bench.run_phase(keys, identity_phases.create_client(keys), args, workers, results)
        if "fides" in args.phases:  # last: its saves change seeded people's consents
            results["fides"] = fides_compare.phase_fides(keys, token, args, workers)
    finally:
        for db in (envmod.REDIS_CACHE_DB, envmod.REDIS_BROKER_DB):
            envmod.redis_flush(db)
        results["seconds"] = round(time.perf_counter() - started, 1)
        VAR.mkdir(parents=True, exist_ok=True)
        (VAR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(report(results))
    print(f"results: {VAR / 'results.json'} (whole run {results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
