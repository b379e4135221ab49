"""Restriction (Art. 18): Subject.restricted_at is set; the policy then denies every use but storage. Lifting tells
the person first (Art. 18(3)): `lift_restriction_run` mails, then lifts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from subjects.locks import lock_subject
from subjects.models import RightsRequest, Subject
from subjects.rights import art19, texts
from subjects.rights.context import PROFILE, PartContext, history_add, part_outcomes, request_complete
from subjects.rights.mails import subject_emails
from subjects.selectors import subject_group

Kind = RightsRequest.Kind


def restriction_profile(context: PartContext) -> None:
    with context.step() as outcome:
        if context.subject_id is not None:
            now = timezone.now()
            Subject.objects.filter(pk=context.subject_id, restricted_at__isnull=True).update(restricted_at=now)
            outcome["restricted"] = True
            # Art. 19: every connected system hears of the restriction, in its transaction.
            outcome[art19.KEY] = art19.art19_tell(
                type="subject.restricted",
                subject_ids=context.subject_ids,
                data={"subject": str(context.subject_id), "request": str(context.request.pk)},
            )
        context.mark_done()


def lift_restriction_run(*, request_id: Any) -> str:
    """Art. 18(3): tell the person, then lift. Mail first, outside any transaction; the lift commits after it.
    Returns what happened ("lifted", "no_email", "nothing")."""
    request = RightsRequest.objects.select_related("subject").filter(pk=request_id).first()
    if request is None or request.lifted_at is not None or request.lift_requested_at is None:
        return "nothing"
    if request.subject is not None and request.subject.wrapped_key is not None:
        emails = subject_emails(request.subject)
        if not emails:
            _lift_blocked(request.pk)
            return "no_email"
        context = {"request": request, "received_at": request.received_at}
        send_mail(
            subject=render_to_string("subjects/mail/lift_subject.txt", context).strip(),
            message=render_to_string("subjects/mail/lift.txt", context),
            from_email=None,
            recipient_list=emails,
        )
    _lift(request.pk)
    return "lifted"


def lifts_stalled(*, older_than: timedelta = timedelta(minutes=2)) -> list[Any]:
    """Liftings asked for that long ago and still not done: their message was lost (a broker restarted without
    persistence) or their retries ran out. The database holds the request (`lift_requested_at`), so the safety net
    queues it again; `lift_restriction_run` does nothing for one lifted meanwhile."""
    return list(
        RightsRequest.objects.filter(
            kind=Kind.RESTRICTION,
            status=RightsRequest.Status.COMPLETED,
            lifted_at__isnull=True,
            lift_requested_at__lt=timezone.now() - older_than,
        )
        .order_by("lift_requested_at")
        .values_list("pk", flat=True)[:1000]
    )


@transaction.atomic(durable=True)
def _lift(request_id: Any) -> None:
    subject_id = RightsRequest.objects.filter(pk=request_id).values_list("subject_id", flat=True).first()
    if subject_id is not None:
        lock_subject(subject_id)
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    if request.lifted_at is not None:
        return
    now = timezone.now()
    RightsRequest.objects.filter(pk=request.pk).update(lifted_at=now)
    history_add(request, "person_told", "system", now, note=texts.NOTE_LIFT_TOLD)
    if subject_id is not None:
        still = (
            RightsRequest.objects.filter(
                subject_id=subject_id,
                kind=Kind.RESTRICTION,
                status=RightsRequest.Status.COMPLETED,
                lifted_at__isnull=True,
            )
            .exclude(pk=request.pk)
            .exists()
        )
        if not still:
            Subject.objects.filter(pk=subject_id).update(restricted_at=None)
            # Told only when the person is no longer restricted at all (another restriction may still stand).
            told = art19.art19_tell(
                type="subject.restriction_lifted",
                subject_ids=subject_group(subject_id) or [subject_id],
                data={"subject": str(subject_id), "request": str(request.pk)},
            )
            result = {**request.result, art19.KEY: art19.art19_join(request.result.get(art19.KEY), told)}
            RightsRequest.objects.filter(pk=request.pk).update(result=result)
    history_add(request, "lifted", "system", now)


@transaction.atomic(durable=True)
def _lift_blocked(request_id: Any) -> None:
    request = RightsRequest.objects.select_for_update().get(pk=request_id)
    now = timezone.now()
    RightsRequest.objects.filter(pk=request.pk).update(lift_requested_at=None)
    history_add(
        request,
        "lift_blocked",
        "system",
        now,
        note=texts.NOTE_LIFT_BLOCKED,
    )


def restriction_finish(context: PartContext) -> None:
    found = context.subject_id is not None
    result: dict[str, Any] = {
        "data_found": found,
        "message": texts.RESTRICTION_DONE if found else texts.NO_DATA_FOUND,
        "ground": context.request.details.get("ground"),
        "restricted": found,
        art19.KEY: art19.art19_join(part_outcomes(context.request.id).get(PROFILE, {}).get(art19.KEY)),
    }
    with context.step():
        request_complete(context, result)
