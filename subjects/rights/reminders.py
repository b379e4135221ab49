"""Reminders (Art. 12(3)): a reminder when a request is due soon (calendar.DUE_SOON), and overdue flags for the
DPO's queue. The due dates themselves are computed in calendar.py."""

from __future__ import annotations

from datetime import datetime

from django.core.mail import mail_managers
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from subjects.models import RightsRequest
from subjects.rights import texts
from subjects.rights.calendar import DUE_SOON
from subjects.rights.context import history_add


def requests_flag_deadlines(*, now: datetime | None = None) -> tuple[int, int]:
    """(reminded, flagged overdue). Each request once for each; the managers (settings.MANAGERS) get one mail."""
    now = now or timezone.now()
    open_requests = RightsRequest.objects.open().with_effective_due()
    with transaction.atomic(durable=True):
        # Q(): django-stubs checks keyword filters against the model's fields and cannot see the annotation.
        overdue = list(
            open_requests.filter(Q(effective_due__lt=now), overdue_at__isnull=True).select_for_update(of=("self",))
        )
        for request in overdue:
            history_add(request, "overdue", "system", now, note=texts.NOTE_OVERDUE)
        RightsRequest.objects.filter(pk__in=[r.pk for r in overdue]).update(overdue_at=now)
        remind = list(
            open_requests.filter(
                Q(effective_due__gte=now) & Q(effective_due__lt=now + DUE_SOON), reminded_at__isnull=True
            ).select_for_update(of=("self",))
        )
        for request in remind:
            history_add(request, "reminder", "system", now, note=texts.NOTE_DUE_SOON)
        RightsRequest.objects.filter(pk__in=[r.pk for r in remind]).update(reminded_at=now)
    if overdue or remind:
        lines = [f"overdue: {r.kind} request {r.pk}, due {r.due_at:%Y-%m-%d}" for r in overdue]
        lines += [f"due soon: {r.kind} request {r.pk}, due {r.due_at:%Y-%m-%d}" for r in remind]
        mail_managers("Rights requests: deadlines", "\n".join(lines), fail_silently=True)
    return len(remind), len(overdue)
