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


def art19_notices(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """The live notices of a request's result, or None when it told nobody anything (no Art. 19 change)."""
    kept = result.get(KEY)
    if not kept:
        return None
    return ports.outbox.notices(event_ids=kept.get("events", []), holders=kept.get("holders", []))


def result_public(result: Mapping[str, Any]) -> dict[str, Any]:
    """A request's result as shown (API, admin): the kept ids replaced by the live notices."""
    shown = {k: v for k, v in result.items() if k != KEY}
    notices = art19_notices(result)
    if notices is not None:
        shown["notices"] = notices
    return shown
