"""Gathering an export: the parts' pieces read back, and what the files and the Art. 15 report are made of."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from subjects import ports
from subjects.models import RightsRequest, Subject
from subjects.rights.access.report import report_build
from subjects.rights.context import CONNECTOR_PART, CONSENT, PROFILE, SOURCE, PartContext, part_outcomes
from subjects.rights.exports import blob_root, part_path, sealed_lines


class Pieces:
    """Readers of the parts' pieces of one request."""

    def __init__(self, request: RightsRequest, outcomes: dict[str, dict[str, Any]], subject: Subject | None) -> None:
        self.request = request
        self.outcomes = outcomes
        self.subject = subject
        self.sources = sorted(name for name in outcomes if name.startswith(SOURCE))
        # Connected systems that answered with data (a part about nobody has no piece).
        self.systems = sorted(n for n in outcomes if n.startswith(CONNECTOR_PART) and outcomes[n].get("piece"))

    def lines(self, name: str) -> Iterator[dict[str, Any]]:
        _kid, root = blob_root(self.subject, str(self.outcomes[name].get("kid", "")))
        path = part_path(self.request.id, str(self.outcomes[name]["piece"]))
        for raw in sealed_lines(path, root=root, blob_id=self.request.id, label=name):
            if raw:
                yield json.loads(raw)

    def records(self, category: str | None = None) -> Iterator[dict[str, Any]]:
        for name in self.sources:
            if category is None or category in self.outcomes[name].get("categories", {}):
                for row in self.lines(name):
                    if category is None or row["category"] == category:
                        yield row


@dataclass
class Gathered:
    """What the export holds, read from the parts' pieces and outcomes; the records stay in the pieces (streamed)."""

    now: datetime
    outcomes: dict[str, dict[str, Any]]
    pieces: Pieces
    identifiers: list[dict[str, Any]]
    profile: dict[str, Any]
    consent: dict[str, list[dict[str, Any]]]
    categories: dict[str, dict[str, Any]]
    events: int
    data_found: bool
    report: dict[str, Any]


def gather(context: PartContext, *, now: datetime) -> Gathered:
    request = context.request
    outcomes = part_outcomes(request.id)
    pieces = Pieces(request, outcomes, context.subject())
    identifiers: list[dict[str, Any]] = []
    profile: dict[str, Any] = {}
    for row in pieces.lines(PROFILE):
        if row["type"] == "identifier":
            identifiers.append({k: row[k] for k in ("kind", "value", "added_at")})
        elif row["type"] == "profile":
            profile = row["data"]
    consent: dict[str, list[dict[str, Any]]] = {"state": [], "objection": [], "recipient": []}
    for row in pieces.lines(CONSENT):
        if row["type"] in consent:
            consent[row["type"]].append(row)
    categories: dict[str, dict[str, Any]] = {}
    for name in pieces.sources:
        for category, seen in outcomes[name].get("categories", {}).items():
            entry = categories.setdefault(category, {"count": 0, "fields": set(), "sources": {}})
            entry["count"] += seen["count"]
            entry["fields"].update(seen["fields"])
            entry["sources"][name.removeprefix(SOURCE)] = seen["count"]
    events = int(outcomes[CONSENT].get("events", 0))
    data_found = bool(identifiers or profile or categories or events or pieces.systems)
    report = report_build(
        catalogue=ports.consent_rights.catalogue(),
        request=request,
        now=now,
        data_found=data_found,
        categories=categories,
        profile_fields=sorted(profile),
        identifier_kinds=sorted({i["kind"] for i in identifiers}),
        consent=consent,
        events=events,
        event_sources=list(outcomes[CONSENT].get("event_sources", [])),
        # Art. 19 notices of the person's earlier rectifications, restrictions and erasures: who was told, when,
        # and when it acknowledged.
        notices=ports.outbox.notices(subject_ids=context.subject_ids)["told"] if context.subject_ids else [],
    )
    return Gathered(now, outcomes, pieces, identifiers, profile, consent, categories, events, data_found, report)
