"""The names of the rights workflow's Celery tasks, and enqueueing one when the transaction commits. It sits below
both the services that enqueue and the task module that declares the tasks, so services never import the edge."""

from __future__ import annotations

from celery import current_app
from django.db import transaction

RUN_PART = "subjects.rights.run_part"
LIFT_RESTRICTION = "subjects.rights.lift_restriction"
TELL_PERSON = "subjects.rights.tell_person"
COMPLETION_MAIL = "completion"  # the notice TELL_PERSON sends when a request completes (mails.py)
RESUME_STALLED = "subjects.rights.resume_stalled"
FLAG_DEADLINES = "subjects.rights.flag_deadlines"
PURGE_EXPORTS = "subjects.rights.purge_exports"
PURGE_RETENTION = "subjects.rights.purge_retention"
PURGE_EVIDENCE = "subjects.rights.purge_evidence"


def enqueue_on_commit(name: str, *args: str) -> None:
    """Send the task `name` (arguments: ids only) when the surrounding transaction commits.

    A signature by name, not `send_task`: when the task module is loaded (subjects' AppConfig.ready() loads it)
    the signature applies the registered task, with its options and in eager mode (the demo) in process, exactly
    as `task.delay` does; `send_task` would ignore eager mode."""
    transaction.on_commit(current_app.signature(name, args=args).apply_async)
