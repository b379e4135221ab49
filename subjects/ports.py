"""Where subjects core must act on consent data it calls these ports; `consent` fills them in ready().
subjects never imports consent (checked by import-linter)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class ConsentPort(Protocol):
    def on_merge(self, *, survivor_id: uuid.UUID, absorbed_id: uuid.UUID, now: datetime) -> None:
        """Close the absorbed chain with a `merged` event referenced from the survivor's chain, merge consent
        states to the most restrictive, move read and send logs. Runs in the merge's transaction."""

    def on_split(self, *, survivor_id: uuid.UUID, restored_id: uuid.UUID, now: datetime) -> None:
        """Undo on_merge: both chains get an event, each side's states are rebuilt from its own events."""


class _Unset:
    def __getattr__(self, name: str) -> object:
        raise RuntimeError("the consent port is not registered (is 'consent' in INSTALLED_APPS?)")


consent: ConsentPort = _Unset()  # type: ignore[assignment]


def register_consent_port(port: ConsentPort) -> None:
    global consent
    consent = port


# ---------------------------------------------------------------------------------------------------------
# Rights requests (subjects.rights): the catalogue's facts, the ledger part of an export, erasure of consent
# data, objections. Values cross the port as plain data, never as consent models.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HoldingFacts:
    """What one source keeps of one data category: the storage limit and a legal hold, if any."""

    delete_after_days: int
    hold_years: int | None = None
    hold_from: str = ""  # "end_of_year" or "record"
    hold_law: str = ""


@dataclass(frozen=True, slots=True)
class SourceFacts:
    key: str
    name: str
    system_of_record: bool
    holdings: Mapping[str, HoldingFacts] = field(default_factory=dict)  # category -> holding
    connector: Mapping[str, Any] | None = None  # how rights reach into the system (API.md, "Connectors")


@dataclass(frozen=True, slots=True)
class PurposeFacts:
    key: str
    name: str
    legal_basis: str
    marketing: bool
    channels: tuple[str, ...]
    categories: tuple[str, ...]
    automated_decision: str = ""
    consent_valid_days: int | None = None
    dpv: str = ""  # the purpose's W3C DPV concept, e.g. dpv:DirectMarketing ("" when the catalogue names none)
    dpv_legal_basis: str = ""  # the legal basis as a DPV concept, e.g. dpv:Consent


@dataclass(frozen=True, slots=True)
class RightsCatalogue:
    sources: Mapping[str, SourceFacts]
    purposes: Mapping[str, PurposeFacts]
    categories: Mapping[str, str]  # key -> name
    merge_identifiers: frozenset[str] = frozenset()
    profile_categories: frozenset[str] = frozenset()  # categories whose attributes live in the subject's profile


class ConsentRightsPort(Protocol):
    def catalogue(self) -> RightsCatalogue:
        """The catalogue as the rights workflow needs it (sources and holds, purposes, category names)."""

    def consent_rows(self, *, subject_ids: Sequence[uuid.UUID]) -> Iterator[dict[str, Any]]:
        """The person's consent data, JSON-ready, for an access export: every event of their chains (with
        evidence, prev_hash and hash; `type: event`), their states (`type: state`), their objections
        (`type: objection`) and the recipients from the read and send logs (`type: recipient`)."""

    def recipients(self, *, subject_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        """Who received the person's data (Art. 15(1)(c), Art. 19): API client names with purposes and dates."""

    def consent_erase(
        self, *, subject_ids: Sequence[uuid.UUID], request_id: uuid.UUID, now: datetime
    ) -> dict[str, Any]:
        """Erasure of the consent side, in the caller's transaction under the subjects' locks: copy the recipients
        (Art. 19), move every event to the restricted evidence store under its own key (kept while claims can be
        raised), then delete the ledger rows, states, objections, confirmations, logs and idempotency rows.
        Idempotent. Returns counts, the recipients and the evidence's keep-until date."""

    def consent_erase_plan(self, *, subject_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
        """What consent_erase would do now, doing nothing: `events` (moved to the evidence store), `keep_until`
        (ISO date or None), `states`, `read_logs` (deleted), `sends` (send-log entries unlinked from the person)."""

    def objection_record(self, *, subject_id: uuid.UUID, purpose: str, request_id: uuid.UUID, now: datetime) -> bool:
        """Art. 21: record an objection (purpose "" = all direct marketing) in the ledger, under the subject's lock
        in the caller's transaction. False when that objection is already in force."""

    def evidence_purge(self, *, now: datetime) -> int:
        """Delete evidence archives past their keep-until date, and destroy their keys."""


consent_rights: ConsentRightsPort = _Unset()  # type: ignore[assignment]


def register_consent_rights_port(port: ConsentRightsPort) -> None:
    global consent_rights
    consent_rights = port


# ---------------------------------------------------------------------------------------------------------
# The outbox (consent.webhooks): rights and identity changes written as events for connected systems, in the
# caller's transaction, under the subject's lock (which orders one person's events).
# ---------------------------------------------------------------------------------------------------------
class OutboxPort(Protocol):
    def record(
        self,
        *,
        type: str,
        subject_id: uuid.UUID | None,
        data: dict[str, Any],
        records_by_client: Mapping[str, list[dict[str, str]]] | None = None,
    ) -> int | None:
        """Write the event `type` (API.md, Webhooks) for every subscriber; `data` ids and keys only. An Art. 19
        event gives `records_by_client` (client id -> the person's records of the sources it wrote): each
        subscriber's delivery carries its client's list as `records`. The event's id, or None: nobody subscribed."""

    def notices(
        self, *, event_ids: Sequence[int] = (), subject_ids: Sequence[uuid.UUID] = (), holders: Sequence[int] = ()
    ) -> dict[str, Any]:
        """Art. 19 notices: `told` (per delivery of the events, or of every Art. 19 event about `subject_ids`: the
        recipient, `told_at`, `acknowledged_at`, `status`), `not_told` (the `holders`, client ids, no delivery went
        to) and `unacknowledged` (how many of both still wait)."""

    def profile_readers(self, *, subject_ids: Sequence[uuid.UUID]) -> list[int]:
        """The ids of the clients that read the person's profile (the read log)."""


outbox: OutboxPort = _Unset()  # type: ignore[assignment]


def register_outbox_port(port: OutboxPort) -> None:
    global outbox
    outbox = port


# ---------------------------------------------------------------------------------------------------------
# Connectors (API.md, Connectors): a signed POST to a connected system, under the webhooks' URL rules
# (consent.webhooks.urls), without subjects importing consent.
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SystemAnswer:
    status: int | None  # None: no answer (refused address, connection failed, timeout)
    body: bytes  # at most a bounded number of bytes
    error: str = ""


class ConnectorTransportPort(Protocol):
    def post(self, *, url: str, secret: str, msg_id: str, body: bytes, timeout: float | None = None) -> SystemAnswer:
        """POST `body` to `url` signed like a webhook (Standard Webhooks, `secret` a `whsec_` key); the URL is
        checked at sending time like a subscription's. `timeout`: seconds to wait for the answer (None: the
        transport's own, long enough for a system gathering a person's data)."""


connector_transport: ConnectorTransportPort = _Unset()  # type: ignore[assignment]


def register_connector_transport_port(port: ConnectorTransportPort) -> None:
    global connector_transport
    connector_transport = port
