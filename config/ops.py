"""What an operator's machines ask: /healthz (the process answers), /readyz (it can do its work), /metrics.

A view of our own rather than django-health-check: the checks Assent needs are six lines each (a database round
trip, two Redis PINGs, the migration plan, a heartbeat key, the catalogue), and django-health-check would add an
app, its own URL conf and HTML pages, and still need custom checks for the heartbeat and the catalogue.

/readyz is meant to be probed every second: its answer is kept for one second per process, and the migration plan
(tens of milliseconds to build) is asked only until it is empty once (a process's code never gains a migration).
Neither endpoint reads or shows personal data; neither needs a key. /metrics needs ASSENT_METRICS_TOKEN as a
Bearer token and answers 404 while that is unset (README).
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from celery import signals
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from consent.catalogue.snapshot import catalogue_snapshot
from consent.models import SendJob
from consent.webhooks.models import WebhookDelivery
from subjects.models import RightsRequest

HEARTBEAT_KEY = "ops:worker-heartbeat"
HEARTBEAT_MAX_AGE = 60.0  # seconds; a worker writes at most every HEARTBEAT_EVERY while it runs tasks
HEARTBEAT_EVERY = 10.0
FAILURES_KEY = "ops:task-failures"  # a Redis hash: task name -> failures, shared by every worker process
READY_CACHE_SECONDS = 1.0


# --- /healthz ---------------------------------------------------------------------------------------------------
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


# --- /readyz ----------------------------------------------------------------------------------------------------
def _redis_of(url: str) -> redis.Redis | None:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


_clients: dict[str, redis.Redis | None] = {}


def redis_client(url: str) -> redis.Redis | None:
    """One client (and connection pool) per URL and process; None for a broker that is not Redis."""
    if url not in _clients:
        _clients[url] = _redis_of(url)
    return _clients[url]


def _check_database() -> str:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


_migrated = threading.Event()


def _check_migrations() -> str:
    if not _migrated.is_set():
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise RuntimeError("migrations not applied")
        _migrated.set()
    return "ok"


def _check_redis() -> str:
    if not settings.REDIS_URL:
        return "skipped"  # the demo keeps its cache in the process
    client = redis_client(settings.REDIS_URL)
    if client is None:
        return "skipped"
    client.ping()
    return "ok"


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if settings.CELERY_TASK_ALWAYS_EAGER or url.startswith("memory://"):
        return "skipped"  # tasks run in the process (the demo)
    client = redis_client(url)
    if client is not None:
        client.ping()
        return "ok"
    from config.celery import app  # AMQP: a connection of Celery's own, a few ms, at most once a second

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=1)
    return "ok"


def _check_worker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "skipped"
    beat = cache.get(HEARTBEAT_KEY)
    if beat is None or time.time() - float(beat) > HEARTBEAT_MAX_AGE:
        raise RuntimeError("no worker heartbeat in the last minute")
    return "ok"


def _check_catalogue() -> str:
    if not catalogue_snapshot().purposes:
        raise RuntimeError("the catalogue has no purposes")
    return "ok"


CHECKS: dict[str, Callable[[], str]] = {
    "database": _check_database,
    "migrations": _check_migrations,
    "redis": _check_redis,
    "broker": _check_broker,
    "worker": _check_worker,
    "catalogue": _check_catalogue,
}

_ready_lock = threading.Lock()
_ready: tuple[float, dict[str, str]] | None = None


def readiness() -> dict[str, str]:
    """Each check's answer, `ok`, `skipped` or `fail`; kept READY_CACHE_SECONDS per process. A failing check
    is named, never its error text (that may hold a host name or a password in a URL)."""
    global _ready
    now = time.monotonic()
    with _ready_lock:
        if _ready is not None and now - _ready[0] < READY_CACHE_SECONDS:
            return _ready[1]
        results: dict[str, str] = {}
        for name, check in CHECKS.items():
            try:
                results[name] = check()
            except Exception:  # noqa: BLE001 - any failure of a dependency means "not ready", never a 500
                results[name] = "fail"
        _ready = (now, results)
        return results


def readiness_forget() -> None:
    """Forget the kept answer (tests, after changing what a check reads)."""
    global _ready
    with _ready_lock:
        _ready = None


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = readiness()
    failed = sorted(name for name, result in checks.items() if result == "fail")
    body: dict[str, Any] = {"status": "fail" if failed else "ok", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


# --- the worker's side: heartbeat and failures ------------------------------------------------------------------
_last_beat = [0.0]


def heartbeat_write(*, force: bool = False) -> None:
    now = time.time()
    if force or now - _last_beat[0] >= HEARTBEAT_EVERY:
        _last_beat[0] = now
        cache.set(HEARTBEAT_KEY, now, timeout=int(HEARTBEAT_MAX_AGE * 5))


@signals.worker_ready.connect
def _worker_ready(**_: Any) -> None:
    heartbeat_write(force=True)


@signals.task_postrun.connect
def _task_ran(task: Any = None, **_: Any) -> None:
    if not getattr(getattr(task, "request", None), "is_eager", False):
        try:
            heartbeat_write()
        except Exception:  # noqa: BLE001 - a heartbeat lost to a Redis hiccup is written after the next task
            return


@signals.task_failure.connect
def _task_failed(sender: Any = None, **_: Any) -> None:
    client = redis_client(settings.REDIS_URL) if settings.REDIS_URL else None
    if client is not None:
        try:
            client.hincrby(_failures_key(), getattr(sender, "name", "unknown"), 1)
        except redis.RedisError:
            return


def _failures_key() -> str:
    """The hash's key in the cache's namespace (CACHE_KEY_PREFIX, version), so it goes with the cache's keys."""
    return str(cache.make_key(FAILURES_KEY))


# --- /metrics ---------------------------------------------------------------------------------------------------
class StateCollector(Collector):
    """What the database and the broker know, read at scrape time in a handful of indexed aggregates."""

    def collect(self) -> Iterator[Any]:
        now = timezone.now()
        yield from _rights_metrics(now)
        yield from _webhook_metrics(now)
        yield from _send_job_metrics()
        yield from _celery_metrics()


def _rights_metrics(now: Any) -> Iterator[Any]:
    open_requests = RightsRequest.objects.filter(status__in=RightsRequest.OPEN_STATUSES)
    by_kind = GaugeMetricFamily(
        "assent_rights_requests_open", "Open rights requests by kind and status.", labels=["kind", "status"]
    )
    for row in open_requests.values("kind", "status").annotate(n=Count("id")).order_by():
        by_kind.add_metric([row["kind"], row["status"]], row["n"])
    yield by_kind
    summary = open_requests.aggregate(
        oldest=Min("received_at"),
        overdue=Count("id", filter=Q(extended_until__lt=now) | Q(extended_until__isnull=True, due_at__lt=now)),
    )
    oldest = summary["oldest"]
    yield GaugeMetricFamily(
        "assent_rights_request_oldest_open_age_seconds",
        "Age of the oldest open rights request (0: none open).",
        value=(now - oldest).total_seconds() if oldest else 0.0,
    )
    yield GaugeMetricFamily(
        "assent_rights_requests_overdue",
        "Open rights requests past their (extended) due date.",
        value=summary["overdue"],
    )


def _webhook_metrics(now: Any) -> Iterator[Any]:
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING)
    due = pending.filter(next_attempt_at__lte=now).aggregate(oldest=Min("event__created_at"), n=Count("id"))
    oldest = due["oldest"]
    yield GaugeMetricFamily(
        "assent_outbox_lag_seconds",
        "Age of the oldest event with a delivery due and not yet acknowledged (0: none).",
        value=max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
    )
    yield GaugeMetricFamily("assent_outbox_due", "Webhook deliveries due and not yet acknowledged.", value=due["n"])
    yield GaugeMetricFamily(
        "assent_webhook_dead_letters",
        "Webhook deliveries given up after 24 hours (dead letters, replayable in the admin).",
        value=WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DEAD).count(),
    )


def _send_job_metrics() -> Iterator[Any]:
    jobs = GaugeMetricFamily("assent_send_jobs", "Send jobs by status.", labels=["status"])
    for row in SendJob.objects.values("status").annotate(n=Count("id")).order_by():
        jobs.add_metric([row["status"]], row["n"])
    yield jobs
    active = SendJob.objects.filter(status__in=[SendJob.Status.QUEUED, SendJob.Status.RUNNING]).aggregate(
        total=Sum("total"), processed=Sum("processed")
    )
    yield GaugeMetricFamily(
        "assent_send_job_lines", "Lines of queued and running send jobs.", value=active["total"] or 0
    )
    yield GaugeMetricFamily(
        "assent_send_job_lines_processed",
        "Lines of queued and running send jobs gated so far (progress: this over assent_send_job_lines).",
        value=active["processed"] or 0,
    )


def _celery_metrics() -> Iterator[Any]:
    broker = redis_client(settings.CELERY_BROKER_URL)
    if broker is not None:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        depth = GaugeMetricFamily(
            "assent_celery_queue_depth", "Messages waiting in the task queue (Redis LLEN).", labels=["queue"]
        )
        depth.add_metric([queue], int(broker.llen(queue)))
        yield depth
    cache_redis = redis_client(settings.REDIS_URL) if settings.REDIS_URL else None
    if cache_redis is not None:
        failures = CounterMetricFamily(
            "assent_celery_task_failures", "Tasks that raised, by task name (all workers).", labels=["task"]
        )
        for name, count in sorted(cache_redis.hgetall(_failures_key()).items()):
            failures.add_metric([name.decode() if isinstance(name, bytes) else str(name)], int(count))
        yield failures


_state_registry = CollectorRegistry(auto_describe=False)
_state_registry.register(StateCollector())


def metrics_text() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    return counted + generate_latest(_state_registry)


def _token_matches(request: HttpRequest, token: str) -> bool:
    given = request.headers.get("Authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.ASSENT_METRICS_TOKEN
    if not token:
        return HttpResponse("Not found\n", status=404, content_type="text/plain")
    if not _token_matches(request, token):
        response = HttpResponse("Bearer token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4; charset=utf-8")
