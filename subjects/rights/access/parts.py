"""The parts of an access or portability request: each writes its piece of the person's data, sealed, beside the
export (one per source of linked records, the profile and identifiers, the consent ledger through the port)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from django.db.models import Q

from subjects import ports
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA
from subjects.keys import decrypt_field
from subjects.models import Identifier, LinkedRecord, Subject
from subjects.profile import profile_read
from subjects.rights import chunked
from subjects.rights.access.write import RENEW_EVERY
from subjects.rights.connector_parts import connector_access_lines, has_postgresql
from subjects.rights.context import SOURCE, PartContext
from subjects.rights.exports import blob_root, part_path, piece_name, sealed_writer

PAGE = 2000


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
        facts = ports.consent_rights.catalogue().sources.get(source)
        if has_postgresql(facts):
            assert facts is not None
            # The connected system's own rows of the person, one data category per table.
            for line in connector_access_lines(context, facts):
                writer.write(_line(line))
                seen = categories.setdefault(line["category"], {"count": 0, "fields": set()})
                seen["count"] += 1
                seen["fields"].update(line["data"])
                total += 1
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
