"""Writing an export: one zip, sealed, streamed from the parts' pieces (one JSON file, one CSV per data category,
the consent history with each event's hash, and for access the Art. 15 report as JSON and HTML)."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings

from subjects import ports
from subjects.models import RightsRequest
from subjects.rights.access.gather import Gathered
from subjects.rights.access.report import report_html
from subjects.rights.context import CONSENT, PartContext
from subjects.rights.exports import blob_root, export_path, sealed_writer

RENEW_EVERY = 2000  # rows written between two renewals of the part's lease
DECLARATIONS = frozenset({"grant", "withdraw", "confirm", "object"})


@dataclass(frozen=True, slots=True)
class Written:
    kid: str  # the master key the export is sealed under
    files: list[str]
    size: int  # of the zip before sealing


def write_zip(context: PartContext, gathered: Gathered) -> Written:
    request = context.request
    portability = request.kind == RightsRequest.Kind.PORTABILITY
    kid, root = blob_root(context.subject(), str(gathered.outcomes[CONSENT].get("kid", "")))
    files: list[str] = []
    with sealed_writer(
        export_path(request.id), root=root, blob_id=request.id, label="zip", temp=context.token.hex, durable=True
    ) as writer:
        with zipfile.ZipFile(writer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:

            def add(name: str) -> IO[bytes]:
                files.append(name)
                return archive.open(name, "w", force_zip64=True)

            _write_data(add, context, gathered)
            if portability:
                with add("consent.json") as out:
                    out.write(b'{"declarations": [')
                    _write_json_array(out, _declarations(gathered.pieces.lines(CONSENT)), context.renew)
                    out.write(b"]}\n")
            else:
                _write_history_and_report(add, context, gathered)
        size = writer.plain_size
    return Written(kid, files, size)


def _write_data(add: Callable[[str], IO[bytes]], context: PartContext, gathered: Gathered) -> None:
    """data.json (everything), then one CSV each for identifiers, profile and every data category."""
    identifiers, profile, pieces = gathered.identifiers, gathered.profile, gathered.pieces
    with add("data.json") as out:
        head = {
            "format": "assent-export/1",
            "kind": context.request.kind,
            "generated_at": gathered.now.isoformat(),
            "data_found": gathered.data_found,
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
    for category in sorted(gathered.categories):
        fields = sorted(gathered.categories[category]["fields"])
        rows = (
            [r["source"], r["external_id"], r["occurred_at"], *(r["data"].get(f) for f in fields)]
            for r in pieces.records(category)
        )
        with add(f"{category}.csv") as out:
            _write_csv(out, ["source", "external_id", "occurred_at", *fields], rows, context.renew)
    # Each connected system's answer (API.md, Connectors), as it gave it, in a folder of its own.
    for name in pieces.systems:
        for row in pieces.lines(name):
            with add(f"systems/{row['system']}/data.json") as out:
                out.write(json.dumps(row["data"], ensure_ascii=False, indent=2, default=str).encode() + b"\n")


def _write_history_and_report(add: Callable[[str], IO[bytes]], context: PartContext, gathered: Gathered) -> None:
    """Access only: the consent history with each event's hash, and the Art. 15 report."""
    with add("consent_history.json") as out:
        out.write(b'{"events": [')
        _write_json_array(
            out, (_event(r) for r in gathered.pieces.lines(CONSENT) if r["type"] == "event"), context.renew
        )
        out.write(b'],\n"states": ' + json.dumps(gathered.consent["state"], default=str).encode())
        out.write(b',\n"objections": ' + json.dumps(gathered.consent["objection"], default=str).encode())
        # Each grant, withdrawal, objection and confirmation carries its signed receipt; these keys verify them.
        out.write(b',\n"receipt_keys": ' + json.dumps(f"{settings.ASSENT_BASE_URL}/.well-known/jwks.json").encode())
        out.write(b"}\n")
    with add("report.json") as out:
        out.write(json.dumps(gathered.report, ensure_ascii=False, indent=2, default=str).encode())
    for lang in ("de", "en"):
        with add(f"report.{lang}.html") as out:
            out.write(report_html(gathered.report, lang, ports.consent_rights.catalogue()).encode())


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
