"""Reading rights requests: one request with its parts, history and whether its export can be fetched."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from subjects.models import RightsExport, RightsRequest
from subjects.rights.errors import RequestNotFoundError
from subjects.rights.requests import Actor


@dataclass(frozen=True, slots=True)
class RequestView:
    request: RightsRequest
    parts: list[dict[str, Any]]
    history: list[dict[str, Any]]
    has_export: bool


def request_get(*, request_id: uuid.UUID, actor: Actor | None = None) -> RequestView:
    """A request with its parts and history. A client limited to purposes sees only the requests it opened."""
    request = RightsRequest.objects.filter(pk=request_id).first()
    if request is None or (actor is not None and actor.client_purposes and request.opened_by_client != actor.client_id):
        raise RequestNotFoundError("no rights request with this id")
    parts = [
        {"name": name, "status": status, "error": error or None}
        for name, status, error in request.parts.order_by("pk").values_list("name", "status", "error")
    ]
    history = [
        {"event": event, "status": status, "at": at, "by": by, "note": note}
        for event, status, at, by, note in request.history.values_list("event", "status", "at", "by", "note")
    ]
    has_export = RightsExport.objects.filter(pk=request.pk, expires_at__gt=timezone.now()).exists()
    return RequestView(request, parts, history, has_export)
