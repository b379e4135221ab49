"""A real webhook receiver for tests: an HTTP server on loopback, in a thread, that verifies every delivery with
`standardwebhooks.Webhook(secret).verify` (as a connected system would) and answers as told per path: a list of
statuses to answer in turn (the last one repeats), 200 by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    path: str
    msg_id: str
    status: int  # what the receiver answered
    payload: dict[str, Any] | None  # None: the signature did not verify
    at: float = 0.0  # time.time() when it arrived (benchmarks)


@dataclass
class Receiver:
    base_url: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # path -> whsec_...
    answers: dict[str, list[int]] = field(default_factory=dict)  # path -> statuses, in turn
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base_url + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def acknowledged(self, path: str) -> list[Received]:
        return [r for r in self.at(path) if 200 <= r.status < 300]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            secret = self.secrets.get(path)
            payload: Any = None
            if secret is not None:
                try:
                    payload = Webhook(secret).verify(body, headers)
                except WebhookVerificationError:
                    payload = None
            queue = self.answers.get(path, [])
            status = queue.pop(0) if len(queue) > 1 else (queue[0] if queue else 200)
            if payload is None:
                status = 400  # an unsigned or wrongly signed message is refused, as a real receiver would
            self.received.append(Received(path, headers.get("webhook-id", ""), status, payload, time.time()))
            return status


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = receiver.handle(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
