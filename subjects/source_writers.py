"""Which API client wrote which source (Art. 19): noted by the records endpoints, read when a person's rectification,
restriction or erasure is told to connected systems (subjects.rights.art19)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

from django.db import connection
from django.utils import timezone

from subjects.models import LinkedRecord, SourceWriter

# Pairs this process has written: a client writes the same few sources all day, so after the first record of each
# the records endpoints pay nothing here. (A row is never deleted, so the memory is never wrong.)
_known: set[tuple[int, str]] = set()


def source_writers_note(*, client_id: int, sources: Iterable[str]) -> None:
    """Record that `client_id` writes `sources` (idempotent; its own statement, before the records' transaction, so
    that nothing of a write is left to do after its commit)."""
    new = sorted({s for s in sources if (client_id, s) not in _known})
    if not new:
        return
    now = timezone.now()
    SourceWriter.objects.bulk_create(
        [SourceWriter(client_id=client_id, source=source, first_at=now) for source in new], ignore_conflicts=True
    )
    # Remembered only once committed (under an outer atomic block a rollback would drop the rows).
    if connection.in_atomic_block:
        return
    _known.update((client_id, s) for s in new)


def records_by_client(*, subject_ids: Sequence[uuid.UUID], sources: Iterable[str] | None = None) -> dict[str, list]:
    """Per client id (as a string: a JSON key), the person's linked records (`source`, `external_id`) of the sources
    that client has written (API.md, Webhooks: the `records` of an Art. 19 event)."""
    writers: dict[str, set[str]] = {}
    query = SourceWriter.objects.all()
    if sources is not None:
        query = query.filter(source__in=list(sources))
    for client_id, source in query.values_list("client_id", "source"):
        writers.setdefault(source, set()).add(str(client_id))
    if not writers or not subject_ids:
        return {}
    out: dict[str, list[dict[str, str]]] = {}
    rows = (
        LinkedRecord.objects.filter(subject_id__in=subject_ids, source__in=list(writers))
        .order_by("source", "external_id")
        .values_list("source", "external_id")
    )
    for source, external_id in rows:
        for client in sorted(writers[source]):
            out.setdefault(client, []).append({"source": source, "external_id": external_id})
    return out


def source_writers(*, source: str) -> list[str]:
    """The ids (as strings) of the clients that have written `source`."""
    return sorted(str(c) for c in SourceWriter.objects.filter(source=source).values_list("client_id", flat=True))
