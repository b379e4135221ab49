"""CPU accounting around a measurement, from /proc (Linux): where the machine's two cores went.

- app: the gunicorn workers; db: PostgreSQL processes (our database's backends, plus the server's own
  background processes such as the WAL writer); redis; client: the load generator (a child of this process);
- other: everything else the machine did meanwhile (other sessions' tests, builds): a noise indicator."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_times() -> dict[int, tuple[str, str, float]]:
    """pid -> (comm, cmdline, cpu seconds)."""
    out: dict[int, tuple[str, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, cmdline, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _machine_busy() -> float:
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / _TICK


def _children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Snapshot:
    procs: dict[int, tuple[str, str, float]]
    busy: float
    children: float


def snapshot() -> Snapshot:
    return Snapshot(_proc_times(), _machine_busy(), _children())


def usage(before: Snapshot, after: Snapshot, *, app_pids: set[int], database: str) -> dict[str, float]:
    """CPU seconds per group between two snapshots."""
    groups = {"app": 0.0, "db": 0.0, "redis": 0.0}
    for pid, (comm, cmdline, seconds) in after.procs.items():
        start = before.procs.get(pid, (comm, cmdline, 0.0))[2]
        delta = max(0.0, seconds - start)
        if pid in app_pids:
            groups["app"] += delta
        elif comm == "postgres" or cmdline.startswith("postgres"):
            # Backends of other databases are someone else's work.
            if ": postgres " in cmdline and f" {database} " not in cmdline:
                continue
            groups["db"] += delta
        elif comm.startswith("redis-server"):
            groups["redis"] += delta
    groups["client"] = max(0.0, after.children - before.children)
    groups["machine"] = max(0.0, after.busy - before.busy)
    groups["other"] = max(0.0, groups["machine"] - groups["app"] - groups["db"] - groups["redis"] - groups["client"])
    return groups


def machine_busy_share(seconds: float = 1.0) -> float:
    """The share of all cores busy over the next `seconds` (0..1)."""
    import time

    before = _machine_busy()
    time.sleep(seconds)
    return (_machine_busy() - before) / ((os.cpu_count() or 1) * seconds)


def wait_quiet(max_seconds: float, *, threshold: float = 0.15, calm: int = 3) -> tuple[bool, float]:
    """Wait until the machine has been below `threshold` busy for `calm` seconds in a row, at most max_seconds.
    Returns (quiet, the last share seen)."""
    import time

    deadline = time.monotonic() + max_seconds
    streak, share = 0, 1.0
    while time.monotonic() < deadline:
        share = machine_busy_share(1.0)
        streak = streak + 1 if share < threshold else 0
        if streak >= calm:
            return True, share
    return False, share
