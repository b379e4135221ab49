"""The write kernel enqueues the double opt-in mail by name (it never imports the task module): the name it uses
must be the one the task is declared under, and the one queued messages and the beat schedule always used."""

from __future__ import annotations

from celery import current_app

from consent import tasks
from consent.task_names import SEND_CONFIRMATION


def test_the_confirmation_task_is_declared_under_the_name_the_kernel_enqueues() -> None:
    assert tasks.send_confirmation.name == SEND_CONFIRMATION == "consent.tasks.send_confirmation"


def test_a_signature_by_that_name_reaches_the_task_with_its_retry_options() -> None:
    task = current_app.signature(SEND_CONFIRMATION).type
    assert task.name == tasks.send_confirmation.name
    assert task.acks_late
    assert task.reject_on_worker_lost
    assert task.max_retries == 8
