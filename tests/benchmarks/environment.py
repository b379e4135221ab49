"""The benchmark's environment: keys, the seeded template database, the per-run database and the server.

Nothing here imports Django: the runner drives the project as an operator would, through manage.py and
gunicorn subprocesses, with an environment of its own (its own database, Redis databases and keys)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.catalogue import standard_catalogue

PROJECT = Path(__file__).resolve().parents[2]
VAR = PROJECT / "var" / "bench"
BIN = Path(sys.executable).parent
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")
REDIS_CACHE_DB = 11  # rate-limit counters of the bench server (flushed before each run)
REDIS_BROKER_DB = 12  # confirmation mails the writes enqueue (nobody consumes them; flushed around each run)
# Another work tree on the same server sets BENCH_RUN_DB so that two runs do not drop each other's copy.
RUN_DB = os.environ.get("BENCH_RUN_DB", "assent_bench")
TEMPLATE_PREFIX = "assent_bench_template_"
# The write floor's table (tests/benchmarks/floor_urls.py, bench/floor/write): created by the run on its database,
# not by a migration.
FLOOR_WRITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS bench_floor_write (id bigserial PRIMARY KEY, subject text NOT NULL, "
    "purpose text NOT NULL, channel text NOT NULL, action text NOT NULL, body jsonb NOT NULL, "
    "created_at timestamptz NOT NULL)"
)
# Bump when the seeded data's shape changes (forces a new template).
SEED_VERSION = "3"


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------
# The catalogue: the tests' standard one (tests/catalogue.py, which imports neither pytest nor Django)
# ---------------------------------------------------------------------------------------------------------
def catalogue_document() -> dict[str, Any]:
    return standard_catalogue()


def migration_digests() -> dict[str, str]:
    return {
        str(path.relative_to(PROJECT)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(PROJECT.glob("*/migrations/*.py"))
    }


def seed_identity(subjects: int) -> str:
    """What the seeded rows depend on besides the schema: the catalogue, the seed's shape and the size."""
    digest = hashlib.sha256(json.dumps(catalogue_document(), sort_keys=True).encode())
    digest.update(f"seed-v{SEED_VERSION}:{subjects}".encode())
    return digest.hexdigest()[:16]


def schema_hash(subjects: int) -> str:
    """Migrations, the catalogue and the seed's shape: any change means another template."""
    digest = hashlib.sha256(json.dumps(migration_digests(), sort_keys=True).encode())
    digest.update(seed_identity(subjects).encode())
    return digest.hexdigest()[:10]


def template_name(subjects: int) -> str:
    return f"{TEMPLATE_PREFIX}{schema_hash(subjects)}_{subjects}"


# ---------------------------------------------------------------------------------------------------------
# Keys: generated once per template (the seeded data is encrypted under them), kept in var/bench/
# ---------------------------------------------------------------------------------------------------------
def _key32() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def new_keys() -> dict[str, str]:
    sys.path.insert(0, str(PROJECT))
    from config.env import new_signing_key_pem  # no Django settings needed

    return {
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(40),
        "ASSENT_MASTER_KEYS": f"bench1:{_key32()}",
        "ASSENT_BLIND_INDEX_KEY": _key32(),
        "ASSENT_LEDGER_KEY": _key32(),
        "ASSENT_LINK_KEY": _key32(),
        "ASSENT_SIGNING_KEY": new_signing_key_pem().replace("\n", "\\n"),
    }


def keys_path(template: str) -> Path:
    return VAR / f"{template}.keys.env"


def meta_path(template: str) -> Path:
    return VAR / f"{template}.json"


def write_keys(template: str, keys: dict[str, str]) -> None:
    VAR.mkdir(parents=True, exist_ok=True)
    path = keys_path(template)
    path.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
    path.chmod(0o600)


def read_keys(template: str) -> dict[str, str] | None:
    path = keys_path(template)
    if not path.exists():
        return None
    keys = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep:
            keys[name.strip()] = value
    return keys


def django_env(
    database: str, keys: dict[str, str], *, base_url: str = "http://127.0.0.1:8000", settings: str = "config.settings"
) -> dict[str, str]:
    """The environment an operator would give the project, pointed at the bench's own database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSENT_", "DJANGO_"))}
    env.update(keys)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings,
            "DATABASE_URL": f"{PG_BASE}/{database}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_CACHE_DB}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{REDIS_BROKER_DB}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "ASSENT_BASE_URL": base_url,
            "ASSENT_RATE_LIMIT": "1000000000",
            "ASSENT_VAR_DIR": str(VAR / "run"),
            "DEBUG": "0",
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(PROJECT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
    )
    return env


# ---------------------------------------------------------------------------------------------------------
# PostgreSQL administration
# ---------------------------------------------------------------------------------------------------------
def admin_connect(database: str = "postgres") -> psycopg.Connection[Any]:
    return psycopg.connect(f"{PG_BASE}/{database}", autocommit=True)


def database_exists(name: str) -> bool:
    with admin_connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def list_databases(prefix: str) -> list[str]:
    with admin_connect() as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]).fetchall()
    return [r[0] for r in rows]


def drop_database(name: str) -> None:
    with admin_connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create_database(name: str, template: str | None = None) -> None:
    with admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def manage(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}{result.stdout[-500:]}"
        )
    return result.stdout


def redis_flush(db: int) -> None:
    """FLUSHDB on one of the bench's own Redis databases (never another's)."""
    with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
        sock.sendall(f"*2\r\n$6\r\nSELECT\r\n${len(str(db))}\r\n{db}\r\n*1\r\n$7\r\nFLUSHDB\r\n".encode())
        sock.recv(100)


# ---------------------------------------------------------------------------------------------------------
# The server: gunicorn, sync workers, on a free loopback port
# ---------------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    access_log: Path | None
    workers: int
    env: dict[str, str] = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


@contextmanager
def gunicorn(
    database: str, keys: dict[str, str], *, workers: int, access_log: bool = False, tag: str = "server", knobs: str = ""
) -> Iterator[Server]:
    port = free_port()
    env = django_env(database, keys, base_url=f"http://127.0.0.1:{port}", settings="tests.benchmarks.settings")
    env["BENCH_KNOBS"] = knobs
    VAR.mkdir(parents=True, exist_ok=True)
    log_path = VAR / f"{tag}.log"
    access_path = VAR / f"{tag}.access.log" if access_log else None
    cmd = [
        str(BIN / "gunicorn"),
        "config.wsgi",
        "-w",
        str(workers),
        "-b",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--backlog",
        "2048",
    ]
    if access_path is not None:
        access_path.unlink(missing_ok=True)
        # %(D)s: the server's time for the request in microseconds, %(B)s the response size.
        cmd += ["--access-logfile", str(access_path), "--access-logformat", "%(m)s %(U)s %(s)s %(D)s %(B)s"]
    log_file = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        cmd, cwd=PROJECT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Server(process, port, log_path, access_path, workers, env)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log_file.close()


def _wait_ready(server: Server) -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.process.returncode}):\n{server.log_path.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            conn.request("GET", "/api/v1/consents/check")  # a 405/401 from DRF: cheap, and proves the app loaded
            conn.getresponse().read()
            conn.close()
            # Every worker has imported the app (--preload is not used): wait until all have booted.
            if len(server.worker_pids()) >= server.workers:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer in 60 s:\n{server.log_path.read_text()[-2000:]}")


def worker_bench_environment(
    *, name: str, database: str, redis_db: int, var: Path, catalogue: dict[str, Any], extra: dict[str, str]
) -> dict[str, str]:
    """A fresh database with `catalogue` applied, its own Redis database and queue (both named after `name`) and var
    directory, for a benchmark that drives a Celery worker in this process's Django (rights_bench, webhooks_bench).
    Returns the environment the worker is started with; this process is set up with it too."""
    env = django_env(database, new_keys())
    env.update(
        {
            "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "CELERY_TASK_DEFAULT_QUEUE": name,
            "CACHE_KEY_PREFIX": name,
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "ASSENT_VAR_DIR": str(var),
            **extra,
        }
    )
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    drop_database(database)
    create_database(database)
    log(f"{name}: migrating {database}")
    manage(env, "migrate", "--noinput")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(catalogue, handle)
    manage(env, "apply_catalog", handle.name)
    Path(handle.name).unlink()
    os.environ.update(env)
    import django

    django.setup()
    from config.celery import app

    app.control.purge()
    return env
