"""The names of consent's Celery tasks, below both the services that enqueue them and consent.tasks that declares
them: a service enqueues by name and never imports the task module (an edge)."""

from __future__ import annotations

# The names the tasks always had (their module path), so queued messages and the beat schedule still match.
SEND_CONFIRMATION = "consent.tasks.send_confirmation"
RUN_SEND_JOB = "consent.tasks.run_send_job"
# Sends every due webhook delivery (consent.webhooks.delivery); enqueued after an outbox write commits, and by beat.
DELIVER_WEBHOOKS = "consent.tasks.deliver_webhooks"
