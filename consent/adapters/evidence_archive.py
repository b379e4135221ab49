"""The restricted evidence store (EvidenceArchive): an erased person's consent events, sealed under their own
vault key with the evidence in clear inside, each chain closed with an `erased` event computed like a ledger event
so the archived chains still verify; kept while claims can be raised (§§195, 199 BGB; §7a UWG for phone consent),
then purged with the key."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from typing import Any

from django.db import transaction
from django.db.models import Max

from consent.ledger.chain import canonical_fields, event_evidence, event_hash
from consent.models import ConsentEvent, EvidenceArchive, ReadLog, Send
from subjects import crypto
from subjects.keys import data_key
from subjects.models import Subject, VaultKey
from subjects.rights.calendar import claims_until
from subjects.rights.vault import vault_key_destroy, vault_key_get_or_create, vault_key_open

RIGHTS_SOURCE = "rights-request"  # the ledger's source slug for what a rights request records
ARCHIVE_COLUMN = "evidence_archive.events"
PHONE = "phone"


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def event_fields(event: ConsentEvent, evidence: dict[str, Any]) -> dict[str, Any]:
    fields = {
        "chain": str(event.subject_id),
        "seq": event.seq,
        "action": event.action,
        "purpose": event.purpose,
        "channel": event.channel,
        "notice_version": event.notice_version,
        "source": event.source,
        "actor": event.actor,
        "client": event.client.name if event.client_id and event.client else None,
        "evidence": evidence,
        "related_subject": str(event.related_subject) if event.related_subject else None,
        "occurred_at": iso(event.occurred_at),
        "recorded_at": iso(event.recorded_at),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }
    if event.suppressed:  # hashed when set (consent.ledger.chain.canonical_fields)
        fields["suppressed"] = True
    return fields


def evidence_archive_write(
    *,
    survivor: uuid.UUID,
    ids: list[uuid.UUID],
    events: list[ConsentEvent],
    archive: EvidenceArchive | None,
    request_id: uuid.UUID,
    now: datetime,
) -> EvidenceArchive:
    """Move the events, with their evidence in clear inside the sealed blob, and close each chain with an
    `erased` event computed like a ledger event, so the archived chains still verify. An archive of the same
    survivor (an earlier erasure's) is extended, never shortened."""
    vault, key = vault_key_get_or_create(purpose=VaultKey.Purpose.EVIDENCE, subject_id=survivor, now=now)
    archive_id = archive.id if archive else uuid.uuid4()
    rows: list[dict[str, Any]] = []
    if archive is not None:
        rows = json.loads(
            crypto.open_sealed(
                vault_key_open(vault), bytes(archive.events_enc), archive_id.bytes + ARCHIVE_COLUMN.encode()
            )
        )
    rows.extend(_archived_events(ids, events, request_id, now))
    last_use, phone_use = _last_use(ids, rows)
    keep_until = claims_until(last_use, phone=False)
    if phone_use is not None:
        keep_until = max(keep_until, claims_until(phone_use, phone=True))
    if archive is not None:
        keep_until = max(keep_until, archive.keep_until)
    sealed = crypto.seal(key, json.dumps(rows).encode(), archive_id.bytes + ARCHIVE_COLUMN.encode())
    archive, _ = EvidenceArchive.objects.update_or_create(
        subject_id=survivor,
        defaults={
            "id": archive_id,
            "request_id": request_id,
            "vault": vault,
            "events_enc": sealed,
            "event_count": len(rows),
            "last_hash": rows[-1]["hash"],
            "last_used_at": last_use,
            "phone": phone_use is not None,
            "keep_until": keep_until,
            "archived_at": now,
        },
    )
    return archive


def _archived_events(
    ids: list[uuid.UUID], events: list[ConsentEvent], request_id: uuid.UUID, now: datetime
) -> list[dict[str, Any]]:
    """The events as archived rows, each chain followed by its closing `erased` event."""
    rows: list[dict[str, Any]] = []
    subjects = {s.id: s for s in Subject.objects.filter(pk__in=ids)}
    keys: dict[uuid.UUID, bytes] = {}
    last: dict[uuid.UUID, ConsentEvent] = {}
    for event in events:
        evidence: dict[str, Any] = {}
        if event.evidence_enc:
            subject = subjects[event.subject_id]
            subject_key = keys.get(subject.id) or keys.setdefault(subject.id, data_key(subject))
            evidence = event_evidence(event, subject_key)
        rows.append(event_fields(event, evidence))
        last[event.subject_id] = event
    for chain, final in last.items():
        closing = ConsentEvent(
            subject_id=chain,
            seq=final.seq + 1,
            purpose="",
            channel="",
            action=ConsentEvent.Action.ERASED,
            notice_version="",
            source=RIGHTS_SOURCE,
            actor=ConsentEvent.SYSTEM_ACTOR,
            occurred_at=now,
            recorded_at=now,
            prev_hash=final.hash,
        )
        evidence = {"request": str(request_id)}
        closing.hash = event_hash(final.hash, canonical_fields(closing, evidence))
        rows.append(event_fields(closing, evidence))
    return rows


def evidence_archive_plan(*, ids: list[uuid.UUID]) -> tuple[int, date | None]:
    """What an erasure would move to the evidence store, without moving it: (events, kept until), the end date
    counted as evidence_archive_write counts it, an earlier erasure's archive of the same survivor included."""
    rows = [
        {"occurred_at": occurred_at.isoformat(), "action": action, "channel": channel}
        for occurred_at, action, channel in ConsentEvent.objects.filter(subject_id__in=ids).values_list(
            "occurred_at", "action", "channel"
        )
    ]
    archive = EvidenceArchive.objects.filter(subject_id=ids[0]).first() if ids else None
    count = len(rows) + (archive.event_count if archive else 0)
    if not rows:
        return count, archive.keep_until if archive else None
    last_use, phone_use = _last_use(ids, rows)
    keep_until = claims_until(last_use, phone=False)
    if phone_use is not None:
        keep_until = max(keep_until, claims_until(phone_use, phone=True))
    if archive is not None:
        keep_until = max(keep_until, archive.keep_until)
    return count, keep_until


def evidence_archive_purge(*, now: datetime) -> int:
    """Archives past their keep_until go, and their vault keys with them (crypto-shredding)."""
    today = now.date()
    done = 0
    for archive_id, vault_id in EvidenceArchive.objects.filter(keep_until__lt=today).values_list("pk", "vault_id"):
        with transaction.atomic(durable=True):
            done += EvidenceArchive.objects.filter(pk=archive_id).delete()[0]
            vault_key_destroy(vault_id=vault_id, now=now)
    return done


def _last_use(ids: list[uuid.UUID], rows: list[dict[str, Any]]) -> tuple[datetime, datetime | None]:
    """The last use of the consent (its last event, read or send) and the last use on the phone channel."""
    moments = [datetime.fromisoformat(r["occurred_at"]) for r in rows if r["action"] != "erased"]
    phone = [datetime.fromisoformat(r["occurred_at"]) for r in rows if r["channel"] == PHONE]
    read = ReadLog.objects.filter(subject_id__in=ids).aggregate(last=Max("read_at"))["last"]
    sent = Send.objects.filter(recipients__subject_id__in=ids).aggregate(last=Max("created_at"))["last"]
    phone_sent = Send.objects.filter(recipients__subject_id__in=ids, channel=PHONE).aggregate(last=Max("created_at"))[
        "last"
    ]
    last = max([m for m in (*moments, read, sent) if m is not None])
    phone_last = max([m for m in (*phone, phone_sent) if m is not None], default=None)
    return last, phone_last
