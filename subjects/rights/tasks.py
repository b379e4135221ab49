"""Celery tasks of the rights workflow: thin, ids only (personal data never travels through the broker), each
calling one service. acks_late + reject_on_worker_lost: a task whose worker dies is delivered again after the
broker's visibility timeout; the part's lease decides whether the work is taken up again."""

from __future__ import annotations

import random
import uuid
from typing import Any

from celery import shared_task
from celery.app.task import Task
from celery.signals import task_prerun
from django.db import close_old_connections
from django.utils import timezone

from subjects import ports
from subjects.rights import enqueue
from subjects.rights.context import TRANSIENT
from subjects.rights.erasure import retention_purge
from subjects.rights.exports import exports_purge
from subjects.rights.mails import request_tell, tells_stalled
from subjects.rights.registry import handler_for
from subjects.rights.reminders import requests_flag_deadlines
from subjects.rights.restriction import lift_restriction_run, lifts_stalled
from subjects.rights.workflow import part_fail, part_run, parts_stalled

MAX_RETRIES = 8


@task_prerun.connect
def _fresh_enough_connection(**kwargs: Any) -> None:
    """With CELERY_DB_REUSE_MAX the worker keeps its database connection between tasks; like a web request,
    each task first lets Django close a connection that broke or outlived CONN_MAX_AGE."""
    close_old_connections()


def _backoff(retries: int) -> float:
    return min(60.0, 2.0**retries) * (0.5 + random.random() / 2)


@shared_task(bind=True, name=enqueue.RUN_PART, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def run_part(self: Task, part_id: str) -> None:
    try:
        result = part_run(part_id=int(part_id), handlers=handler_for)
    except TRANSIENT as exc:
        if self.request.retries >= MAX_RETRIES:
            part_fail(part_id=int(part_id), error=f"gave up after {MAX_RETRIES} retries: {type(exc).__name__}")
            return
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
    if result.retry_in is not None and not self.request.is_eager:
        # Another worker holds a live lease on a part of this request; if it died, the lease ends and this
        # claims the part then. (In-process tasks, the demo, have no other worker that could have died.)
        run_part.apply_async((part_id,), countdown=result.retry_in)


@shared_task(
    bind=True,
    name=enqueue.LIFT_RESTRICTION,
    max_retries=MAX_RETRIES,
    acks_late=True,
    reject_on_worker_lost=True,
)
def lift_restriction(self: Task, request_id: str) -> None:
    try:
        lift_restriction_run(request_id=uuid.UUID(request_id))
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None


@shared_task(bind=True, name=enqueue.TELL_PERSON, max_retries=MAX_RETRIES, acks_late=True, reject_on_worker_lost=True)
def tell_person(self: Task, request_id: str, what: str) -> None:
    try:
        request_tell(request_id=uuid.UUID(request_id), what=what)
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None


@shared_task(name=enqueue.RESUME_STALLED)
def resume_stalled() -> int:
    """Safety net: parts whose message was lost or whose worker died go to the broker again, and so do liftings of
    a restriction and notices to the person (extension, rejection) whose message was lost: the database is the
    source of truth, the broker may forget; and completion mails, an erasure's among them (its addresses sealed)."""
    ids = parts_stalled()
    for part_id in ids:
        run_part.delay(str(part_id))
    lifts = lifts_stalled()
    for request_id in lifts:
        lift_restriction.delay(str(request_id))
    tells = tells_stalled()
    for request_id, what in tells:
        tell_person.delay(str(request_id), what)
    return len(ids) + len(lifts) + len(tells)


@shared_task(name=enqueue.FLAG_DEADLINES)
def flag_deadlines() -> None:
    requests_flag_deadlines()


@shared_task(name=enqueue.PURGE_EXPORTS)
def purge_exports() -> int:
    return exports_purge()


@shared_task(name=enqueue.PURGE_RETENTION)
def purge_retention() -> int:
    return retention_purge()


@shared_task(name=enqueue.PURGE_EVIDENCE)
def purge_evidence() -> int:
    return ports.consent_rights.evidence_purge(now=timezone.now())
