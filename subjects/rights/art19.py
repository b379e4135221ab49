"""Art. 19: a rectification, restriction, lifting or erasure is told to every connected system that holds or
received the person's data. Told through the outbox (webhooks); a system holds the data when its client wrote the
person's records (subjects.source_writers) or read their profile (the read log). What was told is kept in the
request's result (`art19`: the events' ids and the holders' client ids) and shown live on every read of the
request (`notices`): each recipient, when it was told and when it acknowledged, and each holder nobody could tell."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from subjects import ports
from subjects.models import RightsRequestPart
from subjects.rights.context import CONNECTOR_PART
from subjects.source_writers import records_by_client

KEY = "art19"  # in a request's result: {"events": [ids], "holders": [client ids]}


def art19_tell(
    *,
    type: str,
    subject_ids: Sequence[uuid.UUID],
    data: dict[str, Any],
    records: Mapping[str, list[dict[str, str]]] | None = None,
    readers: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Write the event (in the caller's transaction, under the subject's lock) and return what to keep in the
    result. `records` and `readers`: a snapshot taken earlier (an erasure's parts delete what they are read from)."""
    if records is None:
        records = records_by_client(subject_ids=subject_ids)
    if readers is None:
        readers = ports.outbox.profile_readers(subject_ids=subject_ids)
    event = ports.outbox.record(type=type, subject_id=subject_ids[0], data=data, records_by_client=records)
    holders = sorted({int(client) for client in records} | set(readers))
    return {"events": [] if event is None else [event], "holders": holders}


def art19_join(*kept: Mapping[str, Any] | None) -> dict[str, Any]:
    events: list[int] = []
    holders: set[int] = set()
    for item in kept:
        if item:
            events.extend(item.get("events", []))
            holders.update(item.get("holders", []))
    return {"events": events, "holders": sorted(holders)}


def art19_notices(result: Mapping[str, Any], request_id: uuid.UUID | None = None) -> dict[str, Any] | None:
    """The live notices of a request's result, or None when it told nobody anything (no Art. 19 change). With the
    request's id, an erasure's connected systems (its connector parts) are listed too: told when the part first
    ran, acknowledged when the system's answer completed it."""
    kept = result.get(KEY)
    systems = _connector_notices(request_id) if request_id is not None and "systems" in result else []
    if not kept and not systems:
        return None
    notices = (
        ports.outbox.notices(event_ids=kept.get("events", []), holders=kept.get("holders", []))
        if kept
        else {"told": [], "not_told": [], "unacknowledged": 0}
    )
    notices["told"] = [*notices["told"], *systems]
    notices["unacknowledged"] += sum(1 for s in systems if s["acknowledged_at"] is None)
    return notices


def _connector_notices(request_id: uuid.UUID) -> list[dict[str, Any]]:
    names = {k: f.name for k, f in ports.consent_rights.catalogue().sources.items()}
    parts = RightsRequestPart.objects.filter(request_id=request_id, name__startswith=CONNECTOR_PART).order_by("pk")
    return [
        {
            "event": "erasure (connector)",
            "recipient": names.get(p.name.removeprefix(CONNECTOR_PART), p.name.removeprefix(CONNECTOR_PART)),
            "told_at": p.started_at.isoformat() if p.started_at else None,
            "acknowledged_at": (
                p.finished_at.isoformat() if p.finished_at and p.status == RightsRequestPart.Status.DONE else None
            ),
            "status": p.status,
            "last_error": p.error,
        }
        for p in parts
    ]


def result_public(result: Mapping[str, Any], request_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A request's result as shown (API, admin): the kept ids replaced by the live notices."""
    shown = {k: v for k, v in result.items() if k != KEY}
    notices = art19_notices(result, request_id)
    if notices is not None:
        shown["notices"] = notices
    return shown
