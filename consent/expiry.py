"""Consent expiry: the scheduled `expire` events for grants older than their purpose's validity."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from consent.catalogue.snapshot import catalogue_snapshot
from consent.ledger import projection
from consent.ledger.chain import NewEvent, ledger_append
from consent.ledger.recording import state_project
from consent.models import ConsentEvent, ConsentState
from consent.webhooks.outbox import outbox_consent_changed
from subjects.keys import data_key
from subjects.locks import lock_subject

EXPIRY_SOURCE = "expiry"


def consents_expire(*, batch: int = 1000) -> int:
    """Record an `expire` event for each consent past its purpose's validity. The policy already denies such a
    consent at check time; the event makes the ledger and the person's history say so too."""
    now = timezone.now()
    count = 0
    for key, info in catalogue_snapshot(refresh=True).purposes.items():
        days = info.rule.consent_valid_days
        if days is None:
            continue
        due = ConsentState.objects.filter(
            purpose=key, status=projection.GRANTED, granted_at__lt=now - timedelta(days=days)
        ).values_list("pk", "subject_id", "channel")[:batch]
        for state_id, subject_id, channel in due:
            with transaction.atomic(durable=True):
                subject = lock_subject(subject_id)
                row = ConsentState.objects.filter(pk=state_id, status=projection.GRANTED).first()
                if row is None or row.granted_at is None or row.granted_at >= now - timedelta(days=days):
                    continue
                event = ledger_append(
                    subject=subject,
                    key=data_key(subject),
                    new=NewEvent(
                        purpose=key,
                        channel=channel,
                        action="expire",
                        notice_version=row.notice_version,
                        source=EXPIRY_SOURCE,
                        actor=ConsentEvent.SYSTEM_ACTOR,
                        occurred_at=row.granted_at + timedelta(days=days),
                    ),
                    recorded_at=now,
                )
                fact = state_project(subject, info, channel, event)
                if fact is not None:
                    outbox_consent_changed(
                        subject_id=subject.id, purpose=key, channel=channel, state=fact.status, event_id=event.id
                    )
                count += 1
    return count
