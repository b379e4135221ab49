"""The address a request came from, for limits and logs."""

from __future__ import annotations

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The peer's address. Trusted-proxy handling (X-Forwarded-For from known proxies) belongs here and only here,
    so every limiter keys on the same notion of "client"."""
    return str(request.META.get("REMOTE_ADDR") or "unknown")
