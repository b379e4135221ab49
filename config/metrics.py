"""The counters and histograms Assent's processes keep (prometheus-client), shown at /metrics (config/ops.py).

Only what a process counts as it goes lives here: requests, decisions, consent events. What the database or the
broker already knows (open rights requests, queue depth, outbox lag, dead letters, send jobs, task failures) is
read at scrape time instead, so it is the same whichever process answers the scrape.

Under gunicorn each worker is its own process: with PROMETHEUS_MULTIPROC_DIR set (before the process starts;
gunicorn.conf.py at the repository root clears it when the arbiter starts and drops a dead worker's gauges),
prometheus-client keeps the values in files there and a scrape adds up every worker's. This module imports
nothing of Assent's, so the domain may count without importing the edges.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "assent_http_requests",
    "HTTP requests answered, by route (the URL pattern, never the path), method and status.",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "assent_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DECISIONS = Counter(
    "assent_decisions",
    "Policy decisions of checks and sends, by purpose, channel, action and reason (allowed ones included).",
    ["purpose", "channel", "action", "reason"],
)
CONSENT_EVENTS = Counter(
    "assent_consent_events",
    "Consent events recorded through the API, the portal and the pages reached from e-mails, by action.",
    ["action"],
)


def decisions_count(*, purpose: str, channel: str, action: str, reasons: Iterable[str]) -> None:
    """Count one call's decisions: a tally first, then one increment per reason. A bulk check of 10,000 people
    costs a Counter over 10,000 reasons (about 1 ms) and a handful of increments, not 10,000 increments (each takes
    a lock, and in multi-process mode writes a memory-mapped file)."""
    for reason, count in Tally(reasons).items():  # a StrEnum member tallies as fast as a str and labels as its value
        DECISIONS.labels(purpose, channel, action, str(reason)).inc(count)
