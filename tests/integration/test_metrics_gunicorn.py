"""/metrics under gunicorn with several workers (issue 15): prometheus-client's multi-process mode adds up what each
worker process counted, so a scrape answered by any one worker sees all the traffic; the probes answer there too."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.catalogue import standard_catalogue
from tests.factories import ApiClientFactory, apply_catalogue
from tests.integration.processes import Gunicorn

TOKEN = "gunicorn-metrics-token"
CHECKS = 40


@pytest.fixture
def server(transactional_db: None, tmp_path: Path) -> Iterator[Gunicorn]:
    env = {"ASSENT_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    gunicorn = Gunicorn(tmp_path / "gunicorn.log", workers=3, env=env)
    gunicorn.start()
    yield gunicorn
    gunicorn.stop()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_scrape_adds_up_every_gunicorn_worker(server: Gunicorn, tmp_path: Path) -> None:
    apply_catalogue(standard_catalogue())
    _, key = ApiClientFactory(name="gunicorn-metrics", scopes=["consent:check"])
    body: dict[str, Any] = {"subject": {"email": "nobody@example.de"}, "purpose": "newsletter", "channel": "sms"}
    counters = tmp_path / "prometheus"

    def check(_: int) -> None:
        with httpx.Client(base_url=server.base, timeout=30) as http:
            answer = http.post("/api/v1/consents/check", json=body, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            assert answer.headers["X-Request-ID"]

    # Which idle worker accepts a connection is the kernel's choice, and it may pick the same one every time (a loop of
    # this test once saw all 40 sequential checks answered by one worker): checks go out in concurrent batches until
    # at least two workers have counted some, so that the sum below is a sum.
    sent = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        while sent < CHECKS or (len(list(counters.glob("counter_*.db"))) < 2 and sent < 20 * CHECKS):
            list(pool.map(check, range(12)))
            sent += 12
    counting = len(list(counters.glob("counter_*.db")))  # one file per process that counted
    assert counting >= 2, f"one worker answered all {sent} checks: the sum would prove nothing"

    with httpx.Client(base_url=server.base, timeout=30) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").json()["checks"]["database"] == "ok"  # no worker runs here: 503, still JSON
        scraped = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert scraped.status_code == 200
    found = samples(scraped.text)
    route = (("method", "POST"), ("route", "api/v1/consents/check"), ("status", "200"))
    assert found[("assent_http_requests_total", route)] == sent
    reason = (("action", "check"), ("channel", "sms"), ("purpose", "newsletter"), ("reason", "unknown_subject"))
    assert found[("assent_decisions_total", reason)] == sent
    print(f"\nscrape under gunicorn (3 workers): {len(scraped.content)} bytes, {counting} counting, {sent} sent")
