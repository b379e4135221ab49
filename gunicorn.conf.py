"""gunicorn reads this file from the working directory by default: the hooks of prometheus-client's multi-process
mode (README, "Metrics"). Without PROMETHEUS_MULTIPROC_DIR they do nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    """Values left by a previous run's workers would be added to this run's: the directory starts empty."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges go; its counters stay (they are totals)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
