"""The rights engine's speed figures (issue 4), with one Celery worker (solo pool: one process, one task at a
time) on PostgreSQL and Redis:

    python -m tests.benchmarks.rights_bench [--records 10000] [--small 30] [--queued 1000] [--rss 1000,100000]

- access and erasure of a subject with 10,000 linked records across 5 sources, each from approval (for access:
  verification) to completed; target < 10 s;
- a small access request (a few records) end to end: POST /api/v1/requests (verified) through Django's full stack,
  then polling GET until completed; target median < 0.15 s;
- 1,000 queued erasures of small subjects: approved while no worker runs, then drained by one worker; requests/s;
- export peak memory: the worker's peak RSS (VmHWM) running an access export of 1,000 and of 100,000 records,
  each on a fresh worker; the two should be about the same (64 KiB chunks, streamed pieces).

Works on its own database (`assent_rights_bench`, dropped and created afresh), its own Redis queue and var dir
(var/bench/rights). Prints the figures and writes var/bench/rights.json."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import PROJECT, VAR, log

DATABASE = "assent_rights_bench"
REDIS_DB = 13
QUEUE = "assent-rights-bench"
RUN_VAR = VAR / "rights"
SOURCES = ("pos", "shop", "app", "callcenter", "web")


def setup_environment() -> dict[str, str]:
    from tests.catalogue import rights_catalogue

    return envmod.worker_bench_environment(
        name=QUEUE,
        database=DATABASE,
        redis_db=REDIS_DB,
        var=RUN_VAR,
        catalogue=rights_catalogue(),
        extra={"ASSENT_ERASURE_LOG": str(RUN_VAR / "erasure.log")},
    )


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        started = time.monotonic()
        log_file = (RUN_VAR / "worker.log").open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-l",
                "warning",
                "-Q",
                QUEUE,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=PROJECT,
            env=self.env,
            stdout=log_file,
            stderr=log_file,
        )
        from config.celery import app

        while time.monotonic() - started < 60:  # ready when it answers a ping
            if app.control.ping(timeout=0.2, destination=None):
                return time.monotonic() - started
        raise RuntimeError("the worker did not start; see var/bench/rights/worker.log")

    def peak_rss_kib(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


# ---------------------------------------------------------------------------------------------------------
# Helpers that need Django (imported after setup)
# ---------------------------------------------------------------------------------------------------------
def wait_done(request_ids: list[str], timeout: float = 600.0, every: float = 0.002) -> float:
    from subjects.models import RightsRequest

    started = time.monotonic()
    open_ids = set(request_ids)
    while open_ids:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"{len(open_ids)} requests did not finish")
        done = {
            str(pk)
            for pk in RightsRequest.objects.filter(
                pk__in=list(open_ids), status__in=("completed", "failed")
            ).values_list("pk", flat=True)
        }
        failed = RightsRequest.objects.filter(pk__in=list(done), status="failed").values_list("result", flat=True)
        for result in failed:
            raise RuntimeError(f"a request failed: {result}")
        open_ids -= done
        if open_ids:
            time.sleep(every)
    return time.monotonic()


def person(tag: str, per_source: int) -> Any:
    from tests.catalogue import SOURCE_CATEGORY
    from tests.rights.helpers import records_bulk, seed_person

    subject = seed_person(tag, records_per_source=0, sources=())
    for source in SOURCES:
        records_bulk(subject.subject_id, source, SOURCE_CATEGORY[source], per_source, tag)
    return subject


def open_request(kind: str, email: str, *, verified: bool) -> str:
    from subjects.identity import parse_reference
    from subjects.rights.details import Details
    from subjects.rights.requests import Actor, request_open

    request = request_open(
        kind=kind,
        reference=parse_reference({"email": email}),
        channel="bench",
        verified=verified,
        details=Details({}),
        actor=Actor("bench"),
    )
    return str(request.pk)


def approve(request_id: str) -> None:
    from subjects.rights.requests import Actor, request_approve, request_verify

    request_verify(request_id=request_id, actor=Actor("bench"))  # type: ignore[arg-type]
    request_approve(request_id=request_id, actor=Actor("bench"))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------------------------
def phase_large(worker: Worker, records: int) -> dict[str, float]:
    per_source = records // len(SOURCES)
    log(f"large: seeding a subject with {per_source * len(SOURCES):,} records across {len(SOURCES)} sources")
    big = person("big", per_source)
    started = time.monotonic()
    access = open_request("access", big.email, verified=True)
    access_s = wait_done([access]) - started
    log(f"large: access of {records:,} records: {access_s:.2f} s (verification to completed)")
    erasure = open_request("erasure", big.email, verified=True)
    from subjects.rights.requests import Actor, request_approve

    started = time.monotonic()
    request_approve(request_id=erasure, actor=Actor("bench"))  # type: ignore[arg-type]
    erasure_s = wait_done([erasure]) - started
    log(f"large: erasure of {records:,} records: {erasure_s:.2f} s (approval to completed)")
    return {"access_seconds": access_s, "erasure_seconds": erasure_s, "records": per_source * len(SOURCES)}


def phase_small(worker: Worker, count: int) -> dict[str, Any]:
    from rest_framework.test import APIClient

    from consent.clients import client_create
    from subjects.models import RightsRequest

    _, key = client_create(name="rights-bench", scopes=["requests:write", "requests:read"], purposes=[])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    people = [person(f"small{i}", 1) for i in range(count + 3)]
    times = []
    for n, who in enumerate(people):
        started = time.monotonic()
        response = http.post(
            "/api/v1/requests",
            {"kind": "access", "subject": {"email": who.email}, "channel": "bench", "verified": True},
            format="json",
        )
        assert response.status_code == 202, response.content
        request_id = response.json()["id"]
        # Watch the row (cheap), so that polling does not take the CPU from the worker; then the client's GET.
        while not RightsRequest.objects.filter(pk=request_id, status__in=("completed", "failed")).exists():
            time.sleep(0.002)
        assert http.get(f"/api/v1/requests/{request_id}").json()["status"] == "completed"
        if n >= 3:  # three warm-ups
            times.append(time.monotonic() - started)
    times.sort()
    result = {
        "count": len(times),
        "median_seconds": statistics.median(times),
        "p90_seconds": times[int(len(times) * 0.9) - 1],
        "min_seconds": times[0],
    }
    log(
        f"small: access end to end (API + worker, 5 records): median {result['median_seconds'] * 1000:.0f} ms, "
        f"p90 {result['p90_seconds'] * 1000:.0f} ms over {len(times)}"
    )
    return result


def phase_queued(env: dict[str, str], count: int) -> dict[str, Any]:
    log(f"queued: seeding {count:,} small subjects (5 records each)")
    people = [person(f"q{i}", 1) for i in range(count)]
    requests = [open_request("erasure", p.email, verified=True) for p in people]
    from subjects.rights.requests import Actor, request_approve

    for request_id in requests:  # no worker runs: the parts queue up in the broker
        request_approve(request_id=request_id, actor=Actor("bench"))  # type: ignore[arg-type]
    worker = Worker(env)
    startup = worker.start()
    started = time.monotonic()
    finished = wait_done(requests, every=0.05)
    worker.stop()
    seconds = finished - started
    log(
        f"queued: {count:,} erasures drained in {seconds:.1f} s by one worker: {count / seconds:.1f} requests/s "
        f"(worker start-up {startup:.1f} s not counted)"
    )
    return {"count": count, "seconds": seconds, "requests_per_second": count / seconds}


def phase_rss(env: dict[str, str], sizes: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        who = person(f"rss{size}", size // len(SOURCES))
        worker = Worker(env)
        worker.start()
        idle = worker.peak_rss_kib()
        started = time.monotonic()
        wait_done([open_request("access", who.email, verified=True)])
        seconds = time.monotonic() - started
        peak = worker.peak_rss_kib()
        worker.stop()
        from subjects.models import RightsExport

        size_bytes = RightsExport.objects.order_by("-created_at").values_list("size", flat=True).first() or 0
        out[str(size)] = {
            "peak_rss_mib": peak / 1024,
            "idle_rss_mib": idle / 1024,
            "seconds": seconds,
            "zip_kib": size_bytes / 1024,
        }
        log(
            f"rss: export of {size:,} records: worker peak RSS {peak / 1024:.1f} MiB (idle {idle / 1024:.1f} MiB), "
            f"{seconds:.1f} s, zip {size_bytes / 1024:,.0f} KiB"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--small", type=int, default=30)
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--rss", default="1000,100000")
    parser.add_argument("--only", default="large,small,queued,rss")
    args = parser.parse_args()
    only = set(args.only.split(","))
    env = setup_environment()
    results: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if only & {"large", "small"}:
        worker = Worker(env)
        worker.start()
        try:
            if "large" in only:
                results["large"] = phase_large(worker, args.records)
            if "small" in only:
                results["small"] = phase_small(worker, args.small)
        finally:
            worker.stop()
    if "queued" in only:
        results["queued"] = phase_queued(env, args.queued)
    if "rss" in only:
        results["rss"] = phase_rss(env, [int(s) for s in args.rss.split(",") if s])
    (VAR / "rights.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
