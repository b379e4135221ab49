"""The webhooks' speed figures (issue 13), with one Celery worker (solo pool) on PostgreSQL and Redis, and a real
receiver on loopback in this process that verifies every signature (tests/webhook_receiver.py):

    python -m tests.benchmarks.webhooks_bench [--withdrawals 1000] [--deliveries 5000]

- latency: a withdrawal accepted by the API (POST /api/v1/consents through Django's full stack, in this process)
  until its webhook is received; one at a time; p50 and p99 over `--withdrawals`. Target p99 < 1 s;
- throughput: `--deliveries` deliveries (events of many people to two endpoints) queued while no worker runs, then
  sent by one worker: deliveries per second from its first attempt to its last acknowledgement. Target >= 500/s.

Works on its own database (`assent_webhooks_bench`, dropped and created afresh), Redis database 12 and queue.
Prints the figures and writes var/bench/webhooks.json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import PROJECT, VAR, log

DATABASE = "assent_webhooks_bench"
REDIS_DB = 12
QUEUE = "assent-webhooks-bench"
RUN_VAR = VAR / "webhooks"


def setup_environment() -> dict[str, str]:
    from tests.catalogue import standard_catalogue

    return envmod.worker_bench_environment(
        name=QUEUE,
        database=DATABASE,
        redis_db=REDIS_DB,
        var=RUN_VAR,
        catalogue=standard_catalogue(),
        extra={"ASSENT_WEBHOOK_ALLOW_LOOPBACK": "1"},
    )


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from config.celery import app

        log_file = (RUN_VAR / "worker.log").open("ab")
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-l", "warning"]
        command += ["-Q", QUEUE, "--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.process = subprocess.Popen(command, cwd=PROJECT, env=self.env, stdout=log_file, stderr=log_file)
        started = time.monotonic()
        while time.monotonic() - started < 60:
            if app.control.ping(timeout=0.2):
                return
        raise RuntimeError("the worker did not start; see var/bench/webhooks/worker.log")

    def cpu_seconds(self) -> float:
        """User and system CPU of the worker process so far (solo pool: the one process does all the work)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def subscribe(receiver: Any, path: str) -> None:
    from consent.clients import client_create
    from consent.webhooks.subscriptions import subscription_create

    client, _key = client_create(name=f"bench{path.replace('/', '-')}", scopes=["webhooks:manage"], purposes=[])
    created = subscription_create(client_id=client.pk, url=receiver.url(path), events=["*"])
    receiver.secrets[path] = created.secret


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def phase_latency(receiver: Any, count: int) -> dict[str, Any]:
    from rest_framework.test import APIClient

    from consent.clients import client_create

    subscribe(receiver, "/latency")
    _, key = client_create(name="webhooks-bench", scopes=["consent:write"], purposes=[])
    http = APIClient()
    http.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    base = {"purpose": "newsletter", "channel": "sms", "source": "webshop"}
    latencies: list[float] = []
    worker = Worker(dict(os.environ))
    worker.start()
    try:
        for n in range(count + 20):
            email = f"latency-{n}@example.de"
            grant = {**base, "subject": {"email": email}, "action": "grant", "notice_version": "2026-01"}
            assert http.post("/api/v1/consents", grant, format="json").status_code == 201
            withdrawal = {**base, "subject": {"email": email}, "action": "withdraw"}
            response = http.post("/api/v1/consents", withdrawal, format="json")
            accepted = time.time()
            assert response.status_code == 201, response.content
            event = response.json()["event"]
            deadline = time.monotonic() + 30
            while True:
                arrived = [r for r in receiver.at("/latency")[-3:] if r.payload and r.payload["data"]["event"] == event]
                if arrived:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"withdrawal {n} was not received in 30 s")
                time.sleep(0.0005)
            if n >= 20:  # warm-up
                latencies.append(arrived[0].at - accepted)
    finally:
        worker.stop()
    result = {
        "count": len(latencies),
        "p50_seconds": percentile(latencies, 0.5),
        "p99_seconds": percentile(latencies, 0.99),
        "max_seconds": max(latencies),
        "target_p99_seconds": 1.0,
    }
    log(
        f"latency: withdrawal accepted -> webhook received: p50 {result['p50_seconds'] * 1000:.0f} ms, "
        f"p99 {result['p99_seconds'] * 1000:.0f} ms over {len(latencies)} (target p99 < 1 s)"
    )
    return result


def phase_throughput(receiver: Any, deliveries: int) -> dict[str, Any]:
    from datetime import timedelta

    from django.db.models import Max, Min
    from django.utils import timezone

    from config.celery import app
    from consent.ledger.recording import ConsentCommand
    from consent.models import WebhookDelivery
    from consent.services import consent_record
    from consent.task_names import DELIVER_WEBHOOKS
    from subjects.identity import parse_reference

    subscribe(receiver, "/one")
    subscribe(receiver, "/two")
    events = deliveries // 2
    log(f"throughput: writing {events:,} consent events for 2 endpoints while no worker runs")
    WebhookDelivery.objects.all().delete()
    for n in range(events):
        consent_record(
            command=ConsentCommand(
                reference=parse_reference({"email": f"tp-{n % 500}@example.de"}),
                purpose="newsletter",
                channel="sms",
                action="grant" if n // 500 % 2 == 0 else "withdraw",
                notice_version="2026-01",
                source="webshop",
            )
        )
    total = WebhookDelivery.objects.count()
    # Held back while the worker starts (its start-up CPU is not the deliveries'), then all due at once. The messages
    # queued by the writes find nothing due; one more after the release starts the sending.
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() + timedelta(hours=1))
    worker = Worker(dict(os.environ))
    worker.start()
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    while broker.llen(QUEUE):
        time.sleep(0.1)
    time.sleep(1.0)  # the last queued messages, each finding nothing due, are done
    cpu_before = worker.cpu_seconds()
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    app.signature(DELIVER_WEBHOOKS).apply_async()
    try:
        deadline = time.monotonic() + 600
        while WebhookDelivery.objects.exclude(status="delivered").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("deliveries did not finish in 10 minutes")
            time.sleep(0.2)
        cpu = worker.cpu_seconds() - cpu_before
    finally:
        worker.stop()
    span = WebhookDelivery.objects.aggregate(first=Min("first_attempt_at"), last=Max("delivered_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    result = {
        "deliveries": total,
        "seconds": seconds,
        "per_second": total / seconds,
        "target_per_second": 500,
        "worker_cpu_ms_per_delivery": cpu * 1000 / total,
    }
    log(
        f"throughput: {total:,} deliveries in {seconds:.2f} s with one worker: {result['per_second']:.0f}/s "
        f"(target >= 500); worker CPU {result['worker_cpu_ms_per_delivery']:.2f} ms per delivery"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--withdrawals", type=int, default=1000)
    parser.add_argument("--deliveries", type=int, default=5000)
    parser.add_argument("--only", default="latency,throughput")
    args = parser.parse_args()
    only = set(args.only.split(","))
    setup_environment()
    from tests.webhook_receiver import webhook_receiver

    results: dict[str, Any] = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    with webhook_receiver() as receiver:
        if "latency" in only:
            results["latency"] = phase_latency(receiver, args.withdrawals)
        if "throughput" in only:
            results["throughput"] = phase_throughput(receiver, args.deliveries)
    (VAR / "webhooks.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
