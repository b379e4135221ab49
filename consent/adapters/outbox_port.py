"""subjects.ports.OutboxPort: the rights workflow's events (rectified, restricted, lifted, erased, completed) reach
the outbox without subjects importing consent, and the Art. 19 notices come back for the reports."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from consent.webhooks.notices import notices_list, profile_readers
from consent.webhooks.outbox import RECORDS_BY_CLIENT, outbox_record


class OutboxPortImpl:
    def record(
        self,
        *,
        type: str,
        subject_id: uuid.UUID | None,
        data: dict[str, Any],
        records_by_client: Mapping[str, list[dict[str, str]]] | None = None,
    ) -> int | None:
        if records_by_client is not None:
            data = {**data, RECORDS_BY_CLIENT: dict(records_by_client)}
        return outbox_record(type=type, subject_id=subject_id, data=data)

    def notices(
        self, *, event_ids: Sequence[int] = (), subject_ids: Sequence[uuid.UUID] = (), holders: Sequence[int] = ()
    ) -> dict[str, Any]:
        return notices_list(event_ids=event_ids, subject_ids=subject_ids, holders=holders)

    def profile_readers(self, *, subject_ids: Sequence[uuid.UUID]) -> list[int]:
        return profile_readers(subject_ids=subject_ids)
