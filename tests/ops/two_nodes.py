"""Past one machine (issue 15, README "Past one machine"): two web nodes and two worker nodes against one
PostgreSQL and one Redis broker, each process on its own port and with its own environment, as if on four hosts.
Run it as `python -m tests.ops.two_nodes [--round-trips N]` (`make two-nodes`: 1,000).

What it shows:
- both web nodes answer /readyz 200: the database, the broker and a worker heartbeat are reachable from each;
- the workers share the queue: access requests opened through web 1 are processed by whichever worker takes them,
  and web 2 sees them completed;
- read-your-writes across processes: N times, a consent write (grant or withdraw, alternating per person) through
  web 1, then the policy check for the same person through web 2; an answer that is not the one the write
  produced is stale. With every read going to the primary that the write committed to before answering, there
  must be none. Prints the round trips, the stale count and the write, check and round-trip latencies (p50, p99).

The processes are those the integration tests start (tests/integration/processes.py), on a database of the run's
own (tests/ops/standalone.py), dropped after."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.ops.standalone import database_create, database_drop, database_prepare, manage, run_environment

PEOPLE = 20  # the round trips cycle through these people, each write flipping the person's consent
ACCESS_REQUESTS = 4


@dataclass
class Figures:
    round_trips: int = 0
    stale: int = 0
    errors: int = 0
    ready: dict[str, int] = field(default_factory=dict)  # node -> /readyz status
    access_completed: int = 0
    lines: dict[str, int] = field(default_factory=dict)  # node -> request (web) or task (worker) log lines
    write_ms: dict[str, float] = field(default_factory=dict)
    check_ms: dict[str, float] = field(default_factory=dict)
    round_trip_ms: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def percentiles(samples: list[float]) -> dict[str, float]:
    if len(samples) < 2:
        return {"p50": round(samples[0] if samples else 0.0, 2), "p99": round(samples[0] if samples else 0.0, 2)}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": round(statistics.median(samples), 2), "p99": round(cuts[98], 2)}


def nodes(scratch: Path) -> tuple[list[Any], list[Any]]:
    """Two gunicorns and two workers, each with the environment a host of its own would have: the same database
    and broker URLs and keys, its own port, metrics directory and (for workers) node name and mail directory."""
    from tests.integration.processes import Gunicorn, Worker

    class NamedWorker(Worker):
        def __init__(self, node: str) -> None:
            self.node = node
            (scratch / node).mkdir()
            super().__init__(scratch / node, scratch / f"{node}.log")

        def command(self) -> list[str]:
            return [*super().command(), "-n", f"{self.node}@%h"]

    webs = [
        Gunicorn(scratch / f"web{n}.log", workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(scratch / f"web{n}-metrics")})
        for n in (1, 2)
    ]
    workers = [NamedWorker(f"worker{n}") for n in (1, 2)]
    return webs, workers


def logged(process: Any, logger: str) -> int:
    """How many JSON lines of this logger the node wrote: its share of the requests or tasks."""
    return sum(1 for line in process.log().splitlines() if f'"logger": "{logger}"' in line)


def ready_status(http: Any) -> int:
    """/readyz of a web node, once its checks pass (a worker's first heartbeat may take a moment)."""
    deadline = time.monotonic() + 60
    status = 0
    while time.monotonic() < deadline:
        status = http.get("/readyz").status_code
        if status == 200:
            break
        time.sleep(0.5)
    return int(status)


def access_round(web1: Any, web2: Any, figures: Figures) -> None:
    """Access requests opened through web 1, run by the workers, seen completed through web 2."""
    ids = []
    for n in range(ACCESS_REQUESTS):
        body = {"kind": "access", "subject": {"email": f"node-{n}@example.de"}, "channel": "portal", "verified": True}
        answer = web1.post("/api/v1/requests", json=body)
        if answer.status_code == 202:
            ids.append(answer.json()["id"])
    deadline = time.monotonic() + 120
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for request_id in list(pending):
            if web2.get(f"/api/v1/requests/{request_id}").json()["status"] == "completed":
                pending.discard(request_id)
        time.sleep(0.2)
    figures.access_completed = len(ids) - len(pending)


def read_your_writes(web1: Any, web2: Any, round_trips: int, figures: Figures) -> None:
    from tests.catalogue import NEWSLETTER_NOTICE

    granted = [False] * PEOPLE
    writes: list[float] = []
    reads: list[float] = []
    trips: list[float] = []
    for i in range(round_trips):
        person = i % PEOPLE
        subject = {"email": f"node-{person}@example.de"}
        action = "withdraw" if granted[person] else "grant"
        body: dict[str, Any] = {
            "subject": subject,
            "purpose": "newsletter",
            "channel": "sms",
            "action": action,
            "source": "two-nodes",
        }
        if action == "grant":
            body["notice_version"] = NEWSLETTER_NOTICE
        started = time.perf_counter()
        written = web1.post("/api/v1/consents", json=body)
        between = time.perf_counter()
        checked = web2.post(
            "/api/v1/consents/check", json={"subject": subject, "purpose": "newsletter", "channel": "sms"}
        )
        done = time.perf_counter()
        if written.status_code != 201 or checked.status_code != 200:
            figures.errors += 1
            continue
        granted[person] = action == "grant"
        writes.append((between - started) * 1000)
        reads.append((done - between) * 1000)
        trips.append((done - started) * 1000)
        figures.round_trips += 1
        if checked.json()["allowed"] != granted[person]:
            figures.stale += 1
    figures.write_ms = percentiles(writes)
    figures.check_ms = percentiles(reads)
    figures.round_trip_ms = percentiles(trips)


def two_nodes(round_trips: int) -> Figures:
    name = f"assent_two_nodes_{os.getpid()}"
    database_create(name)
    started: list[Any] = []
    scratch: Path | None = None
    try:
        scratch = run_environment(name, "two-nodes")
        import httpx

        from tests.catalogue import standard_catalogue

        database_prepare(standard_catalogue())
        # as an operator would: the key is the last line the command prints
        key = manage(
            "create_api_client", "two-nodes", "--scope", "consent:write", "--scope", "consent:check",
            "--scope", "requests:write", "--scope", "requests:read",
        ).strip().splitlines()[-1]  # fmt: skip
        webs, workers = nodes(scratch)
        for process in [*webs, *workers]:
            process.start()
            started.append(process)
        figures = Figures()
        clock = time.perf_counter()
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=webs[0].base, headers=headers, timeout=30) as web1,
            httpx.Client(base_url=webs[1].base, headers=headers, timeout=30) as web2,
        ):
            figures.ready = {"web1": ready_status(web1), "web2": ready_status(web2)}
            read_your_writes(web1, web2, round_trips, figures)
            access_round(web1, web2, figures)
        figures.seconds = round(time.perf_counter() - clock, 2)
        for process in [*webs, *workers]:
            process.stop()  # its log is complete once it stopped
        figures.lines = {
            **{f"web{n}": logged(web, "assent.requests") for n, web in enumerate(webs, 1)},
            **{f"worker{n}": logged(worker, "assent.tasks") for n, worker in enumerate(workers, 1)},
        }
        return figures
    finally:
        for process in reversed(started):
            process.stop()
        from django.db import connections

        connections.close_all()
        database_drop(name)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.ops.two_nodes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    options = parser.parse_args(argv)
    figures = two_nodes(options.round_trips)
    print(
        f"two web nodes, two worker nodes, one PostgreSQL, one broker: /readyz {figures.ready}\n"
        f"  read-your-writes: {figures.round_trips:,} round trips (write through web 1, check through web 2), "
        f"{figures.stale} stale, {figures.errors} errors\n"
        f"  latency ms: write {figures.write_ms}, check {figures.check_ms}, round trip {figures.round_trip_ms}\n"
        f"  access requests opened through web 1, completed by the workers, seen through web 2: "
        f"{figures.access_completed}/{ACCESS_REQUESTS}; {figures.seconds} s in all\n"
        f"  log lines per node (requests on the web nodes, tasks on the workers): {figures.lines}",
        flush=True,
    )
    if options.json:
        options.json.write_text(json.dumps(asdict(figures)))
    ok = figures.stale == 0 and figures.errors == 0 and figures.access_completed == ACCESS_REQUESTS
    return 0 if ok and set(figures.ready.values()) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
