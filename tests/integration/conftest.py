"""A real Celery worker process against the real broker (Redis) and the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.celery import app
from tests.integration.processes import Worker, wait_for

__all__ = ["Worker", "wait_for", "worker"]


@pytest.fixture
def worker(transactional_db: None, tmp_path: Path) -> Iterator[Worker]:
    app.control.purge()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    w = Worker(mail_dir, tmp_path / "worker.log")
    w.start()
    yield w
    w.stop()
