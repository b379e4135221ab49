"""Sampling profiles of the gunicorn workers under load with py-spy (`pip install py-spy`), when it is found on
PATH, beside the interpreter, or in BENCH_PY_SPY. The raw (collapsed) stacks are kept in var/bench/, and a
summary of the costliest functions (inclusive and self, in % of busy samples) is printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.benchmarks.environment import VAR

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    for candidate in (
        os.environ.get("BENCH_PY_SPY"),
        str(Path(sys.executable).parent / "py-spy"),
        shutil.which("py-spy"),
        "/tmp/bench-tools/bin/py-spy",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def start(pid: int, seconds: float, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = VAR / f"profile-{name}.txt"
    cmd = [
        py_spy() or "py-spy",
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--format",
        "raw",
        "--rate",
        "250",
        "--duration",
        str(max(1, round(seconds))),
        "--nonblocking",
        "-o",
        str(out),
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), out


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({path})"


def summarise(path: Path, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(f) for f in stack.split(";")]
        # Only the workers' request handling (the arbiter and idle waits in accept/select are not cost).
        if not any("handle_request" in f for f in frames):
            continue
        count = int(count_text)
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return "  (no samples)"
    lines = [f"  {total} wall-clock samples in request handling (py-spy, idle excluded)", "  inclusive:"]
    # Frames in every sample (gunicorn's loop, Django's handler chain) say nothing: left out.
    telling = [(f, n) for f, n in inclusive.most_common() if n < 0.97 * total]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in telling[:top]]
    lines += ["  self:"]
    lines += [f"    {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(lines)
