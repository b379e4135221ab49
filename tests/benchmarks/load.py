"""Closed-loop load with keep-alive connections: wrk (with Lua for rotating POST bodies) when it is installed
(`apt-get install wrk`), else several Python processes with several connections each.

Two workloads: `check` (a single check, or the floor, for a random seeded subject) and `write` (a consent
event: grants and withdrawals for random seeded subjects, a share of first writes for new people)."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.environment import VAR

CHECK_PURPOSE, CHECK_CHANNEL = "newsletter", "email"
NOTICE = "2026-01"
# The writes' mix (cumulative shares): first writes for new people, SMS grants, e-mail withdrawals, and e-mail
# grants, which start a double opt-in (a Confirmation row and a queued mail).
WRITE_MIX = (("new", 0.10), ("grant_sms", 0.55), ("withdraw_email", 0.90), ("grant_email", 1.0))


@dataclass
class LoadResult:
    requests: int
    seconds: float
    errors: int  # non-2xx answers and socket errors
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    tool: str
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU per request by group (filled by the runner)
    cpu_busy: float = 0.0  # the machine's CPU use during the run, 0..1

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rps": round(self.rps, 1)}


def wrk_path() -> str | None:
    """wrk if installed, unless BENCH_LOAD=python asks for the Python client."""
    if os.environ.get("BENCH_LOAD") == "python":
        return None
    return shutil.which("wrk")


# ---------------------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------------------
_LUA_COMMON = r"""
local started = 0
function setup(thread)
  thread:set("tid", started)
  started = started + 1
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer __TOKEN__"
local N = __N__
function init(args)
  math.randomseed(tonumber(args[1] or "1") * 7919 + tid * 104729)
  counter = 0
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"mean":%f,"max":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""

_LUA_CHECK = (
    _LUA_COMMON
    + r"""
request = function()
  local body = string.format(
    '{"subject":{"email":"bench%d@example.org"},"purpose":"__PURPOSE__","channel":"__CHANNEL__"}',
    math.random(0, N - 1))
  return wrk.format(nil, "__PATH__", nil, body)
end
"""
)

_LUA_WRITE = (
    _LUA_COMMON
    + r"""
local fmt = string.format
request = function()
  local r = math.random()
  local body
  if r < __NEW__ then
    counter = counter + 1
    body = fmt('{"subject":{"email":"new-%s-%d-%d@example.org"},"purpose":"newsletter","channel":"sms",' ..
               '"action":"grant","notice_version":"__NOTICE__","source":"webshop"}', "__RUN__", tid, counter)
  elseif r < __GRANT_SMS__ then
    body = fmt('{"subject":{"email":"bench%d@example.org"},"purpose":"newsletter","channel":"sms",' ..
               '"action":"grant","notice_version":"__NOTICE__","source":"webshop"}', math.random(0, N - 1))
  elseif r < __WITHDRAW__ then
    body = fmt('{"subject":{"email":"bench%d@example.org"},"purpose":"newsletter","channel":"email",' ..
               '"action":"withdraw","source":"webshop"}', math.random(0, N - 1))
  else
    body = fmt('{"subject":{"email":"bench%d@example.org"},"purpose":"newsletter","channel":"email",' ..
               '"action":"grant","notice_version":"__NOTICE__","source":"webshop",' ..
               '"evidence":{"ip":"192.0.2.1","form":"checkout"}}', math.random(0, N - 1))
  end
  return wrk.format(nil, "__PATH__", nil, body)
end
"""
)


def _lua(kind: str, *, path: str, token: str, subjects: int, run_id: str) -> Path:
    mix = dict(WRITE_MIX)
    text = _LUA_CHECK if kind == "check" else _LUA_WRITE
    for name, value in {
        "__TOKEN__": token,
        "__N__": str(subjects),
        "__PATH__": path,
        "__PURPOSE__": CHECK_PURPOSE,
        "__CHANNEL__": CHECK_CHANNEL,
        "__NOTICE__": NOTICE,
        "__RUN__": run_id,
        "__NEW__": str(mix["new"]),
        "__GRANT_SMS__": str(mix["grant_sms"]),
        "__WITHDRAW__": str(mix["withdraw_email"]),
    }.items():
        text = text.replace(name, value)
    VAR.mkdir(parents=True, exist_ok=True)
    target = VAR / f"{kind}-{path.strip('/').replace('/', '_')}.lua"
    target.write_text(text)
    return target


def run_wrk(
    base: str,
    kind: str,
    *,
    path: str,
    token: str,
    subjects: int,
    connections: int,
    seconds: float,
    threads: int = 2,
    seed: int = 1,
    run_id: str = "r",
) -> LoadResult:
    script = _lua(kind, path=path, token=token, subjects=subjects, run_id=run_id)
    return run_wrk_script(script, base + path, connections=connections, seconds=seconds, threads=threads, seed=seed)


def run_wrk_script(
    script: Path, url: str, *, connections: int, seconds: float, threads: int = 2, seed: int = 1
) -> LoadResult:
    """wrk with a Lua script that ends with _LUA_COMMON's `done` (the WRKJSON line); `seed` is its first arg."""
    cmd = [
        wrk_path() or "wrk",
        "-t",
        str(min(threads, connections)),  # wrk refuses more threads than connections (a 1-client measure)
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
        "--",
        str(seed),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
    if out.returncode or not match:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout[-1000:]} {out.stderr[-1000:]}")
    data = json.loads(match.group(1))
    errors = data["connect"] + data["read"] + data["write"] + data["status"] + data["timeout"]
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        mean_ms=data["mean"] / 1000,
        max_ms=data["max"] / 1000,
        tool="wrk",
    )


# ---------------------------------------------------------------------------------------------------------
# Python fallback: processes x threads, one keep-alive connection per thread
# ---------------------------------------------------------------------------------------------------------
def _body(kind: str, rng: random.Random, subjects: int, tag: str, counter: list[int]) -> bytes:
    i = rng.randrange(subjects)
    if kind == "check":
        return json.dumps(
            {"subject": {"email": f"bench{i}@example.org"}, "purpose": CHECK_PURPOSE, "channel": CHECK_CHANNEL}
        ).encode()
    r = rng.random()
    mix = dict(WRITE_MIX)
    if r < mix["new"]:
        counter[0] += 1
        body: dict[str, Any] = {
            "subject": {"email": f"new-{tag}-{counter[0]}@example.org"},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": NOTICE,
            "source": "webshop",
        }
    elif r < mix["grant_sms"]:
        body = {
            "subject": {"email": f"bench{i}@example.org"},
            "purpose": "newsletter",
            "channel": "sms",
            "action": "grant",
            "notice_version": NOTICE,
            "source": "webshop",
        }
    elif r < mix["withdraw_email"]:
        body = {
            "subject": {"email": f"bench{i}@example.org"},
            "purpose": "newsletter",
            "channel": "email",
            "action": "withdraw",
            "source": "webshop",
        }
    else:
        body = {
            "subject": {"email": f"bench{i}@example.org"},
            "purpose": "newsletter",
            "channel": "email",
            "action": "grant",
            "notice_version": NOTICE,
            "source": "webshop",
            "evidence": {"ip": "192.0.2.1", "form": "checkout"},
        }
    return json.dumps(body).encode()


def _py_process(args: tuple[int, str, str, str, str, int, int, float, int, str]) -> tuple[list[int], int]:
    port, host, kind, path, token, subjects, threads, seconds, seed, run_id = args
    latencies: list[int] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        counter = [0]
        mine: list[int] = []
        bad = 0
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.monotonic() < deadline:
            body = _body(kind, rng, subjects, f"{run_id}-{seed}-{n}", counter)
            t0 = time.perf_counter_ns()
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                if response.status >= 300:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            mine.append((time.perf_counter_ns() - t0) // 1000)
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, errors[0]


def run_python(
    base: str,
    kind: str,
    *,
    path: str,
    token: str,
    subjects: int,
    connections: int,
    seconds: float,
    processes: int = 4,
    seed: int = 1,
    run_id: str = "r",
) -> LoadResult:
    port = int(base.rsplit(":", 1)[1])
    per = max(1, connections // processes)
    context = multiprocessing.get_context("fork")
    started = time.perf_counter()
    with context.Pool(processes) as pool:
        parts = pool.map(
            _py_process,
            [
                (port, "127.0.0.1", kind, path, token, subjects, per, seconds, seed * 100 + p, run_id)
                for p in range(processes)
            ],
        )
    elapsed = min(time.perf_counter() - started, seconds + 0.5)
    latencies = sorted(x for part in parts for x in part[0])
    errors = sum(part[1] for part in parts)
    if not latencies:
        raise RuntimeError("the Python load client made no request")

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] / 1000

    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        errors=errors,
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        mean_ms=sum(latencies) / len(latencies) / 1000,
        max_ms=latencies[-1] / 1000,
        tool="python",
    )


def run_load(base: str, kind: str, **kwargs: Any) -> LoadResult:
    if wrk_path():
        kwargs.pop("processes", None)
        return run_wrk(base, kind, **kwargs)
    kwargs.pop("threads", None)
    return run_python(base, kind, **kwargs)
