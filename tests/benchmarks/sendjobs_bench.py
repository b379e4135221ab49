"""The send job's figures (issue 12 item 3), a phase of `python -m tests.benchmarks.run --only sendjobs`:

1,000,000 recipient lines (--sendjob-lines) uploaded gzipped to POST /api/v1/send-jobs for `newsletter` on
`email`, gated by ONE Celery worker (solo pool), end to end: from the upload's first byte to the job's result ready
(polled with GET /api/v1/send-jobs/{id}). Target: under SENDJOB_TARGET_SECONDS, the worker's peak RSS (VmHWM of its
process tree) under SENDJOB_TARGET_RSS_MB. The mix, line k of subject s = k % subjects: 80% the seeded subject's
e-mail (each seeded subject by e-mail, several times), 10% its id, 7% an unknown address, 3% malformed (not JSON, a
bad address, an unknown kind). The result is then read back and every line checked against the seed's expectation
(seed.expected_reason), and the send log counted (one row per line)."""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from tests.benchmarks import cpu
from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import VAR, log
from tests.benchmarks.seed import email, expected_reason

PHASES = frozenset({"sendjobs"})
LINES = 1_000_000
SENDJOB_TARGET_SECONDS = 30.0
SENDJOB_TARGET_RSS_MB = 300.0
PURPOSE, CHANNEL = "newsletter", "email"
MALFORMED = (b"{oops", b'{"email":"not-an-address"}', b'{"fax":"1"}')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sendjob-lines", type=int, default=LINES, help="sendjobs phase: lines of the job")


def _subject_ids(keys: dict[str, str], subjects: int) -> list[str]:
    """The seeded subjects' ids by index, found as the product finds them: by the blind index of their e-mail."""
    from config.env import decode_key32
    from subjects.crypto import BlindIndex

    index = BlindIndex(decode_key32("ASSENT_BLIND_INDEX_KEY", keys["ASSENT_BLIND_INDEX_KEY"]))
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        owner = {
            bytes(d): str(s)
            for d, s in conn.execute("SELECT blind_index, subject_id FROM subjects_identifier WHERE kind = 'email'")
        }
    return [owner[index.lookup("email", email(i))] for i in range(subjects)]


def _expected(k: int, subjects: int) -> tuple[bytes, str]:
    """Line k's reference (without the id, filled in later) and the reason it must be answered with."""
    s, mix = k % subjects, k % 100
    if mix < 80:
        return b'{"email":"%s"}' % email(s).encode(), expected_reason(s)
    if mix < 90:
        return b"", expected_reason(s)  # by id
    if mix < 97:
        return b'{"email":"unknown%d@example.net"}' % k, "unknown_subject"
    return MALFORMED[k % 3], "invalid_reference"


def build_upload(path: Path, lines: int, ids: list[str]) -> list[str]:
    """The gzipped NDJSON body in `path`; the expected reason of each line."""
    subjects = len(ids)
    expected: list[str] = []
    parts: list[bytes] = []
    for k in range(lines):
        line, reason = _expected(k, subjects)
        parts.append(line or b'{"id":"%s"}' % ids[k % subjects].encode())
        expected.append(reason)
    path.write_bytes(gzip.compress(b"\n".join(parts) + b"\n", compresslevel=3))
    return expected


def _tree_peak_rss_kib(pid: int) -> int:
    """VmHWM of the process and its children (a solo worker has none; counted in case it forks)."""
    import subprocess

    pids = [pid] + [
        int(p)
        for p in subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    ]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(port: int, path: str, token: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def _start_worker(env: dict[str, str]) -> Any:
    import subprocess
    import sys

    log_file = (VAR / "sendjobs.worker.log").open("ab")
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-l", "warning"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    process = subprocess.Popen(command, cwd=envmod.PROJECT, env=env, stdout=log_file, stderr=log_file)
    log_file.close()
    deadline = time.monotonic() + 60
    ready = VAR / "sendjobs.worker.log"
    while time.monotonic() < deadline:  # the worker says "ready" at warning level only through its banner: wait
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited: {ready.read_text()[-2000:]}")
        if _answers_ping(env):
            return process
        time.sleep(0.3)
    raise RuntimeError("the worker did not start in 60 s")


def _answers_ping(env: dict[str, str]) -> bool:
    from celery import Celery

    app = Celery(broker=env["CELERY_BROKER_URL"])
    try:
        return bool(app.control.ping(timeout=0.5))
    finally:
        app.close()


def phase_sendjobs(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    lines = args.sendjob_lines
    log(f"sendjobs: building {lines:,} lines over {args.subjects:,} seeded subjects")
    ids = _subject_ids(keys, args.subjects)
    upload = VAR / "sendjobs.upload.ndjson.gz"
    expected = build_upload(upload, lines, ids)
    size = upload.stat().st_size
    # A queue of this run's own: another work tree's bench worker on the same Redis must not take the job.
    os.environ["CELERY_TASK_DEFAULT_QUEUE"] = f"bench-sendjobs-{envmod.RUN_DB}"
    env = envmod.django_env(envmod.RUN_DB, keys)
    worker = _start_worker(env)
    try:
        with envmod.gunicorn(envmod.RUN_DB, keys, workers=workers, tag="sendjobs") as server:
            cpu_before = _cpu_seconds(worker.pid)
            machine_before = cpu.snapshot()
            query = f"campaign=bench-sendjob&purpose={PURPOSE}&channel={CHANNEL}"
            started = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
            with upload.open("rb") as body:
                conn.request(
                    "POST",
                    f"/api/v1/send-jobs?{query}",
                    body=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/x-ndjson",
                        "Content-Encoding": "gzip",
                        "Content-Length": str(size),
                    },
                )
                response = conn.getresponse()
                queued = json.loads(response.read())
            conn.close()
            uploaded = time.perf_counter() - started
            if response.status != 202:
                raise RuntimeError(f"sendjobs upload: {response.status} {queued}")
            job_id = queued["id"]
            log(f"  uploaded {size / 1e6:.1f} MB gzipped in {uploaded:.2f} s: job {job_id}")
            while True:
                _, raw = _get(server.port, f"/api/v1/send-jobs/{job_id}", token)
                job = json.loads(raw)
                if job["status"] in ("completed", "failed"):
                    break
                time.sleep(0.2)
            wall = time.perf_counter() - started
            worker_cpu = _cpu_seconds(worker.pid) - cpu_before
            used = cpu.usage(
                machine_before, cpu.snapshot(), app_pids={worker.pid, *server.worker_pids()}, database=envmod.RUN_DB
            )
            peak_kib = _tree_peak_rss_kib(worker.pid)
            if job["status"] != "completed":
                raise RuntimeError(f"sendjobs: the job failed: {job}")
            status, result = _get(server.port, f"/api/v1/send-jobs/{job_id}/result", token)
            if status != 200:
                raise RuntimeError(f"sendjobs result: {status}")
    finally:
        worker.terminate()
        worker.wait(30)
        os.environ.pop("CELERY_TASK_DEFAULT_QUEUE", None)
    wrong = _check(result, expected, ids)
    with envmod.admin_connect(envmod.RUN_DB) as conn:
        row = conn.execute(
            "SELECT started_at, finished_at, attempts, (SELECT count(*) FROM consent_sendrecipient r"
            " WHERE r.send_id = j.send_id) FROM consent_sendjob j WHERE id = %s",
            [uuid.UUID(job_id)],
        ).fetchone()
    assert row is not None
    worker_seconds = (row[1] - row[0]).total_seconds()
    out = {
        "lines": lines,
        "upload_bytes_gzip": size,
        "upload_seconds": round(uploaded, 2),
        "worker_seconds": round(worker_seconds, 2),
        "wall_seconds": round(wall, 2),
        "lines_per_s": round(lines / wall, 1),
        "worker_lines_per_s": round(lines / worker_seconds, 1),
        "worker_cpu_seconds": round(worker_cpu, 2),
        "worker_peak_rss_mb": round(peak_kib / 1024, 1),
        # CPU per line, which holds on any machine: the worker (and gunicorn's upload), PostgreSQL, and how much of
        # the machine other processes took meanwhile (a shared machine's noise).
        "cpu_us_per_line": {g: round(v / lines * 1e6, 1) for g, v in used.items()},
        "other_share": round(used["other"] / used["machine"], 2) if used["machine"] else 0.0,
        "allowed": job["allowed"],
        "blocked": job["blocked"],
        "logged": row[3],
        "attempts": row[2],
        "wrong": wrong,
        "target_seconds": SENDJOB_TARGET_SECONDS,
        "target_rss_mb": SENDJOB_TARGET_RSS_MB,
        "ratio_seconds": round(wall / SENDJOB_TARGET_SECONDS, 2),
        "ratio_rss": round(peak_kib / 1024 / SENDJOB_TARGET_RSS_MB, 2),
    }
    if wrong or row[3] != lines:
        raise RuntimeError(f"sendjobs: {wrong} wrong answers, {row[3]:,} log rows for {lines:,} lines")
    for text in report_lines({"sendjobs": out}):
        log(text)
    return out


def _check(result: bytes, expected: list[str], ids: list[str]) -> int:
    """Every line in order, each answered as the seed says."""
    rows = result.splitlines()
    if len(rows) != len(expected):
        raise RuntimeError(f"sendjobs: {len(rows):,} result lines for {len(expected):,} lines")
    wrong = 0
    for k, (raw, reason) in enumerate(zip(rows, expected, strict=True)):
        line = json.loads(raw)
        got = "granted" if line["allowed"] else line["reason"]
        wrong += line["index"] != k or got != reason or (line["allowed"] and line["subject"] != ids[k % len(ids)])
    return wrong


def run_phase(
    keys: dict[str, str], token: str, args: argparse.Namespace, workers: int, results: dict[str, Any]
) -> None:
    if "sendjobs" in args.phases:
        results["sendjobs"] = phase_sendjobs(keys, token, args, workers)


def report_lines(results: dict[str, Any]) -> list[str]:
    job = results.get("sendjobs")
    if not job:
        return []
    ok = "PASS" if job["wall_seconds"] < SENDJOB_TARGET_SECONDS else "FAIL"
    ok_rss = "PASS" if job["worker_peak_rss_mb"] < SENDJOB_TARGET_RSS_MB else "FAIL"
    return [
        f"send job     : {job['lines']:,} lines end to end in {job['wall_seconds']:.1f} s ({job['lines_per_s']:,.0f} "
        f"lines/s; upload {job['upload_seconds']:.1f} s, worker {job['worker_seconds']:.1f} s, worker CPU "
        f"{job['worker_cpu_seconds']:.1f} s) | target < {SENDJOB_TARGET_SECONDS:.0f} s: ratio "
        f"{job['ratio_seconds']:.2f} {ok}",
        f"               worker peak RSS {job['worker_peak_rss_mb']:.0f} MB | target < {SENDJOB_TARGET_RSS_MB:.0f} "
        f"MB: ratio {job['ratio_rss']:.2f} {ok_rss}; {job['logged']:,} log rows, every line checked",
        f"               CPU per line: worker+gunicorn {job['cpu_us_per_line']['app']:.1f} us, PostgreSQL "
        f"{job['cpu_us_per_line']['db']:.1f} us; other processes took {100 * job['other_share']:.0f}% of the "
        "machine's CPU meanwhile",
    ]
