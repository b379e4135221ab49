"""What the standalone operator runs (`make drill`, `make two-nodes`) share: a database of their own on the local
PostgreSQL (created, migrated, catalogued, dropped after), and a Django process set up against it with the test
environment's fresh keys (tests/_env.py) and a queue, cache prefix and erasure log of the run's own, so that a run
never touches another run's data or the machine's shared queue.

Django is set up here, not at import: the seed's worker processes import these modules before they set up Django."""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from pathlib import Path

import psycopg

PG_URL = os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432").rstrip("/")


def database_url(name: str) -> str:
    return f"{PG_URL}/{name}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(database_url("postgres"), autocommit=True)


def database_create(name: str) -> None:
    """A new empty database (one left over by a crashed run of the same name is dropped first)."""
    database_drop(name)
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')


def database_drop(name: str) -> None:
    """Drop it, closing whatever is still connected (only this run's processes use it)."""
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_size(name: str) -> int:
    with _admin() as admin:
        row = admin.execute("SELECT pg_database_size(%s)", [name]).fetchone()
    return int(row[0]) if row else 0


def run_environment(name: str, tag: str) -> Path:
    """Point this process (and the processes it starts) at database `name`, with a queue, cache prefix, var
    directory and erasure log of the run's own; the keys are the test environment's fresh ones. Then Django is set
    up. Returns the run's scratch directory."""
    scratch = Path(tempfile.mkdtemp(prefix=f"assent-{tag}-"))
    os.environ.update(
        {
            "DATABASE_URL": database_url(name),
            "CACHE_KEY_PREFIX": f"assent-{tag}-{os.getpid()}",
            "CELERY_TASK_DEFAULT_QUEUE": f"assent-{tag}-{os.getpid()}",
            "ASSENT_VAR_DIR": str(scratch / "var"),
            "ASSENT_ERASURE_LOG": str(scratch / "var" / "erasure.log"),
        }
    )
    import django

    import tests._env  # noqa: F401 - the defaults (keys, hosts, mail backends) for whatever is still unset

    django.setup()
    # One JSON line per in-process API call would bury the run's figures; the processes it starts still log.
    logging.getLogger("assent.requests").setLevel(logging.WARNING)
    return scratch


def database_prepare(catalogue: dict[str, object]) -> None:
    """Migrate the run's database and apply the catalogue, as an operator's first deployment does."""
    from django.core.management import call_command

    from tests.factories import apply_catalogue

    call_command("migrate", verbosity=0)
    apply_catalogue(catalogue)


def django_switch_database(name: str) -> None:
    """Point this process's Django connection at another database (the restored one), dropping the per-process
    caches of the first (catalogue, API keys)."""
    from django.conf import settings
    from django.db import connections

    from consent.catalogue.snapshot import catalogue_forget
    from consent.clients import clients_forget_cache

    connections.close_all()
    settings.DATABASES["default"]["NAME"] = name
    connections["default"].settings_dict["NAME"] = name
    os.environ["DATABASE_URL"] = database_url(name)  # for the processes started from here on
    catalogue_forget()
    clients_forget_cache()


def manage(*args: str) -> str:
    """`python manage.py ARGS` in a process of its own on the current DATABASE_URL; its output, or an error with it."""
    import sys

    from tests.integration.processes import PROJECT

    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT, env=dict(os.environ), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout
