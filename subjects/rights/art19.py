"""Art. 19: a rectification, restriction, lifting or erasure is told to every connected system that holds or
received the person's data. Told through the outbox (webhooks); a system holds the data when its client wrote the
person's records (subjects.source_writers) or read their profile (the read log). What was told is kept in the
request's result (`art19`: the events' ids and the holders' client ids) and shown live on every read of the
request (`notices`): each recipient, when it was told and when it acknowledged, and each holder nobody could tell."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from django.db.models import Q

from subjects import ports
from subjects.models import RightsRequestPart
from subjects.rights.connector_parts import has_postgresql
from subjects.rights.context import CONNECTOR_PART, SOURCE
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
    request's id, the connected systems are listed too: for an erasure each system with a connector, told when its
    part first ran and acknowledged when the system's answer (HTTP) or its own erasure (PostgreSQL) completed it;
    for a rectification, restriction or lift each such system as not told, for the DPO to tell its owner (a
    connector carries access and erasure only, API.md)."""
    kept = result.get(KEY)
    systems: list[dict[str, Any]] = []
    untold: list[dict[str, Any]] = []
    if request_id is not None and "systems" in result:
        systems = _connector_notices(request_id)
    elif request_id is not None and kept:
        untold = _connectors_untold()
    if not kept and not systems:
        return None
    notices = (
        ports.outbox.notices(event_ids=kept.get("events", []), holders=kept.get("holders", []))
        if kept
        else {"told": [], "not_told": [], "unacknowledged": 0}
    )
    notices["told"] = [*notices["told"], *systems]
    notices["not_told"] = [*notices["not_told"], *untold]
    notices["unacknowledged"] += sum(1 for s in systems if s["acknowledged_at"] is None) + len(untold)
    return notices


def _connected(facts: ports.SourceFacts) -> bool:
    return bool(facts.connector and facts.connector.get("type") in ("http", "postgresql"))


def _connector_notices(request_id: uuid.UUID) -> list[dict[str, Any]]:
    sources = ports.consent_rights.catalogue().sources
    names = {k: f.name for k, f in sources.items()}
    # HTTP systems have parts of their own; a PostgreSQL connector runs in its source's part, before the records.
    postgresql = [SOURCE + k for k, f in sources.items() if has_postgresql(f)]
    parts = RightsRequestPart.objects.filter(
        Q(name__startswith=CONNECTOR_PART) | Q(name__in=postgresql), request_id=request_id
    ).order_by("pk")
    return [
        {
            "event": "erasure (connector)",
            "recipient": names.get(_source(p.name), _source(p.name)),
            "told_at": p.started_at.isoformat() if p.started_at else None,
            "acknowledged_at": (
                p.finished_at.isoformat() if p.finished_at and p.status == RightsRequestPart.Status.DONE else None
            ),
            "status": p.status,
            "last_error": p.error,
        }
        for p in parts
    ]


def _source(part: str) -> str:
    return part.removeprefix(CONNECTOR_PART).removeprefix(SOURCE)


def _connectors_untold() -> list[dict[str, Any]]:
    return [
        {
            "recipient": facts.name,
            "why": "a connected system: its connector carries access and erasure only; tell the system's owner",
        }
        for _, facts in sorted(ports.consent_rights.catalogue().sources.items())
        if _connected(facts)
    ]


def result_public(result: Mapping[str, Any], request_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A request's result as shown (API, admin): the kept ids replaced by the live notices."""
    shown = {k: v for k, v in result.items() if k != KEY}
    notices = art19_notices(result, request_id)
    if notices is not None:
        shown["notices"] = notices
    return shown
