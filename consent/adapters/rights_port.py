"""The consent side of data-subject rights: `subjects.ports.ConsentRightsPort`, registered in ConsentConfig.ready().

subjects.rights never imports consent; it asks this port for the catalogue's facts, the ledger part of an export,
the recipients (Art. 15(1)(c), Art. 19), the erasure of consent data into the restricted evidence store, and
objections (Art. 21)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, Max, Min, Q

from config.names import as_given, localised
from consent.adapters.evidence_archive import (
    RIGHTS_SOURCE,
    event_fields,
    evidence_archive_plan,
    evidence_archive_purge,
    evidence_archive_write,
    iso,
)
from consent.catalogue.dpv import LEGAL_BASIS_CODES
from consent.catalogue.snapshot import CatalogueSnapshot, catalogue_snapshot, purpose_get
from consent.ledger.chain import (
    EVIDENCE_COLUMN,
    ledger_retention_allow,
)
from consent.ledger.recording import ConsentCommand, consent_event_record, direct_marketing_objection_record
from consent.models import (
    Confirmation,
    ConsentEvent,
    ConsentState,
    DataCategory,
    EvidenceArchive,
    IdempotencyKey,
    LedgerHead,
    Objection,
    Purpose,
    ReadLog,
    SendRecipient,
    Source,
)
from consent.receipts import RECEIPT_ACTIONS, receipt_sign, receipts_signed
from consent.services import idempotency_window_start
from subjects.identity import Reference
from subjects.keys import data_key, open_field
from subjects.locks import lock_subject
from subjects.models import Subject
from subjects.ports import HoldingFacts, PurposeFacts, RightsCatalogue, SourceFacts


def _names(model: type[DataCategory | Purpose | Source]) -> dict[str, str]:
    return {
        key: localised(as_given(name, texts)) for key, name, texts in model.objects.values_list("key", "name", "names")
    }


class ConsentRightsPortImpl:
    """subjects.ports.ConsentRightsPort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: tuple[CatalogueSnapshot, RightsCatalogue] | None = None

    # -----------------------------------------------------------------------------------------------------
    # The catalogue
    # -----------------------------------------------------------------------------------------------------
    def catalogue(self) -> RightsCatalogue:
        snapshot = catalogue_snapshot()
        cached = self._cached
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        # The report is in German, the catalogue's fallback language (a name may hold texts per language).
        names = _names(Source)
        purpose_names = _names(Purpose)
        automated = {
            key: localised(as_given(text, texts))
            for key, text, texts in Purpose.objects.values_list("key", "automated_decision", "automated_decision_texts")
        }
        sources = {
            key: SourceFacts(
                key=key,
                name=names.get(key, key),
                system_of_record=key in snapshot.system_of_record,
                connector=snapshot.connectors.get(key),
                holdings={
                    category: HoldingFacts(
                        delete_after_days=h.delete_after_days,
                        hold_years=h.legal_hold_years,
                        hold_from=h.legal_hold_from,
                        hold_law=h.legal_hold_law,
                    )
                    for category, h in holdings.items()
                },
            )
            for key, holdings in snapshot.sources.items()
        }
        dpv_codes = dict(Purpose.objects.values_list("key", "dpv"))
        purposes = {
            key: PurposeFacts(
                key=key,
                name=purpose_names.get(key, info.name),
                legal_basis=info.rule.legal_basis.value,
                marketing=info.rule.marketing,
                channels=tuple(sorted(info.rule.channels)),
                categories=info.data_categories,
                automated_decision=automated.get(key, ""),
                consent_valid_days=info.rule.consent_valid_days,
                dpv=dpv_codes.get(key, ""),
                dpv_legal_basis=LEGAL_BASIS_CODES.get(info.rule.legal_basis.value, ""),
            )
            for key, info in snapshot.purposes.items()
        }
        result = RightsCatalogue(
            sources=sources,
            purposes=purposes,
            categories=_names(DataCategory),
            merge_identifiers=snapshot.merge_identifiers,
            profile_categories=frozenset(k for k, profile in snapshot.categories.items() if profile),
        )
        with self._lock:
            self._cached = (snapshot, result)
        return result

    # -----------------------------------------------------------------------------------------------------
    # Export
    # -----------------------------------------------------------------------------------------------------
    def consent_rows(self, *, subject_ids: Sequence[uuid.UUID]) -> Iterator[dict[str, Any]]:
        subjects = {s.id: s for s in Subject.objects.filter(pk__in=subject_ids)}
        keys: dict[uuid.UUID, bytes] = {}
        signing = receipts_signed()
        for event in _events_in_pages(subject_ids):
            evidence: dict[str, Any] = {}
            if event.evidence_enc:
                subject = subjects[event.subject_id]
                key = keys.get(subject.id) or keys.setdefault(subject.id, data_key(subject))
                evidence = json.loads(open_field(key, bytes(event.evidence_enc), subject.id, EVIDENCE_COLUMN, event.pk))
            row = {"type": "event", **event_fields(event, evidence)}
            if signing and event.action in RECEIPT_ACTIONS:
                row["receipt"] = receipt_sign(event)  # the signed receipt (consent.receipts), verifiable offline
            yield row
        for state in ConsentState.objects.filter(subject_id__in=subject_ids).order_by("purpose", "channel"):
            yield {
                "type": "state",
                "purpose": state.purpose,
                "channel": state.channel,
                "status": state.status,
                "since": iso(state.since),
                "notice_version": state.notice_version or None,
                "confirmed": state.confirmed,
            }
        for objection in Objection.objects.filter(subject_id__in=subject_ids).order_by("purpose"):
            yield {
                "type": "objection",
                "purpose": objection.purpose,
                "scope": "direct_marketing" if not objection.purpose else "purpose",
                "since": iso(objection.since),
            }
        for recipient in self.recipients(subject_ids=subject_ids):
            yield {"type": "recipient", **recipient}

    def recipients(self, *, subject_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
        """Named recipients from the read and send logs, aggregated per client in a fixed number of queries."""
        out: dict[tuple[str, str], dict[str, Any]] = {}

        def entry(name: str, kind: str) -> dict[str, Any]:
            return out.setdefault(
                (name, kind),
                {
                    "name": name,
                    "kind": kind,
                    "purposes": set(),
                    "categories": set(),
                    "channels": set(),
                    "count": 0,
                    "first_at": None,
                    "last_at": None,
                },
            )

        def span(item: dict[str, Any], count: int, first: datetime, last: datetime) -> None:
            item["count"] += count
            item["first_at"] = min(filter(None, [item["first_at"], iso(first)]))
            item["last_at"] = max(filter(None, [item["last_at"], iso(last)]))

        reads = ReadLog.objects.filter(subject_id__in=subject_ids)
        for name, purpose, count, first, last in reads.values_list("client__name", "purpose").annotate(
            Count("pk"), Min("read_at"), Max("read_at")
        ):
            item = entry(name, "profile_read")
            item["purposes"].add(purpose)
            span(item, count, first, last)
        for name, categories in reads.values_list("client__name", "categories").distinct():
            entry(name, "profile_read")["categories"].update(categories or [])
        sends = SendRecipient.objects.filter(subject_id__in=subject_ids, allowed=True)
        for name, purpose, channel, count, first, last in sends.values_list(
            "send__client__name", "send__purpose", "send__channel"
        ).annotate(Count("pk"), Min("send__created_at"), Max("send__created_at")):
            item = entry(name, "send")
            item["purposes"].add(purpose)
            item["channels"].add(channel)
            span(item, count, first, last)
        return [{k: sorted(v) if isinstance(v, set) else v for k, v in item.items()} for _, item in sorted(out.items())]

    # -----------------------------------------------------------------------------------------------------
    # Erasure
    # -----------------------------------------------------------------------------------------------------
    def consent_erase(
        self, *, subject_ids: Sequence[uuid.UUID], request_id: uuid.UUID, now: datetime
    ) -> dict[str, Any]:
        assert transaction.get_connection().in_atomic_block, "runs under the subjects' locks in the caller's batch"
        ids = list(subject_ids)
        survivor = ids[0]
        if not _anything_left(ids):  # the finish step asks again, for what arrived while the parts ran
            archived = EvidenceArchive.objects.filter(subject_id=survivor).values_list("event_count", "keep_until")
            count, keep_until = archived.first() or (0, None)
            return {
                "events_archived": count,
                "events_archived_now": 0,
                "recipients": [],
                "logs_deleted": 0,
                "keep_until": keep_until.isoformat() if keep_until else None,
            }
        # Art. 19: the recipients go into the report before the logs that name them are deleted.
        recipients = self.recipients(subject_ids=ids)
        events = list(
            ConsentEvent.objects.filter(subject_id__in=ids).select_related("client").order_by("subject_id", "seq")
        )
        archive = EvidenceArchive.objects.filter(subject_id=survivor).first()
        archived_now = len(events)
        if events:
            archive = evidence_archive_write(
                survivor=survivor, ids=ids, events=events, archive=archive, request_id=request_id, now=now
            )
        logs = ReadLog.objects.filter(subject_id__in=ids).delete()[0]
        logs += SendRecipient.objects.filter(subject_id__in=ids).update(subject=None)
        Confirmation.objects.filter(subject_id__in=ids).delete()
        ConsentState.objects.filter(subject_id__in=ids).delete()
        Objection.objects.filter(subject_id__in=ids).delete()
        ledger_retention_allow()  # the one documented path past the ledger's append-only trigger
        ConsentEvent.objects.filter(pk__in=[e.pk for e in events]).delete()
        LedgerHead.objects.filter(subject_id__in=ids).delete()
        # Idempotency rows keep a write's response body for replays (ids and states only): it names the subject.
        # They live ASSENT_IDEMPOTENCY_HOURS; the window keeps this off the table's old rows.
        recent = IdempotencyKey.objects.filter(created_at__gte=idempotency_window_start(now) - timedelta(hours=2))
        recent.filter(body__subject__in=[str(subject_id) for subject_id in ids]).delete()
        return {
            "events_archived": archive.event_count if archive else 0,
            "events_archived_now": archived_now,
            "keep_until": archive.keep_until.isoformat() if archive else None,
            "recipients": recipients,
            "logs_deleted": logs,
        }

    def consent_erase_plan(self, *, subject_ids: Sequence[uuid.UUID]) -> dict[str, Any]:
        ids = list(subject_ids)
        events, keep_until = evidence_archive_plan(ids=ids)
        return {
            "events": events,
            "keep_until": keep_until.isoformat() if keep_until else None,
            "states": ConsentState.objects.filter(subject_id__in=ids).count(),
            "read_logs": ReadLog.objects.filter(subject_id__in=ids).count(),
            "sends": SendRecipient.objects.filter(subject_id__in=ids).count(),
        }

    def evidence_purge(self, *, now: datetime) -> int:
        return evidence_archive_purge(now=now)

    # -----------------------------------------------------------------------------------------------------
    # Objection
    # -----------------------------------------------------------------------------------------------------
    def objection_record(self, *, subject_id: uuid.UUID, purpose: str, request_id: uuid.UUID, now: datetime) -> bool:
        subject = lock_subject(subject_id)
        if Objection.objects.filter(subject=subject, purpose=purpose).exists():
            return False
        evidence = {"request": str(request_id)}
        if purpose:
            _, info = purpose_get(catalogue_snapshot(), purpose, field_name="details.purpose")
            consent_event_record(
                ConsentCommand(
                    reference=Reference(subject.id, ()),
                    purpose=purpose,
                    action="object",
                    source=RIGHTS_SOURCE,
                    evidence=evidence,
                ),
                info,
                now,
            )
            return True
        # Art. 21(3): absolute for every marketing purpose on every channel; the policy reads Objection(""). The
        # standing objection was ruled out above, so this records.
        direct_marketing_objection_record(
            subject,
            source=RIGHTS_SOURCE,
            actor="subject",
            evidence={**evidence, "scope": "direct_marketing"},
            now=now,
        )
        return True


def _anything_left(ids: list[uuid.UUID]) -> bool:
    """One query: is any consent row of these subjects left?"""
    mine = {"subject_id__in": ids}
    flags = (
        Subject.objects.filter(pk=ids[0])
        .values_list(
            Exists(ConsentEvent.objects.filter(**mine)),
            Exists(ConsentState.objects.filter(**mine)),
            Exists(Objection.objects.filter(**mine)),
            Exists(Confirmation.objects.filter(**mine)),
            Exists(LedgerHead.objects.filter(**mine)),
            Exists(ReadLog.objects.filter(**mine)),
            Exists(SendRecipient.objects.filter(**mine)),
        )
        .first()
    )
    return bool(flags and any(flags))


def _events_in_pages(subject_ids: Sequence[uuid.UUID], size: int = 2000) -> Iterator[ConsentEvent]:
    """The chains' events in order, a page (one query) at a time: flat memory, no server-side cursor."""
    events = (
        ConsentEvent.objects.filter(subject_id__in=subject_ids).select_related("client").order_by("subject_id", "seq")
    )
    page = list(events[:size])
    while page:
        yield from page
        if len(page) < size:
            return
        last = page[-1]
        page = list(
            events.filter(Q(subject_id__gt=last.subject_id) | Q(subject_id=last.subject_id, seq__gt=last.seq))[:size]
        )
