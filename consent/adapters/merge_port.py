"""The consent side of merging and splitting subjects: the ConsentPort that `subjects.merge` calls (registered in
ConsentConfig.ready()).

Merge. The absorbed chain is closed with a `merged` event (related_subject = the survivor); the survivor's chain
gets a `merged` event naming the absorbed subject, whose evidence holds the absorbed chain's last hash and the ids
of the read-log, send-recipient and open confirmation rows moved over (they carry no other origin marker, and a
split moves them back). Both chains stay valid chains of their own. States are combined to the most restrictive
(consent.ledger.replay says how). The absorbed side's own state and objection rows are deleted: its id resolves
to the survivor, and rows left behind would still be found by table-wide jobs (the expiry task would append to a
closed chain).

Split. Both chains get a `split` event (ConsentEvent.Action.SPLIT, related_subject = the other side); the moved
log rows go back; each side's states and objections are rebuilt by `consent_rebuild`, which replays the chain.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from consent.catalogue.snapshot import catalogue_snapshot
from consent.ledger.chain import NewEvent, event_evidence, ledger_append, stamped_under_lock
from consent.ledger.replay import consent_rebuild, fact_combine, objection_combine
from consent.ledger.state_rows import fact_of, state_values
from consent.models import Confirmation, ConsentEvent, ConsentState, Objection, ReadLog, SendRecipient
from consent.webhooks.outbox import outbox_lines_merge, outbox_record
from subjects.columns import CONFIRMATION_EMAIL
from subjects.keys import data_key, decrypt_field, encrypt_field
from subjects.models import Subject

MERGE_SOURCE = "merge"
SPLIT_SOURCE = "split"
SYSTEM = ConsentEvent.SYSTEM_ACTOR


# ---------------------------------------------------------------------------------------------------------
# The port
# ---------------------------------------------------------------------------------------------------------
class ConsentPortImpl:
    """subjects.ports.ConsentPort. Both subjects are locked by the caller, in the caller's transaction."""

    def on_merge(self, *, survivor_id: uuid.UUID, absorbed_id: uuid.UUID, now: datetime) -> None:
        now = stamped_under_lock(now)
        survivor = Subject.objects.get(pk=survivor_id)
        absorbed = Subject.objects.get(pk=absorbed_id)
        survivor_key, absorbed_key = data_key(survivor), data_key(absorbed)

        read_logs, send_recipients, confirmations = _logs_move(survivor, survivor_key, absorbed, absorbed_key)

        closing = ledger_append(
            subject=absorbed,
            key=absorbed_key,
            new=_system_event(ConsentEvent.Action.MERGED, MERGE_SOURCE, related=survivor.id, now=now),
            recorded_at=now,
        )
        marker = ledger_append(
            subject=survivor,
            key=survivor_key,
            new=_system_event(
                ConsentEvent.Action.MERGED,
                MERGE_SOURCE,
                related=absorbed.id,
                now=now,
                evidence={
                    "absorbed_head_hash": closing.hash,
                    "read_logs": read_logs,
                    "send_recipients": send_recipients,
                    "confirmations": [str(pk) for pk in confirmations],
                    # Which grants met the suppression list: the ledger does not say it, a replay needs it.
                    "survivor_suppressed": _suppressed_seqs(survivor),
                    "absorbed_suppressed": _suppressed_seqs(absorbed),
                },
            ),
            recorded_at=now,
        )

        _states_combine(survivor, absorbed, marker)
        # Ordered on the survivor's line, which the absorbed side's waiting events join first.
        outbox_lines_merge(survivor_id=survivor.id, absorbed_id=absorbed.id)
        outbox_record(
            type="subject.merged",
            subject_id=survivor.id,
            data={"survivor": str(survivor.id), "absorbed": str(absorbed.id)},
        )

    def on_split(self, *, survivor_id: uuid.UUID, restored_id: uuid.UUID, now: datetime) -> None:
        now = stamped_under_lock(now)
        survivor = Subject.objects.get(pk=survivor_id)
        restored = Subject.objects.get(pk=restored_id)
        survivor_key, restored_key = data_key(survivor), data_key(restored)
        marker = (
            ConsentEvent.objects.filter(
                subject=survivor, action=ConsentEvent.Action.MERGED, related_subject=restored.id
            )
            .order_by("-seq")
            .first()
        )
        moved: dict[str, Any] = event_evidence(marker, survivor_key) if marker else {}

        reopening = ledger_append(
            subject=restored,
            key=restored_key,
            new=_system_event(ConsentEvent.Action.SPLIT, SPLIT_SOURCE, related=survivor.id, now=now),
            recorded_at=now,
        )
        ledger_append(
            subject=survivor,
            key=survivor_key,
            new=_system_event(
                ConsentEvent.Action.SPLIT,
                SPLIT_SOURCE,
                related=restored.id,
                now=now,
                evidence={"restored_head_hash": reopening.hash},
            ),
            recorded_at=now,
        )
        ReadLog.objects.filter(pk__in=moved.get("read_logs", []), subject=survivor).update(subject=restored)
        SendRecipient.objects.filter(pk__in=moved.get("send_recipients", []), subject=survivor).update(subject=restored)
        _confirmations_move(
            Confirmation.objects.filter(pk__in=moved.get("confirmations", []), subject=survivor),
            source=survivor,
            source_key=survivor_key,
            target=restored,
            target_key=restored_key,
        )
        outbox_record(
            type="subject.split",
            subject_id=survivor.id,
            data={"subjects": [str(survivor.id), str(restored.id)]},
        )
        snapshot = catalogue_snapshot(refresh=True)
        survivor_marked = frozenset(_suppressed_seqs(survivor)) | frozenset(moved.get("survivor_suppressed", ()))
        consent_rebuild(subject_id=survivor.id, marked=survivor_marked, snapshot=snapshot)
        restored_marked = frozenset(moved.get("absorbed_suppressed", ()))
        consent_rebuild(subject_id=restored.id, marked=restored_marked, snapshot=snapshot)


def _logs_move(
    survivor: Subject, survivor_key: bytes, absorbed: Subject, absorbed_key: bytes
) -> tuple[list[int], list[int], list[uuid.UUID]]:
    """Hand the absorbed side's read logs, send recipients and open confirmations to the survivor; their ids go
    into the merge event, so a split can move exactly these back."""
    read_logs = list(ReadLog.objects.filter(subject=absorbed).order_by("pk").values_list("pk", flat=True))
    ReadLog.objects.filter(pk__in=read_logs).update(subject=survivor)
    send_recipients = list(SendRecipient.objects.filter(subject=absorbed).order_by("pk").values_list("pk", flat=True))
    SendRecipient.objects.filter(pk__in=send_recipients).update(subject=survivor)
    # An open double opt-in link of the absorbed side confirms on the survivor.
    confirmations = _confirmations_move(
        Confirmation.objects.filter(subject=absorbed, used_at__isnull=True),
        source=absorbed,
        source_key=absorbed_key,
        target=survivor,
        target_key=survivor_key,
    )
    return read_logs, send_recipients, confirmations


def _states_combine(survivor: Subject, absorbed: Subject, marker: ConsentEvent) -> None:
    """Each triple and objection of the absorbed side combined into the survivor's, dated by the survivor's merge
    event (consent.ledger.replay says how); the absorbed side keeps no rows."""
    mine = {(row.purpose, row.channel): row for row in ConsentState.objects.filter(subject=survivor)}
    for theirs in ConsentState.objects.filter(subject=absorbed).order_by("purpose", "channel"):
        row = mine.get((theirs.purpose, theirs.channel))
        fact = fact_combine(fact_of(row) if row else None, fact_of(theirs), since=marker.occurred_at, seq=marker.seq)
        ConsentState.objects.update_or_create(
            subject=survivor,
            purpose=theirs.purpose,
            channel=theirs.channel,
            defaults={**state_values(fact), "event_id": marker.id},
        )
    objections = {o.purpose: o for o in Objection.objects.filter(subject=survivor)}
    for theirs_objection in Objection.objects.filter(subject=absorbed):
        own = objections.get(theirs_objection.purpose)
        since, seq = objection_combine(
            (own.since, own.seq) if own else None, (theirs_objection.since, theirs_objection.seq), seq=marker.seq
        )
        Objection.objects.update_or_create(
            subject=survivor, purpose=theirs_objection.purpose, defaults={"since": since, "seq": seq}
        )
    ConsentState.objects.filter(subject=absorbed).delete()
    Objection.objects.filter(subject=absorbed).delete()


def _system_event(
    action: str, source: str, *, related: uuid.UUID, now: datetime, evidence: dict[str, Any] | None = None
) -> NewEvent:
    return NewEvent(
        purpose="",
        channel="",
        action=action,
        notice_version="",
        source=source,
        actor=SYSTEM,
        occurred_at=now,
        evidence=evidence,
        related_subject=related,
    )


def _confirmations_move(
    rows: Any, *, source: Subject, source_key: bytes, target: Subject, target_key: bytes
) -> list[uuid.UUID]:
    """Hand confirmation rows over, their e-mail re-encrypted (its associated data names the subject)."""
    moving: list[Confirmation] = list(rows.select_for_update())
    for row in moving:
        email = decrypt_field(source, source_key, CONFIRMATION_EMAIL, bytes(row.email_enc), row_id=row.pk)
        row.email_enc = encrypt_field(target, target_key, CONFIRMATION_EMAIL, email, row_id=row.pk)
        row.subject = target
    Confirmation.objects.bulk_update(moving, ["subject", "email_enc"])
    return [row.pk for row in moving]


def _suppressed_seqs(subject: Subject) -> list[int]:
    return sorted(ConsentState.objects.filter(subject=subject, suppressed=True).values_list("seq", flat=True))
