"""Objection (Art. 21): `{"scope": "direct_marketing"}` is absolute for every marketing purpose on every channel
(Art. 21(3)); `{"purpose": KEY}` one purpose. It is recorded in the consent ledger through the port, already when
the request is opened (rights/requests.py); the part confirms it idempotently."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from subjects import ports
from subjects.rights import texts
from subjects.rights.context import CONSENT, PartContext, part_outcomes, request_complete


def objection_consent(context: PartContext) -> None:
    with context.step() as outcome:
        if context.subject_id is not None:
            purpose = context.request.details.get("purpose", "")
            recorded = ports.consent_rights.objection_record(
                subject_id=context.subject_id, purpose=purpose, request_id=context.request.id, now=timezone.now()
            )
            outcome["in_force"] = True
            outcome["recorded_by_part"] = recorded
        context.mark_done()


def objection_finish(context: PartContext) -> None:
    found = context.subject_id is not None
    result: dict[str, Any] = {
        "data_found": found,
        "message": texts.OBJECTION_DONE if found else texts.NO_DATA_FOUND,
        "objection": context.request.details,
        "in_force": bool(part_outcomes(context.request.id).get(CONSENT, {}).get("in_force")),
    }
    with context.step():
        request_complete(context, result)
