"""Side by side with Fides (issue 12): the figures measured on 2026-11-28 for Fides 2.86.2 in one uvicorn process
on this kind of machine, and Assent's own measure of the same three things, run here:

- consent save: POST /api/v1/consents (hash chain, encryption, idempotency included) at 1 and 8 clients;
- read by identity: the person's consent for a purpose looked up by e-mail (POST /api/v1/consents/check), at 1 and
  8 clients; Fides' read returns the stored preferences of an identity, Assent's answers the policy's decision on
  them, which reads the same state and more;
- a small access request end to end with a worker: tests/benchmarks/rights_bench.py's `small` figure (median from
  POST /api/v1/requests to completed), run in its own process on its own database.

Not in `make test`: `python -m tests.benchmarks.run --only fides` (part of `make bench`)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from tests.benchmarks import environment as envmod
from tests.benchmarks.environment import VAR, log

# Fides 2.86.2, one uvicorn process, measured here on 2026-11-28 (the figures).
FIDES = {"save_rps_8": 111.0, "read_rps_8": 326.0, "small_access_median_s": 0.27}
CLIENTS = (1, 8)


def phase_fides(keys: dict[str, str], token: str, args: argparse.Namespace, workers: int) -> dict[str, Any]:
    from tests.benchmarks.run import _load  # the same load clients as the other phases

    figures: dict[str, Any] = {"fides": FIDES}
    with envmod.gunicorn(envmod.RUN_DB, keys, knobs=args.knobs, workers=workers, tag="fides") as server:
        for clients in CLIENTS:
            run_args = argparse.Namespace(**{**vars(args), "connections": clients})
            for name, kind, path, seed in (
                ("save", "write", "/api/v1/consents", 90),
                ("read", "check", "/api/v1/consents/check", 91),
            ):
                _load(server, kind, path, token, run_args, args.warmup, seed)
                result = _load(server, kind, path, token, run_args, args.duration, seed + 10)
                if result.errors > result.requests // 100:
                    raise RuntimeError(f"fides {name} at {clients}: {result.errors} of {result.requests} failed")
                figures[f"{name}_rps_{clients}"] = round(result.rps, 1)
                figures[f"{name}_p50_ms_{clients}"] = round(result.p50_ms, 2)
                figures[f"{name}_errors_{clients}"] = result.errors
                log(f"  fides: {name} at {clients} clients {result.rps:,.0f} req/s p50 {result.p50_ms:.1f} ms")
    log("  fides: small access requests (rights_bench --only small)")
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.rights_bench", "--only", "small"],
        cwd=envmod.PROJECT,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    rights_file = VAR / "rights.json"
    if done.returncode == 0 and rights_file.exists():
        small = json.loads(rights_file.read_text()).get("small", {})
        figures["small_access_median_s"] = small.get("median_seconds")
    else:
        log(f"  small access requests could not run: {done.stderr.strip()[-600:]}")
        figures["small_access_median_s"] = None
    return figures


def report_lines(results: dict[str, Any]) -> list[str]:
    f = results.get("fides")
    if not f:
        return []
    pad = " " * 15
    lines = ["side by side with Fides 2.86.2 (one uvicorn process, measured 2026-11-28) | Assent here:"]
    for name, label in (("save", "consent save"), ("read", "read by identity")):
        ours = " / ".join(f"{f.get(f'{name}_rps_{c}', 0):,.0f} req/s at {c}" for c in CLIENTS)
        theirs = FIDES[f"{name}_rps_8"]
        ratio = f.get(f"{name}_rps_8", 0) / theirs
        lines.append(f"{pad}{label:<17}: Fides {theirs:,.0f} req/s at 8 | Assent {ours} ({ratio:.1f}x at 8)")
    small = f.get("small_access_median_s")
    ours = f"{small * 1000:,.0f} ms" if small else "not measured"
    theirs = FIDES["small_access_median_s"] * 1000
    lines.append(f"{pad}small access     : Fides {theirs:,.0f} ms median | Assent {ours} median")
    return lines
