"""Erasure (Art. 17), exactly as DESIGN.md says.

- Every copy Assent holds goes: linked records (one part per source, in batches), identifiers and profile (the
  `profile` part), the consent side (the `consent` part, through the port), exports and their pieces, encrypted
  request details, merge-audit profiles; finally the data key (crypto-shredding) in `finish`, which also catches
  whatever arrived while the parts ran.
- Legal holds (Art. 17(3)(b),(e)): where a source category has one (e.g. till receipts: 8 years from the end of the
  calendar year, §147 AO, §257 HGB), the report names the system, the law and the end date. If Assent is itself
  the system of record, those records stay unchanged but restricted in RetainedRecord, under a retention key that
  is not the data key, until the scheduled purge; otherwise Assent's copy goes and the source system is told to
  restrict until that date instead of deleting.
- Consent proof moves to the restricted evidence store (consent side), the recipients are copied into the report
  before the logs go (Art. 19), and keyed hashes of the identifiers go to the suppression list.
- An erasure log without personal data (a table, and an append-only file outside the database) lets an operator
  re-apply erasures after restoring a backup: `manage.py replay_erasures --since DATE` (erasure_log.py, replay.py).

Every function here is idempotent and works in batches whose progress commits with them, so a part reclaimed after
a worker died resumes without doing anything twice."""

from __future__ import annotations

import json
import uuid
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from subjects import crypto, ports
from subjects.columns import IDENTIFIER_VALUE, RECORD_DATA, RETAINED_RECORD_DATA
from subjects.keys import data_key, decrypt_field
from subjects.models import (
    ErasureLog,
    Identifier,
    IdentifierChange,
    LinkedRecord,
    MergeAudit,
    RetainedRecord,
    RightsExport,
    RightsRequest,
    Subject,
    UndeliveredMail,
    VaultKey,
)
from subjects.rights import art19, calendar, texts
from subjects.rights.connector_parts import CONNECTOR, connector_erase, connectors_first, has_postgresql
from subjects.rights.context import (
    CONNECTOR_PART,
    CONSENT,
    PROFILE,
    SOURCE,
    PartContext,
    part_outcomes,
    request_complete,
)
from subjects.rights.erasure_log import erasure_log_write
from subjects.rights.exports import files_remove_on_commit
from subjects.rights.mails import completion_address_seal, completion_addresses_abandon
from subjects.rights.vault import vault_key_destroy, vault_key_get_or_create
from subjects.source_writers import source_writers
from subjects.suppression import suppression_add

BATCH = 1000
ART19_RECORDS = "art19_records"  # in a source part's outcome: client id -> the records it wrote, before they went
ART19_READERS = "art19_readers"  # in the consent part's outcome: the clients that read the profile
Hold = tuple[str, date]  # (the law, the end date)


class Steps(Protocol):
    """What erasure needs of its runner: the subjects, and batches (a part's leased steps, or a replay's)."""

    subject_ids: list[uuid.UUID]
    outcome: dict[str, Any]

    def step(self) -> AbstractContextManager[dict[str, Any]]: ...

    def mark_done(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------
# Records of one source
# ---------------------------------------------------------------------------------------------------------
def erase_source(steps: Steps, *, source: str, catalogue: ports.RightsCatalogue, now: datetime) -> None:
    facts = catalogue.sources.get(source)
    while True:
        with steps.step() as outcome:
            if not steps.subject_ids:
                _counts(outcome)
                steps.mark_done()
                break
            rows = list(
                LinkedRecord.objects.filter(subject_id__in=steps.subject_ids, source=source).order_by("pk")[:BATCH]
            )
            erase_records(rows, facts, outcome, steps.subject_ids[0], now)
            if len(rows) < BATCH:  # the last batch: the part is done with it, in its transaction
                steps.mark_done()
                break


def _counts(outcome: dict[str, Any]) -> dict[str, Any]:
    outcome.setdefault("deleted", 0)
    outcome.setdefault("retained", 0)
    outcome.setdefault("holds", {})
    return outcome


def record_hold(facts: ports.SourceFacts | None, category: str, occurred_at: datetime, today: date) -> Hold | None:
    """The legal hold on one record of a source's category, if it still runs today: (the law, its end date)."""
    holding = facts.holdings.get(category) if facts else None
    if holding is None or not holding.hold_years:
        return None
    ends = calendar.hold_until(occurred_at, years=holding.hold_years, start=holding.hold_from)
    return None if ends < today else (holding.hold_law, ends)


def erase_records(
    rows: list[LinkedRecord], facts: ports.SourceFacts | None, outcome: dict[str, Any], owner: uuid.UUID, now: datetime
) -> None:
    """One batch, in the caller's transaction under the subjects' locks."""
    _counts(outcome)
    today = now.astimezone(calendar.BERLIN).date()
    system_of_record = bool(facts and facts.system_of_record)
    retain: list[tuple[LinkedRecord, str, str]] = []
    for row in rows:
        held = record_hold(facts, row.category, row.occurred_at, today)
        if held is None:
            continue
        law, ends = held
        hold = outcome["holds"].setdefault(
            row.category, {"law": law, "until": ends.isoformat(), "count": 0, "kept_by_assent": system_of_record}
        )
        hold["until"] = max(hold["until"], ends.isoformat())
        hold["count"] += 1
        if system_of_record:
            retain.append((row, ends.isoformat(), law))
    if retain:
        vault, vault_key = vault_key_get_or_create(purpose=VaultKey.Purpose.RETENTION, subject_id=owner, now=now)
        keys: dict[uuid.UUID, bytes] = {}
        kept = []
        subjects = {s.id: s for s in Subject.objects.filter(pk__in={row.subject_id for row, _, _ in retain})}
        for row, until, law in retain:
            subject = subjects[row.subject_id]
            key = keys.get(subject.id) or keys.setdefault(subject.id, data_key(subject))
            plain = json.dumps(
                {
                    "external_id": row.external_id,
                    "data": json.loads(decrypt_field(subject, key, RECORD_DATA, bytes(row.data_enc), row_id=row.pk)),
                }
            )
            kept.append(
                RetainedRecord(
                    id=row.pk,
                    subject_id=owner,
                    vault=vault,
                    source=row.source,
                    category=row.category,
                    occurred_at=row.occurred_at,
                    retained_until=until,
                    law=law,
                    data_enc=crypto.seal(vault_key, plain.encode(), row.pk.bytes + RETAINED_RECORD_DATA.encode()),
                    retained_at=now,
                )
            )
        RetainedRecord.objects.bulk_create(kept, ignore_conflicts=True)
    _art19_snapshot(rows, outcome)
    LinkedRecord.objects.filter(pk__in=[row.pk for row in rows]).delete()
    outcome["deleted"] += len(rows) - len(retain)
    outcome["retained"] += len(retain)


def _art19_snapshot(rows: list[LinkedRecord], outcome: dict[str, Any]) -> None:
    """Before the records go: which client wrote which of them, for the Art. 19 event the finish step writes."""
    if not rows:
        return
    writers = source_writers(source=rows[0].source)  # one source per batch
    if not writers:
        return
    kept = outcome.setdefault(ART19_RECORDS, {})
    for client in writers:
        kept.setdefault(client, []).extend({"source": r.source, "external_id": r.external_id} for r in rows)


# ---------------------------------------------------------------------------------------------------------
# Identifiers and profile
# ---------------------------------------------------------------------------------------------------------
def erase_profile(steps: Steps, *, now: datetime) -> None:
    with steps.step() as outcome:
        _erase_identifiers(steps.subject_ids, outcome, now)
        steps.mark_done()


def _erase_identifiers(subject_ids: list[uuid.UUID], outcome: dict[str, Any], now: datetime) -> None:
    """Keyed hashes of every identifier to the suppression list (a later marketing grant from anyone but the
    person stays pending), then the identifiers and the profile go."""
    outcome.setdefault("identifiers_deleted", 0)
    outcome.setdefault("suppressed", 0)
    outcome.setdefault("profile_deleted", False)
    if not subject_ids:
        return
    subjects = {s.id: s for s in Subject.objects.filter(pk__in=subject_ids)}
    keys = {sid: data_key(s) for sid, s in subjects.items() if s.wrapped_key is not None}
    rows = list(
        Identifier.objects.filter(subject_id__in=subject_ids).values_list("pk", "subject_id", "kind", "value_enc")
    )
    suppressed = suppression_add(
        identifiers=[
            (kind, decrypt_field(subjects[subject_id], keys[subject_id], IDENTIFIER_VALUE, bytes(blob), row_id=pk))
            for pk, subject_id, kind, blob in rows
        ],
        now=now,
    )
    Identifier.objects.filter(pk__in=[row[0] for row in rows]).delete()
    # A pending or settled address change keeps the keyed hash of an address and of its link's token: it goes too.
    IdentifierChange.objects.filter(subject_id__in=subject_ids).delete()
    # A mail that did not reach the person ties a failure to them: with the person gone, so is the tie.
    UndeliveredMail.objects.filter(subject_id__in=subject_ids).delete()
    had_profile = any(s.profile_enc for s in subjects.values())
    Subject.objects.filter(pk__in=subject_ids).update(profile_enc=None)
    outcome["identifiers_deleted"] += len(rows)
    outcome["suppressed"] += suppressed
    outcome["profile_deleted"] = bool(outcome["profile_deleted"] or had_profile)


# ---------------------------------------------------------------------------------------------------------
# Consent (through the port)
# ---------------------------------------------------------------------------------------------------------
def erase_consent(steps: Steps, *, request_id: uuid.UUID, now: datetime) -> None:
    with steps.step() as outcome:
        if steps.subject_ids:
            # Art. 19: who read the person's profile, before the read log goes.
            outcome[ART19_READERS] = ports.outbox.profile_readers(subject_ids=steps.subject_ids)
            outcome.update(
                ports.consent_rights.consent_erase(subject_ids=steps.subject_ids, request_id=request_id, now=now)
            )
        steps.mark_done()


# ---------------------------------------------------------------------------------------------------------
# The end: late arrivals, copies, the key
# ---------------------------------------------------------------------------------------------------------
def erasure_seal(
    subject_ids: list[uuid.UUID], request_id: uuid.UUID, catalogue: ports.RightsCatalogue, now: datetime
) -> dict[str, Any]:
    """In the caller's transaction under the subjects' locks. Returns what it found that arrived late."""
    late: dict[str, Any] = {}
    for source in sorted(set(LinkedRecord.objects.filter(subject_id__in=subject_ids).values_list("source", flat=True))):
        rows = LinkedRecord.objects.filter(subject_id__in=subject_ids, source=source).order_by("pk")
        outcome = late.setdefault(SOURCE + source, {})
        while batch := list(rows[:BATCH]):
            erase_records(batch, catalogue.sources.get(source), outcome, subject_ids[0], now)
    if Identifier.objects.filter(subject_id__in=subject_ids).exists():
        _erase_identifiers(subject_ids, late.setdefault(PROFILE, {}), now)
    consent = ports.consent_rights.consent_erase(subject_ids=subject_ids, request_id=request_id, now=now)
    if consent.get("events_archived_now"):
        late[CONSENT] = consent
    # Copies: exports (the files go after commit; their keys derive from the data key destroyed below anyway).
    exports = list(RightsExport.objects.filter(subject_id__in=subject_ids).values_list("pk", flat=True))
    RightsExport.objects.filter(pk__in=exports).delete()
    requests = list(RightsRequest.objects.filter(subject_id__in=subject_ids).values_list("pk", flat=True))
    RightsRequest.objects.filter(pk__in=requests).update(details_enc=None)
    files_remove_on_commit(export_ids=exports, request_ids=requests)
    MergeAudit.objects.filter(Q(survivor_id__in=subject_ids) | Q(absorbed_id__in=subject_ids)).update(
        absorbed_profile_enc=None, survivor_profile_enc=None
    )
    # Crypto-shredding: whatever ciphertext of this person survives anywhere (a backup, a file) is unreadable once
    # no backup holds this wrapped key under a master key still in use.
    Subject.objects.filter(pk__in=subject_ids).update(wrapped_key=None, profile_enc=None, erased_at=now)
    Subject.objects.filter(pk=subject_ids[0]).update(status=Subject.Status.ERASED)
    erasure_log_write(request_id=request_id, subject_id=subject_ids[0], now=now)
    return late


def erasure_finish(context: PartContext) -> None:
    catalogue = ports.consent_rights.catalogue()
    with context.step():
        now = timezone.now()
        readers = ports.outbox.profile_readers(subject_ids=context.subject_ids) if context.subject_ids else []
        late = erasure_seal(context.subject_ids, context.request.id, catalogue, now) if context.subject_ids else {}
        outcomes = part_outcomes(context.request.id)
        report = erasure_report(
            catalogue=catalogue, outcomes=outcomes, late=late, now=now, key_destroyed=bool(context.subject_ids)
        )
        if context.subject_ids:
            ErasureLog.objects.filter(request_id=context.request.id).update(summary=_summary(report))
            # Art. 19: every connected system hears of the erasure, in its transaction; the records and readers
            # were noted by the parts before they went.
            records: dict[str, list[dict[str, str]]] = {}
            for outcome in [*outcomes.values(), *late.values()]:
                for client, items in outcome.get(ART19_RECORDS, {}).items():
                    records.setdefault(client, []).extend(items)
            for items in records.values():
                items.sort(key=lambda r: (r["source"], r["external_id"]))
            readers += outcomes.get(CONSENT, {}).get(ART19_READERS, [])
            report[art19.KEY] = art19.art19_tell(
                type="subject.erased",
                subject_ids=context.subject_ids,
                data={"subject": str(context.subject_ids[0]), "request": str(context.request.id)},
                records=records,
                readers=readers,
            )
        request_complete(context, report)


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "deleted": sum(s["deleted"] for s in report["sources"]),
        "kept": sum(k.get("count", 0) for k in report["kept"]),
        "identifiers": report["profile"]["identifiers_deleted"],
        "consent_events": report["consent"]["events_moved"],
    }


def _sources_report(
    catalogue: ports.RightsCatalogue, outcomes: dict[str, dict[str, Any]], late: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per source: deleted and kept; everything kept under a legal hold, where, why and until when)."""
    names = sorted({n for n in outcomes if n.startswith(SOURCE)} | {n for n in late if n.startswith(SOURCE)})
    sources: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    for name in names:
        key = name.removeprefix(SOURCE)
        facts = catalogue.sources.get(key)
        system = facts.name if facts else key
        parts = [outcomes.get(name, {}), late.get(name, {})]
        entry: dict[str, Any] = {
            "source": key,
            "name": system,
            "deleted": sum(int(p.get("deleted", 0)) for p in parts),
            "kept": [],
        }
        holds: dict[str, dict[str, Any]] = {}
        for part in parts:
            for category, hold in part.get("holds", {}).items():
                merged = holds.setdefault(category, dict(hold, count=0))
                merged["count"] += hold["count"]
                merged["until"] = max(merged["until"], hold["until"])
        for category, hold in sorted(holds.items()):
            if hold["kept_by_assent"]:
                where, instruction = texts.RETENTION_STORE, texts.KEPT_BY_ASSENT
            else:
                where, instruction = f"{system}{texts.SOURCE_SYSTEM['en']}", texts.RESTRICT_AT_SOURCE
            item = {
                "category": category,
                "count": hold["count"],
                "where": where,
                "why": hold["law"],
                "until": hold["until"],
                "instruction": instruction,
            }
            entry["kept"].append(item)
            kept.append({"source": key, **item})
        system_report = outcomes.get(name, {}).get(CONNECTOR)
        if system_report is not None:
            # What the connected system itself erased, and what it kept and why (API.md, "Connectors").
            entry["system"] = system_report
            where = f"{system}{texts.SOURCE_SYSTEM['en']}"
            kept.extend({"source": key, "where": where, **item} for item in system_report["kept"])
        sources.append(entry)
    return sources, kept


def _systems_report(catalogue: ports.RightsCatalogue, outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per connected system (API.md, Connectors): what it erased, and what it kept, why and until when."""
    systems = []
    for name in sorted(n for n in outcomes if n.startswith(CONNECTOR_PART)):
        key = name.removeprefix(CONNECTOR_PART)
        facts = catalogue.sources.get(key)
        outcome = outcomes[name]
        systems.append(
            {
                "source": key,
                "name": facts.name if facts else key,
                "asked": bool(outcome.get("asked")),
                "erased": list(outcome.get("erased", [])),
                "kept": list(outcome.get("kept", [])),
            }
        )
    return systems


def erasure_report(
    *,
    catalogue: ports.RightsCatalogue,
    outcomes: dict[str, dict[str, Any]],
    late: dict[str, Any],
    now: datetime,
    key_destroyed: bool,
) -> dict[str, Any]:
    """Per source: deleted, and kept where, why and until when; the recipients told (Art. 19)."""
    sources, kept = _sources_report(catalogue, outcomes, late)
    profile = [outcomes.get(PROFILE, {}), late.get(PROFILE, {})]
    consent = outcomes.get(CONSENT, {})
    events = int(consent.get("events_archived", 0)) + int(late.get(CONSENT, {}).get("events_archived_now", 0))
    if events:
        kept.append(
            {
                "category": "consent proof",
                "count": events,
                "where": texts.EVIDENCE_STORE,
                "why": texts.EVIDENCE_WHY,
                "until": consent.get("keep_until") or late.get(CONSENT, {}).get("keep_until"),
                "instruction": texts.KEPT_BY_ASSENT,
            }
        )
    systems = _systems_report(catalogue, outcomes)
    for system in systems:
        for item in system["kept"]:
            kept.append(
                {
                    "source": system["source"],
                    "category": item["what"],
                    "where": f"{system['name']}{texts.CONNECTED_SYSTEM['en']}",
                    "why": item["why"],
                    "until": item["until"],
                    "instruction": texts.KEPT_BY_SYSTEM,
                }
            )
    identifiers = sum(int(p.get("identifiers_deleted", 0)) for p in profile)
    profile_deleted = any(p.get("profile_deleted") for p in profile)
    data_found = bool(
        identifiers
        or profile_deleted
        or events
        or any(s["deleted"] or s["kept"] or s.get("system") for s in sources)
        or any(s["erased"] or s["kept"] for s in systems)
    )
    return {
        "data_found": data_found,
        "message": texts.ERASURE_DONE if data_found else texts.NO_DATA_FOUND,
        "erased_at": now.isoformat(),
        "sources": sources,
        "systems": systems,
        "profile": {"identifiers_deleted": identifiers, "profile_deleted": profile_deleted},
        "consent": {"events_moved": events, "logs_deleted": int(consent.get("logs_deleted", 0))},
        "kept": kept,
        "recipients": list(consent.get("recipients", [])),
        "recipients_note": texts.RECIPIENTS_NOTE,
        "suppressed_identifiers": sum(int(p.get("suppressed", 0)) for p in profile),
        "data_key_destroyed": key_destroyed,
    }


# ---------------------------------------------------------------------------------------------------------
# Handlers of the parts, and the replay after a backup restore
# ---------------------------------------------------------------------------------------------------------
def erasure_source(context: PartContext) -> None:
    source = context.name.removeprefix(SOURCE)
    catalogue = ports.consent_rights.catalogue()
    now = timezone.now()
    facts = catalogue.sources.get(source)
    if has_postgresql(facts):
        assert facts is not None
        connector_erase(context, facts, now)  # the connected system first, while the identifiers are still here
    erase_source(context, source=source, catalogue=catalogue, now=now)


def erasure_profile(context: PartContext) -> None:
    connectors_first(context)  # they find the person in the connected systems by the identifiers erased here
    subject = context.subject()
    if subject is not None:
        with context.step():
            # The completion mail goes out after the addresses are gone: they wait for it sealed under a key that
            # is not the data key (mails.py), written in a batch of its own just before the one that erases them.
            completion_address_seal(request_id=context.request.id, subject=subject, now=timezone.now())
    erase_profile(context, now=timezone.now())


def erasure_consent(context: PartContext) -> None:
    erase_consent(context, request_id=context.request.id, now=timezone.now())


def retention_purge(*, now: datetime | None = None) -> int:
    """Delete retained records whose legal period has ended; destroy retention keys with nothing left, and the mail
    keys of completion mails that waited too long for the mail server (mails.completion_addresses_abandon)."""
    now = now or timezone.now()
    today = now.astimezone(calendar.BERLIN).date()
    deleted = 0
    while ids := list(RetainedRecord.objects.filter(retained_until__lt=today).values_list("pk", flat=True)[:BATCH]):
        with transaction.atomic(durable=True):
            deleted += RetainedRecord.objects.filter(pk__in=ids).delete()[0]
    used = RetainedRecord.objects.values_list("vault_id", flat=True)
    with transaction.atomic(durable=True):
        for vault_id in (
            VaultKey.objects.filter(purpose=VaultKey.Purpose.RETENTION, wrapped_key__isnull=False)
            .exclude(pk__in=used)
            .values_list("pk", flat=True)
        ):
            vault_key_destroy(vault_id=vault_id, now=now)
    completion_addresses_abandon(now=now)
    return deleted
