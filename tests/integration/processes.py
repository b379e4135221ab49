"""The real processes an operator runs (API.md, "Processes"), started by tests against the test database:
gunicorn serving config.wsgi, a Celery worker, Celery beat, and a Redis server of the test's own (so that a test
may restart its broker without touching the machine's Redis that other runs share)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from django.conf import settings

PROJECT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, every: float = 0.1, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class DatabaseFaults:
    """Faults of the test's own database, injected from a connection to the `postgres` maintenance database:
    backends terminated (`pg_terminate_backend`, only those of the test database, never the test's own) and the
    database made unreachable for a while (`ALLOW_CONNECTIONS false`). Counts what it injected."""

    def __init__(self) -> None:
        db = settings.DATABASES["default"]
        self.name: str = db["NAME"]
        self.admin = psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
        )
        self.terminated = 0
        self.outages = 0
        self._spared: set[int] = set()

    def spare(self, pid: int) -> None:
        """A backend never terminated: the test process's own connection, which reads the results."""
        self._spared.add(pid)

    def backends(self) -> list[int]:
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [self.name]
        ).fetchall()
        return [pid for (pid,) in rows if pid not in self._spared]

    def terminate(self, pids: list[int] | None = None) -> int:
        """Terminate these backends of the test database (all but the spared ones when None); how many went."""
        targets = [pid for pid in (self.backends() if pids is None else pids) if pid not in self._spared]
        if not targets:
            return 0
        # The targets are fixed first (a materialized CTE): in one WHERE, PostgreSQL may evaluate the call before
        # the filters, and would terminate backends of other databases.
        rows = self.admin.execute(
            """
            WITH targets AS MATERIALIZED (
                SELECT pid FROM pg_stat_activity
                WHERE datname = %s AND pid = ANY(%s) AND pid <> pg_backend_pid()
            )
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM targets
            """,
            [self.name, targets],
        ).fetchone()
        done = int(rows[0]) if rows else 0
        self.terminated += done
        return done

    def away(self) -> None:
        """The database refuses new connections and loses its current ones (but the spared)."""
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        self.outages += 1
        self.terminate()

    def back(self) -> None:
        self.admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def close(self) -> None:
        self.back()  # whatever happened, the test database accepts connections again (teardown drops it)
        self.admin.close()


class SmtpServer:
    """A mail server of the test's own on a loopback port, in threads of the test process. `mode` says how it
    answers: "accept" takes every mail; "refuse" answers every RCPT with 550 (a permanent refusal); "defer"
    accepts the recipient but answers DATA with 451 (a temporary one). Not started, its port refuses connections.
    Counts what it refused and keeps what it took."""

    MODES = ("accept", "refuse", "defer", "stall")  # stall: takes the message but answers only on `release()`

    def __init__(self) -> None:
        self.port = free_port()
        self.mode = "refuse"
        self.refusals = 0
        self.messages: list[tuple[list[str], str]] = []  # (recipients, message)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.stalled = threading.Event()  # set while a message waits for `release()`
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self, mode: str) -> None:
        assert mode in self.MODES, mode
        self.mode = mode
        if self._server is None:
            owner = self

            class Handler(socketserver.StreamRequestHandler):
                def handle(self) -> None:
                    owner._session(self.rfile, self.wfile)

            socketserver.ThreadingTCPServer.allow_reuse_address = True
            self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def release(self) -> None:
        """Answer the stalled messages (taken) and every later one at once."""
        self._released.set()

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def to(self, address: str) -> list[str]:
        with self._lock:
            return [message for recipients, message in self.messages if address in recipients]

    def _refused(self, reply: bytes, wfile: Any) -> None:
        with self._lock:
            self.refusals += 1
        wfile.write(reply)

    def _session(self, rfile: Any, wfile: Any) -> None:
        wfile.write(b"220 test-smtp ready\r\n")
        recipients: list[str] = []
        while line := rfile.readline():
            verb = line[:4].upper().decode(errors="replace")
            if verb in ("EHLO", "HELO"):
                wfile.write(b"250 test-smtp\r\n")
            elif verb == "MAIL":
                recipients = []
                wfile.write(b"250 ok\r\n")
            elif verb == "RCPT":
                if self.mode == "refuse":
                    # like a real server, the refusal repeats the address: it must not reach Assent's logs
                    address = line.decode(errors="replace").partition(":")[2].strip()
                    self._refused(f"550 5.1.1 {address}: mailbox unavailable\r\n".encode(), wfile)
                else:
                    recipients.append(line.decode(errors="replace").partition(":")[2].strip().strip("<>"))
                    wfile.write(b"250 ok\r\n")
            elif verb == "DATA":
                if self.mode == "defer":
                    self._refused(b"451 4.3.0 try again later\r\n", wfile)
                    continue
                wfile.write(b"354 go ahead\r\n")
                body = []
                while (data := rfile.readline()) not in (b".\r\n", b""):
                    body.append(data.decode(errors="replace"))
                with self._lock:
                    self.messages.append((recipients, "".join(body)))
                if self.mode == "stall":
                    self.stalled.set()
                    self._released.wait(60)
                wfile.write(b"250 taken\r\n")
            elif verb == "QUIT":
                wfile.write(b"221 bye\r\n")
                return
            else:  # RSET, NOOP
                wfile.write(b"250 ok\r\n")


class Process:
    """One child process with its log file; stopped politely, killed if it will not stop."""

    def __init__(self, name: str, log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), cwd=PROJECT, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole process group: the worker's pool children die with it, as in an OOM kill."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def django_env(**extra: str) -> dict[str, str]:
    """The test run's environment (keys, queue name, cache prefix come from tests/_env.py) on the test database."""
    return {**os.environ, "DATABASE_URL": test_database_url(), **extra}


class Worker(Process):
    """`celery -A config worker`, solo pool: one task at a time, so a SIGKILL lands inside a known task."""

    def __init__(
        self, mail_dir: Path, log_path: Path, env: dict[str, str] | None = None, *, loglevel: str = "warning"
    ) -> None:
        self.mail_dir = mail_dir
        self.loglevel = loglevel  # "info" logs every task and retry, as an operator's worker may
        base = django_env(
            EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir)
        )
        super().__init__("worker", log_path, {**base, **(env or {})})

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            "solo",
            "-l",
            self.loglevel,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]

    def mails(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.mail_dir.glob("*")))


class Beat(Process):
    """`celery -A config beat` with its schedule file in the test's directory. `scheduler`: a scheduler class
    (`-S`), e.g. tests.integration.fast_beat.FastScheduler, which runs named entries of the product's schedule
    every few seconds."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None, scheduler: str | None = None) -> None:
        self.scheduler = scheduler
        super().__init__("beat", log_path, {**django_env(), **(env or {})})

    def command(self) -> list[str]:
        schedule = self.log_path.with_suffix(".schedule")
        command = [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "warning", "-s", str(schedule)]
        return [*command, "-S", self.scheduler] if self.scheduler else command


class Gunicorn(Process):
    """`gunicorn config.wsgi` on a free loopback port; `base` is its URL."""

    def __init__(self, log_path: Path, *, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.workers = workers
        base_env = django_env(ASSENT_BASE_URL=f"http://127.0.0.1:{self.port}")
        super().__init__("gunicorn", log_path, {**base_env, **(env or {})})

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        return [gunicorn, "config.wsgi", "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}", "--timeout", "60"]

    def start(self) -> None:
        super().start()
        wait_for(self._answers, timeout=60, every=0.2, what=f"gunicorn on {self.port}:\n{self.log()[-2000:]}")

    def _answers(self) -> bool:
        if not self.alive():
            raise AssertionError(f"gunicorn exited:\n{self.log()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/api/v1/consents/check")  # DRF answers 401/405: the app is loaded
            conn.getresponse().read()
            conn.close()
        except OSError:
            return False
        return True


class RedisServer(Process):
    """A Redis of the test's own on a free port, keeping nothing on disk (as the machine's): restarting it loses
    whatever it held, which is exactly the fault the broker tests inject."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        super().__init__("redis", log_path, dict(os.environ))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        return [server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]

    def start(self) -> None:
        super().start()
        wait_for(self._answers, timeout=20, what=f"redis on {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False
