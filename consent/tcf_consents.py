"""A TC string as consent evidence: a CMP banner's IAB TCF v2.2 decision, recorded on the catalogue's purposes that name
TCF purposes (`tcf_purposes`).

One event per mapped purpose, on the `web` channel (a TC string is what a person chose on a website or in an app, not
for e-mail or the post): a grant when every TCF purpose the catalogue purpose names has consent in the string, else a
withdrawal (the person refused, or took back, at least one of them). Each event keeps the whole string as its evidence,
with what was decoded from it. `apply_catalog` refuses `tcf_purposes` on a purpose that does not rest on consent; one
that does not list the web channel is not mapped."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from config.errors import InvalidInputError
from consent.catalogue.snapshot import catalogue_snapshot
from consent.ledger.recording import ConsentCommand
from consent.models import Purpose
from consent.policy import LegalBasis
from consent.services import consent_record
from consent.tcf import TcString, tc_string_decode
from subjects.identity import Reference

TCF_CHANNEL = "web"


class TcStringUnmappedError(InvalidInputError):
    code = "tc_string_unmapped"
    title = "No purpose of the catalogue maps to IAB TCF purposes"


@dataclass(frozen=True, slots=True)
class TcfRecorded:
    subject_id: str
    decoded: TcString
    events: list[dict[str, str]]

    def as_body(self) -> dict[str, Any]:
        return {
            "subject": self.subject_id,
            "events": self.events,
            "tcf": {
                "cmp_id": self.decoded.cmp_id,
                "policy_version": self.decoded.policy_version,
                "purposes_consent": sorted(self.decoded.purposes_consent),
            },
        }


def tcf_mapping(client_purposes: frozenset[str] = frozenset()) -> dict[str, tuple[int, ...]]:
    """Catalogue purpose -> the TCF purposes it names, for the consent purposes on the web channel (and, for a client
    limited to some purposes, only those)."""
    snapshot = catalogue_snapshot()
    mapping: dict[str, tuple[int, ...]] = {}
    for key, ids in Purpose.objects.exclude(tcf_purposes=[]).values_list("key", "tcf_purposes"):
        info = snapshot.purposes.get(key)
        if info is None or not ids or info.rule.legal_basis != LegalBasis.CONSENT:
            continue
        if TCF_CHANNEL not in info.rule.channels:
            continue
        if client_purposes and key not in client_purposes:
            continue
        mapping[key] = tuple(int(i) for i in ids)
    return mapping


def consent_record_tc_string(
    *,
    reference: Reference,
    tc_string: object,
    source: str,
    actor: str = "subject",
    client_id: int | None = None,
    client_purposes: frozenset[str] = frozenset(),
) -> TcfRecorded:
    decoded = tc_string_decode(tc_string)
    mapping = tcf_mapping(client_purposes)
    if not mapping:
        raise TcStringUnmappedError(
            "no consent purpose on the web channel names tcf_purposes in the catalogue (for this client)",
            field="tc_string",
        )
    snapshot = catalogue_snapshot()
    assert isinstance(tc_string, str)  # tc_string_decode refused anything else
    evidence = {"tc_string": tc_string.strip(), "tcf": decoded.evidence()}
    events: list[dict[str, str]] = []
    subject_id = ""
    for key, ids in sorted(mapping.items()):
        granted = set(ids) <= decoded.purposes_consent
        recorded = consent_record(
            command=ConsentCommand(
                reference=reference if not subject_id else Reference(uuid.UUID(subject_id), ()),
                purpose=key,
                channel=TCF_CHANNEL,
                action="grant" if granted else "withdraw",
                notice_version=snapshot.purposes[key].current_notice if granted else None,
                source=source,
                actor=actor,
                evidence=evidence,
                client_id=client_id,
                client_purposes=client_purposes,
            )
        )
        subject_id = str(recorded.subject_id)
        events.append({"purpose": key, "channel": TCF_CHANNEL, **recorded.as_body()})
    return TcfRecorded(subject_id=subject_id, decoded=decoded, events=events)
