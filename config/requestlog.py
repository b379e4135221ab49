"""One JSON line per request and per task, a request id that follows a request into the tasks it enqueues, and
the request metrics.

A line says who asked (the API client's name, never a key), what was reached (the URL pattern, never the path:
paths carry tokens and subject ids), the status and the duration. Nothing else of the request is read, so no
identifier's value can reach a log from here. The formatter is python-json-logger's (LOGGING in settings).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from celery import signals
from django.http import HttpRequest, HttpResponse

from config.logs import json_formatter
from config.metrics import REQUEST_SECONDS, REQUESTS
from consent.clients import AuthenticatedClient

requests_log = logging.getLogger("assent.requests")
tasks_log = logging.getLogger("assent.tasks")

HEADER = "X-Request-ID"
TASK_HEADER = "assent_request_id"  # the Celery message header that carries it
# A caller's id is taken only when it is short and plain (a log line must not carry whatever a client sends).
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

current_request_id: ContextVar[str | None] = ContextVar("assent_request_id", default=None)


def request_id_of(request: HttpRequest) -> str:
    given = request.headers.get(HEADER, "")
    return given if _VALID_ID.fullmatch(given) else uuid.uuid4().hex


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered (`api/v1/requests/<uuid:request_id>`), a bounded label; `unmatched` for a
    path no pattern took (a 404 before any view)."""
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None and match.route else "unmatched"


def client_of_request(request: HttpRequest) -> str | None:
    """The API client's name when a key authenticated the request (DRF puts the client on the request)."""
    user = getattr(request, "user", None)
    return user.name if isinstance(user, AuthenticatedClient) else None


class RequestLogMiddleware:
    """Outermost middleware: times the whole answer, counts it, logs it and returns the request id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_of(request)
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        duration = time.perf_counter() - started
        response[HEADER] = request_id
        route = route_of(request)
        method = request.method or ""
        REQUESTS.labels(route, method, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(route, method).observe(duration)
        requests_log.info(
            "request",
            extra={
                "request_id": request_id,
                "client": client_of_request(request),
                "method": method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(duration * 1000, 2),
            },
        )
        return response


# --- Celery: the id travels in a message header; each task run is one line -------------------------------------
_task_started: ContextVar[float | None] = ContextVar("assent_task_started", default=None)


@signals.before_task_publish.connect
def _request_id_to_message(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = current_request_id.get()
    if request_id is not None and headers is not None:
        headers[TASK_HEADER] = request_id


@signals.task_prerun.connect
def _task_started_log(task: Any = None, **_: Any) -> None:
    context = getattr(task, "request", None)
    request_id = getattr(context, TASK_HEADER, None) or (getattr(context, "headers", None) or {}).get(TASK_HEADER)
    # An eager task (the demo) runs inside the request and keeps its id; a worker's task never inherits the id of
    # the task its thread ran before.
    if request_id is None and getattr(context, "is_eager", False):
        request_id = current_request_id.get()
    current_request_id.set(request_id)
    _task_started.set(time.perf_counter())


@signals.task_postrun.connect
def _task_finished_log(task: Any = None, state: str | None = None, **_: Any) -> None:
    started = _task_started.get()
    tasks_log.info(
        "task",
        extra={
            "request_id": current_request_id.get(),
            "task": getattr(task, "name", None),
            "state": state,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started is not None else None,
        },
    )


@signals.after_setup_logger.connect
def _worker_lines_as_json(logger: logging.Logger | None = None, **_: Any) -> None:
    """A worker replaces the root logger's handlers with its own (worker_hijack_root_logger): those write JSON
    lines too, so a worker's log reads like the web's."""
    for handler in logger.handlers if logger is not None else ():
        handler.setFormatter(json_formatter())
