"""The write kernel enqueues the double opt-in mail by name (it never imports the task module): the name it uses
must be the one the task is declared under, and the one queued messages and the beat schedule always used."""

from __future__ import annotations

from celery import current_app
from django.conf import settings

from consent import tasks
from consent.task_names import DELIVER_WEBHOOKS, RUN_SEND_JOB, SEND_CONFIRMATION


def test_the_confirmation_task_is_declared_under_the_name_the_kernel_enqueues() -> None:
    assert tasks.send_confirmation.name == SEND_CONFIRMATION == "consent.tasks.send_confirmation"


def test_a_signature_by_that_name_reaches_the_task_with_its_retry_options() -> None:
    task = current_app.signature(SEND_CONFIRMATION).type
    assert task.name == tasks.send_confirmation.name
    assert task.acks_late
    assert task.reject_on_worker_lost
    assert task.max_retries == 8


def test_the_send_job_task_is_declared_under_the_name_its_service_enqueues_and_survives_a_lost_worker() -> None:
    task = current_app.signature(RUN_SEND_JOB).type
    assert task.name == tasks.run_send_job.name == RUN_SEND_JOB == "consent.tasks.run_send_job"
    assert task.acks_late
    assert task.reject_on_worker_lost


def test_every_send_job_beat_entry_names_a_task() -> None:
    schedule = settings.CELERY_BEAT_SCHEDULE
    for name in ("send-jobs-resume-stalled", "send-jobs-purge"):
        assert schedule[name]["task"] in current_app.tasks, name


def test_the_outbox_enqueues_the_delivery_task_by_the_name_it_is_declared_and_scheduled_under() -> None:
    assert tasks.deliver_webhooks.name == DELIVER_WEBHOOKS
    assert current_app.signature(DELIVER_WEBHOOKS).type.acks_late
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {DELIVER_WEBHOOKS, tasks.purge_webhooks.name} <= scheduled
