"""Access (Art. 15) and portability (Art. 20): each part writes its piece of the person's data, encrypted, beside
the export; the finish step streams the pieces into one zip (one JSON file, one CSV per data category, the consent
history with each event's hash, and for access the Art. 15 report as JSON and HTML in German and English).

Only this subject's rows are read (the subject, merges followed to the survivor, and the closed chains of the
subjects merged into it): never another person's data. Portability holds only what the person provided or their
use generated: identifiers, profile, linked records and their own consent declarations; not the report, the
logs of others' reads, or states Assent derived."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from typing import IO, Any

from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from subjects import ports
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA
from subjects.keys import decrypt_field
from subjects.models import Identifier, LinkedRecord, RightsRequest, Subject
from subjects.profile import profile_read
from subjects.rights import chunked, texts
from subjects.rights.context import CONSENT, PROFILE, SOURCE, PartContext, part_outcomes, request_complete
from subjects.rights.exports import (
    blob_root,
    export_path,
    export_record,
    files_remove_on_commit,
    part_path,
    piece_name,
    sealed_lines,
    sealed_writer,
)

RENEW_EVERY = 2000
PAGE = 2000
DECLARATIONS = frozenset({"grant", "withdraw", "confirm", "object"})


def _line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode() + b"\n"


def _root(context: PartContext, subject: Subject | None) -> tuple[str, bytes]:
    return blob_root(subject, str(context.outcome.get("kid", "")))


def _records_in_pages(subject: Subject, source: str, size: int = PAGE) -> Iterator[tuple[Any, ...]]:
    """A source's records of the subject in time order, a page (one query) at a time: flat memory without a
    server-side cursor (which costs three round trips even for a handful of rows)."""
    rows = LinkedRecord.objects.filter(subject=subject, source=source).order_by("occurred_at", "pk")
    fields = ("pk", "category", "external_id", "occurred_at", "data_enc")
    page = list(rows.values_list(*fields)[:size])
    while page:
        yield from page
        if len(page) < size:
            return
        last_pk, last_at = page[-1][0], page[-1][3]
        after = Q(occurred_at__gt=last_at) | Q(occurred_at=last_at, pk__gt=last_pk)
        page = list(rows.filter(after).values_list(*fields)[:size])


# ---------------------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------------------
def _piece_writer(context: PartContext, root: bytes) -> AbstractContextManager[chunked.ChunkWriter]:
    """This part's sealed piece of the export, written under the part's lease token."""
    return sealed_writer(
        part_path(context.request.id, piece_name(context.name, context.token)),
        root=root,
        blob_id=context.request.id,
        label=context.name,
        temp=context.token.hex,
    )


def access_source(context: PartContext) -> None:
    """One source's linked records of the person, as JSON lines."""
    source = context.name.removeprefix(SOURCE)
    subject = context.subject()
    kid, root = _root(context, subject)
    categories: dict[str, dict[str, Any]] = {}
    total = 0
    with _piece_writer(context, root) as writer:
        if subject is not None:
            key = context.data_key()
            for pk, category, external_id, occurred_at, blob in _records_in_pages(subject, source):
                data = json.loads(decrypt_field(subject, key, RECORD_DATA, bytes(blob), row_id=pk))
                writer.write(
                    _line(
                        {
                            "source": source,
                            "category": category,
                            "external_id": external_id,
                            "occurred_at": occurred_at.isoformat(),
                            "data": data,
                        }
                    )
                )
                seen = categories.setdefault(category, {"count": 0, "fields": set()})
                seen["count"] += 1
                if isinstance(data, dict):
                    seen["fields"].update(data)
                total += 1
                if total % RENEW_EVERY == 0:
                    context.renew()
    with context.step(read_only=True) as outcome:
        outcome.clear()
        outcome.update(
            kid=kid,
            piece=piece_name(context.name, context.token),
            records=total,
            categories={k: {"count": v["count"], "fields": sorted(v["fields"])} for k, v in categories.items()},
        )
        context.mark_done()


def access_profile(context: PartContext) -> None:
    """The person's identifiers and profile attributes."""
    subject = context.subject()
    kid, root = _root(context, subject)
    kinds: set[str] = set()
    fields: list[str] = []
    count = 0
    with _piece_writer(context, root) as writer:
        if subject is not None:
            key = context.data_key()
            for pk, kind, blob, created_at in (
                Identifier.objects.filter(subject=subject)
                .order_by("kind", "pk")
                .values_list("pk", "kind", "value_enc", "created_at")
            ):
                value = decrypt_field(subject, key, IDENTIFIER_VALUE, bytes(blob), row_id=pk)
                writer.write(
                    _line({"type": "identifier", "kind": kind, "value": value, "added_at": created_at.isoformat()})
                )
                kinds.add(kind)
                count += 1
            profile = profile_read(subject, key)
            if profile:
                writer.write(_line({"type": "profile", "data": profile}))
                fields = sorted(profile)
    with context.step(read_only=True) as outcome:
        outcome.clear()
        outcome.update(
            kid=kid,
            piece=piece_name(context.name, context.token),
            identifiers=count,
            kinds=sorted(kinds),
            profile_fields=fields,
        )
        context.mark_done()


def access_consent(context: PartContext) -> None:
    """The ledger part, through the consent port: events with hashes, states, objections, recipients."""
    subject = context.subject()
    kid, root = _root(context, subject)
    counts = {"event": 0, "state": 0, "objection": 0, "recipient": 0}
    purposes: set[str] = set()
    sources: set[str] = set()
    with _piece_writer(context, root) as writer:
        if context.subject_ids:
            for row in ports.consent_rights.consent_rows(subject_ids=context.subject_ids):
                writer.write(_line(row))
                counts[row["type"]] = counts.get(row["type"], 0) + 1
                if row.get("purpose"):
                    purposes.add(row["purpose"])
                if row["type"] == "event":
                    sources.add(row["source"])
    with context.step(read_only=True) as outcome:
        outcome.clear()
        outcome.update(
            kid=kid,
            piece=piece_name(context.name, context.token),
            events=counts["event"],
            states=counts["state"],
            objections=counts["objection"],
            recipients=counts["recipient"],
            purposes=sorted(purposes),
            event_sources=sorted(sources),
        )
        context.mark_done()


# ---------------------------------------------------------------------------------------------------------
# Finish: the zip
# ---------------------------------------------------------------------------------------------------------
class _Pieces:
    """Readers of the parts' pieces of one request."""

    def __init__(self, request: RightsRequest, outcomes: dict[str, dict[str, Any]], subject: Subject | None) -> None:
        self.request = request
        self.outcomes = outcomes
        self.subject = subject
        self.sources = sorted(name for name in outcomes if name.startswith(SOURCE))

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


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif not isinstance(value, str):
        return str(value)
    # A cell that a spreadsheet would run as a formula is quoted (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _write_json_array(out: IO[bytes], rows: Iterable[dict[str, Any]], renew: Callable[[], None]) -> int:
    count = 0
    for row in rows:
        out.write((b",\n" if count else b"\n") + json.dumps(row, ensure_ascii=False, default=str).encode())
        count += 1
        if count % RENEW_EVERY == 0:
            renew()
    out.write(b"\n")
    return count


def access_finish(context: PartContext) -> None:
    request = context.request
    portability = request.kind == RightsRequest.Kind.PORTABILITY
    outcomes = part_outcomes(request.id)
    subject = context.subject()
    pieces = _Pieces(request, outcomes, subject)
    catalogue = ports.consent_rights.catalogue()
    now = timezone.now()

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
    data_found = bool(identifiers or profile or categories or events)
    report = report_build(
        catalogue=catalogue,
        request=request,
        now=now,
        data_found=data_found,
        categories=categories,
        profile_fields=sorted(profile),
        identifier_kinds=sorted({i["kind"] for i in identifiers}),
        consent=consent,
        events=events,
        event_sources=list(outcomes[CONSENT].get("event_sources", [])),
    )

    kid, root = blob_root(subject, str(outcomes[CONSENT].get("kid", "")))
    files: list[str] = []
    with sealed_writer(
        export_path(request.id), root=root, blob_id=request.id, label="zip", temp=context.token.hex, durable=True
    ) as writer:
        with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:

            def add(name: str) -> IO[bytes]:
                files.append(name)
                return archive.open(name, "w", force_zip64=True)

            with add("data.json") as out:
                head = {
                    "format": "assent-export/1",
                    "kind": request.kind,
                    "generated_at": now.isoformat(),
                    "data_found": data_found,
                }
                out.write(json.dumps(head, ensure_ascii=False)[:-1].encode() + b',\n"identifiers": [')
                _write_json_array(out, identifiers, context.renew)
                out.write(b'],\n"profile": ' + json.dumps(profile, ensure_ascii=False).encode())
                out.write(b',\n"records": [')
                _write_json_array(out, pieces.records(), context.renew)
                out.write(b"]}\n")
            if identifiers:
                with add("identifiers.csv") as out:
                    _write_csv(
                        out,
                        ["kind", "value", "added_at"],
                        ([i["kind"], i["value"], i["added_at"]] for i in identifiers),
                    )
            if profile:
                with add("profile.csv") as out:
                    _write_csv(out, ["field", "value"], ([k, v] for k, v in sorted(profile.items())))
            for category in sorted(categories):
                fields = sorted(categories[category]["fields"])
                rows = (
                    [r["source"], r["external_id"], r["occurred_at"], *(r["data"].get(f) for f in fields)]
                    for r in pieces.records(category)
                )
                with add(f"{category}.csv") as out:
                    _write_csv(out, ["source", "external_id", "occurred_at", *fields], rows, context.renew)
            if portability:
                with add("consent.json") as out:
                    out.write(b'{"declarations": [')
                    _write_json_array(out, _declarations(pieces.lines(CONSENT)), context.renew)
                    out.write(b"]}\n")
            else:
                with add("consent_history.json") as out:
                    out.write(b'{"events": [')
                    _write_json_array(
                        out, (_event(r) for r in pieces.lines(CONSENT) if r["type"] == "event"), context.renew
                    )
                    out.write(b'],\n"states": ' + json.dumps(consent["state"], default=str).encode())
                    out.write(b',\n"objections": ' + json.dumps(consent["objection"], default=str).encode())
                    out.write(b"}\n")
                with add("report.json") as out:
                    out.write(json.dumps(report, ensure_ascii=False, indent=2, default=str).encode())
                for lang in ("de", "en"):
                    with add(f"report.{lang}.html") as out:
                        out.write(report_html(report, lang).encode())
        size = writer.plain_size

    summary = {
        "records": sum(c["count"] for c in categories.values()),
        "categories": sorted(categories),
        "sources": sorted({s for c in categories.values() for s in c["sources"]}),
        "identifiers": len(identifiers),
        "consent_events": events,
        "recipients": len(consent["recipient"]),
    }
    message = texts.NO_DATA_FOUND if not data_found else texts.PORTABILITY_DONE if portability else texts.ACCESS_DONE
    with context.step():
        export = export_record(request=request, subject=subject, kid=kid, size=size, now=now)
        result = {
            "data_found": data_found,
            "message": message,
            "export": {"size": size, "files": files, "expires_at": export.expires_at.isoformat()},
            "summary": summary,
        }
        request_complete(context, result)
        files_remove_on_commit(export_ids=[], request_ids=[request.id])


def _write_csv(
    out: IO[bytes], header: list[str], rows: Iterable[list[Any]], renew: Callable[[], None] | None = None
) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow([_csv_cell(v) for v in row])
        if renew is not None and count % RENEW_EVERY == 0:
            renew()
    text.flush()
    text.detach()


def _event(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "type"}


def _declarations(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The person's own consent declarations (Art. 20: provided by them), not what the system recorded."""
    for row in rows:
        if row["type"] == "event" and row["action"] in DECLARATIONS and row.get("actor") != "system":
            yield {k: row.get(k) for k in ("purpose", "channel", "action", "notice_version", "source", "occurred_at")}


# ---------------------------------------------------------------------------------------------------------
# The Art. 15 report
# ---------------------------------------------------------------------------------------------------------
def report_build(
    *,
    catalogue: ports.RightsCatalogue,
    request: RightsRequest,
    now: datetime,
    data_found: bool,
    categories: dict[str, dict[str, Any]],
    profile_fields: list[str],
    identifier_kinds: list[str],
    consent: dict[str, list[dict[str, Any]]],
    events: int,
    event_sources: list[str],
) -> dict[str, Any]:
    """Art. 15(1)(a)-(h), computed from this subject's own records and logs and the catalogue."""
    held = set(categories)
    if profile_fields:
        held |= set(catalogue.profile_categories)
    states: dict[str, list[dict[str, Any]]] = {}
    for state in consent["state"]:
        states.setdefault(state["purpose"], []).append({"channel": state["channel"], "state": state["status"]})
    objected = {o["purpose"] for o in consent["objection"]}
    consent_purposes = set(states) | {p for p in objected if p}
    purposes: list[dict[str, Any]] = []
    for key, purpose in sorted(catalogue.purposes.items()):
        used = sorted(held & set(purpose.categories))
        if not used and key not in consent_purposes:
            continue
        purposes.append(
            {
                "key": key,
                "name": purpose.name,
                "legal_basis": purpose.legal_basis,
                "marketing": purpose.marketing,
                "categories": used,
                "consent": states.get(key, []),
                "objected": key in objected or ("" in objected and purpose.marketing),
            }
        )
    storage = []
    for category, entry in sorted(categories.items()):
        for source in sorted(entry["sources"]):
            facts = catalogue.sources.get(source)
            holding = facts.holdings.get(category) if facts else None
            storage.append(
                {
                    "source": source,
                    "source_name": facts.name if facts else source,
                    "category": category,
                    "delete_after_days": holding.delete_after_days if holding else None,
                    "legal_hold": (
                        {"years": holding.hold_years, "from": holding.hold_from, "law": holding.hold_law}
                        if holding and holding.hold_years
                        else None
                    ),
                }
            )
    sources: dict[str, int] = {}
    for entry in categories.values():
        for source, count in entry["sources"].items():
            sources[source] = sources.get(source, 0) + count
    return {
        "request": str(request.id),
        "generated_at": now.isoformat(),
        "data_found": data_found,
        "message": texts.NO_DATA_FOUND if not data_found else texts.ACCESS_DONE,
        "purposes": purposes,
        "categories": [
            {"key": k, "name": catalogue.categories.get(k, k), "records": v["count"], "sources": sorted(v["sources"])}
            for k, v in sorted(categories.items())
        ],
        "identifiers": identifier_kinds,
        "profile_fields": profile_fields,
        "recipients": [
            {
                k: r.get(k)
                for k in ("name", "kind", "purposes", "categories", "channels", "count", "first_at", "last_at")
            }
            for r in consent["recipient"]
        ],
        "storage": storage,
        "sources": [
            {"key": k, "name": catalogue.sources[k].name if k in catalogue.sources else k, "records": n}
            for k, n in sorted(sources.items())
        ],
        "consent_sources": event_sources,
        "rights": texts.RIGHTS["en"],
        "right_to_complain": texts.COMPLAINT,
        "automated_decisions": [
            {"purpose": p["key"], "text": catalogue.purposes[p["key"]].automated_decision}
            for p in purposes
            if catalogue.purposes[p["key"]].automated_decision
        ],
        "consent_history": {"events": events, "file": "consent_history.json"},
    }


def report_html(report: dict[str, Any], lang: str) -> str:
    return render_to_string(
        "subjects/access_report.html",
        {
            "lang": lang,
            "L": texts.LABELS[lang],
            "report": report,
            "rights": texts.RIGHTS[lang],
            "complaint": texts.COMPLAINT_TEXT[lang],
            "bases": texts.LEGAL_BASES[lang],
        },
    )
