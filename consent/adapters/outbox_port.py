"""subjects.ports.OutboxPort: the rights workflow's events (rectified, restricted, lifted, erased, completed) reach
the outbox without subjects importing consent."""

from __future__ import annotations

import uuid
from typing import Any

from consent.webhooks.outbox import outbox_record


class OutboxPortImpl:
    def record(self, *, type: str, subject_id: uuid.UUID | None, data: dict[str, Any]) -> None:
        outbox_record(type=type, subject_id=subject_id, data=data)
