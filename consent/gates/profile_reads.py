"""Purpose-bound profile reads (Art. 5(1)(b)-(c), purpose limitation and data minimisation): a read is not tied to
a channel (decide_read), returns only the data categories the purpose declares, and is logged with the calling
client, so that an access request can name the recipients (Art. 15(1)(c)) and an erasure can tell them (Art. 19).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from consent.catalogue.snapshot import CatalogueSnapshot, PurposeInfo, catalogue_snapshot, purpose_get
from consent.clients import client_purpose_check
from consent.errors import PolicyDeniedError, undecidable
from consent.models import ReadLog
from consent.policy import Reason, decide_read
from consent.selectors import subject_states_for_policy
from subjects.columns import RECORD_DATA
from subjects.keys import data_key, decrypt_field
from subjects.models import LinkedRecord, Subject
from subjects.profile import profile_read
from subjects.selectors import subject_get_survivor


@dataclass(frozen=True, slots=True)
class ProfileRead:
    subject_id: uuid.UUID
    purpose: str
    data: dict[str, Any]  # category -> profile attributes (profile categories) or list of records
    withheld: list[str]  # categories the subject has data in that the purpose does not declare

    def as_body(self) -> dict[str, Any]:
        return {"subject": str(self.subject_id), "purpose": self.purpose, "data": self.data, "withheld": self.withheld}


def profile_read_for_purpose(
    *,
    subject_id: uuid.UUID,
    purpose: str,
    client_id: int,
    client_purposes: frozenset[str],
    now: datetime | None = None,
) -> ProfileRead:
    """The subject's data in the categories `purpose` declares, if the policy allows the purpose to read it.

    400 unknown purpose, 403 a client restricted to other purposes, 404 unknown subject (an absorbed id reads
    the survivor), 403 `policy_denied` with the reason. Every allowed read writes one ReadLog row; a denied read
    discloses nothing and is not a recipient's read.
    """
    now = now or timezone.now()
    snapshot, info = purpose_get(catalogue_snapshot(), purpose)
    client_purpose_check(purpose=purpose, client_purposes=client_purposes)
    subject = subject_get_survivor(subject_id=subject_id)
    _read_decide(subject, purpose, info, now)
    data, held = _declared_data(subject, snapshot, info)
    disclosed = sorted(category for category, value in data.items() if value)
    # One insert in autocommit: the read is logged before the data leaves, and nothing else rides on it.
    ReadLog.objects.create(subject=subject, client_id=client_id, purpose=purpose, categories=disclosed, read_at=now)
    return ProfileRead(subject.id, purpose, data, sorted(held - set(info.data_categories)))


def _read_decide(subject: Subject, purpose: str, info: PurposeInfo, now: datetime) -> None:
    """The policy's answer for the read: nothing (allowed), 503 when it cannot decide, else 403 with the reason."""
    try:
        state = subject_states_for_policy(subject_ids=[subject.id], purposes=[purpose]).get(subject.id)
    except Exception as exc:  # a state that cannot be read (or the database gone): fail closed, 503
        raise undecidable() from exc
    decision = decide_read(state, info.rule, now)
    if decision.reason == Reason.UNAVAILABLE:
        raise undecidable()
    if not decision.allowed:
        raise PolicyDeniedError(
            f"purpose '{purpose}' may not read this subject's data ({decision.reason.value})",
            reason=decision.reason.value,
        )


def _declared_data(subject: Subject, snapshot: CatalogueSnapshot, info: PurposeInfo) -> tuple[dict[str, Any], set[str]]:
    """The subject's data in the categories the purpose declares (profile attributes, or the linked records), and
    every category the subject holds data in."""
    profile_categories = {key for key, profile in snapshot.categories.items() if profile}
    declared = set(info.data_categories)
    record_categories = set(
        LinkedRecord.objects.filter(subject=subject).order_by().values_list("category", flat=True).distinct()
    )
    key = data_key(subject)
    profile = profile_read(subject, key)

    data: dict[str, Any] = {}
    for category in sorted(declared & profile_categories):
        data[category] = dict(profile)
    wanted = sorted(declared - profile_categories)
    for category in wanted:
        data[category] = []
    if wanted and record_categories & set(wanted):
        rows = (
            LinkedRecord.objects.filter(subject=subject, category__in=wanted)
            .order_by("occurred_at", "source", "external_id")
            .values_list("pk", "category", "source", "external_id", "occurred_at", "data_enc")
        )
        for pk, category, source, external_id, occurred_at, blob in rows:
            data[category].append(
                {
                    "source": source,
                    "external_id": external_id,
                    "occurred_at": occurred_at,
                    "data": json.loads(decrypt_field(subject, key, RECORD_DATA, bytes(blob), row_id=pk)),
                }
            )
    held = record_categories | (profile_categories if profile else set())
    return data, held
