"""The page Django answers when it cannot read a request at all (its handler400): a body over
DATA_UPLOAD_MAX_MEMORY_SIZE, more fields than DATA_UPLOAD_MAX_NUMBER_FIELDS, a broken multipart body. Under /api/ a
problem (RFC 9457); elsewhere a page a person can read, in place of Django's bare "Bad Request (400)".

Also the site's front page at `/`, and the context every page gets (the retailer's name, the demo banner)."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from config.api import ProblemResponse, problem


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    too_large = isinstance(exception, RequestDataTooBig)
    status = 413 if too_large else 400
    if request.path.startswith("/api/"):
        if too_large:
            return ProblemResponse(problem(413, "Request too large", "the request body is too large", "too_large"))
        return ProblemResponse(problem(400, "Malformed request", "the request could not be read", "malformed"))
    back = "/admin/" if request.path.startswith("/admin/") else "/portal/"
    return render(request, "bad_request.html", {"too_large": too_large, "back": back}, status=status)


def home(request: HttpRequest) -> HttpResponse:
    """`/`: where a visitor (and the admin's "View site") lands: the privacy centre, the admin, the API docs."""
    return render(request, "home.html", {"nav": "home"})


# The demo's customers, whose addresses the demo banner offers for signing in (consent/demo, loaded by load_demo).
DEMO_CUSTOMERS = settings.BASE_DIR / "consent" / "demo" / "customers.json"
DEMO_BANNER_CUSTOMERS = 2


@functools.cache
def demo_addresses() -> tuple[str, ...]:
    try:
        customers = json.loads(DEMO_CUSTOMERS.read_text(encoding="utf-8"))["customers"]
    except (OSError, ValueError, KeyError):
        return ()
    emails = [c.get("identifiers", {}).get("email") for c in customers]
    return tuple(e for e in emails if e)[:DEMO_BANNER_CUSTOMERS]


def demo_mailbox() -> str:
    """Where the demo's mails (sign-in links among them) can be read: the console or the mail folder."""
    backend = settings.EMAIL_BACKEND.rsplit(".", 2)[-2]
    if backend == "console":
        return "console"
    if backend == "filebased":
        return str(settings.EMAIL_FILE_PATH)
    return ""


def site(request: HttpRequest) -> dict[str, Any]:
    """Every page's context: the retailer's name, and in the demo what its banner says."""
    context: dict[str, Any] = {"controller_name": settings.ASSENT_CONTROLLER_NAME, "demo": settings.DEMO}
    if settings.DEMO:
        context.update(demo_addresses=demo_addresses(), demo_mailbox=demo_mailbox())
    return context
