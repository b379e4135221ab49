"""The erasure log: which request erased which subject when, without personal data, in a table and in an
append-only file outside the database (a restored backup lacks the row): `manage.py replay_erasures` reads it."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from pathlib import Path

from django.conf import settings

from subjects.models import ErasureLog


def erasure_log_write(*, request_id: uuid.UUID, subject_id: uuid.UUID, now: datetime) -> None:
    """The erasure log: a row, and a line in a file outside the database (a restored backup lacks the row).
    Written before commit: a line whose transaction then fails only makes a replay erase an approved erasure."""
    ErasureLog.objects.get_or_create(
        request_id=request_id, defaults={"subject_id": subject_id, "erased_at": now, "summary": {}}
    )
    path = Path(settings.ASSENT_ERASURE_LOG)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"request": str(request_id), "subject": str(subject_id), "erased_at": now.isoformat()})
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def erasure_log_read(*, since: datetime, path: Path | None = None) -> list[tuple[uuid.UUID, uuid.UUID, datetime]]:
    """(request, subject, erased_at) of every logged erasure since `since`, from the file (and the table, for
    erasures the file lacks), oldest first, each once."""
    seen: dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID, datetime]] = {}
    file = path or Path(settings.ASSENT_ERASURE_LOG)
    if file.exists():
        with file.open(encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    entry = json.loads(line)
                    item = (
                        uuid.UUID(entry["request"]),
                        uuid.UUID(entry["subject"]),
                        datetime.fromisoformat(entry["erased_at"]),
                    )
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut by a crash mid-write
                if item[2] >= since:
                    seen.setdefault(item[0], item)
    for request_id, subject_id, erased_at in ErasureLog.objects.filter(erased_at__gte=since).values_list(
        "request_id", "subject_id", "erased_at"
    ):
        seen.setdefault(request_id, (request_id, subject_id, erased_at))
    return sorted(seen.values(), key=lambda item: item[2])
