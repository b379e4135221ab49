"""Settings of the benchmark server: the product's own settings, with a urlconf that adds the floor view.

Used only by `python -m tests.benchmarks.run` (DJANGO_SETTINGS_MODULE=tests.benchmarks.settings); the product's
URLs, middleware, database and cache settings are the same, so the floor and the checks meet the same stack.

BENCH_KNOBS (from `run --knobs`) tries database settings the product might adopt, for floor and check alike:
- `ssb`: psycopg server-side binding (parameters sent apart from the SQL; psycopg prepares statements it sees
  repeatedly on a connection, so PostgreSQL plans them once);
- `nohealth`: CONN_HEALTH_CHECKS off (no `SELECT 1` round trip at the first query of every request);
- `nojit`: PostgreSQL's JIT off for the app's connections (it compiles large bulk statements for ~100 ms)."""

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES

ROOT_URLCONF = "tests.benchmarks.floor_urls"

_knobs = {k.strip() for k in os.environ.get("BENCH_KNOBS", "").split(",") if k.strip()}
_unknown = _knobs - {"ssb", "nohealth", "nojit"}
if _unknown:
    raise ValueError(f"BENCH_KNOBS: unknown {sorted(_unknown)}")
_options = DATABASES["default"].setdefault("OPTIONS", {})
if "ssb" in _knobs:
    _options["server_side_binding"] = True
if "nohealth" in _knobs:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
if "nojit" in _knobs:
    _options["options"] = (_options.get("options", "") + " -c jit=off").strip()
