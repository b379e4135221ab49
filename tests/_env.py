"""Loaded by pytest before Django (`-p tests._env` in pyproject): the test environment's defaults.
Real services: PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, as on the CI machine.
Keys are fresh per run; a worker process started by a test inherits them through os.environ."""

from __future__ import annotations

import base64
import os
import tempfile

from config.env import new_signing_key_pem


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


_defaults = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    # Per process, so that parallel runs (developers, helpers, CI) never share a test database, cache or queue.
    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/assent_{os.getpid()}",
    "CACHE_KEY_PREFIX": f"assent-test-{os.getpid()}",
    "CELERY_TASK_DEFAULT_QUEUE": f"assent-test-{os.getpid()}",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/14",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "CELERY_VISIBILITY_TIMEOUT": "10",
    "SECRET_KEY": "test-" + _key(),
    "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
    "ASSENT_BASE_URL": "http://testserver",
    "ASSENT_MASTER_KEYS": f"test1:{_key()}",
    "ASSENT_BLIND_INDEX_KEY": _key(),
    "ASSENT_LEDGER_KEY": _key(),
    "ASSENT_LINK_KEY": _key(),
    "ASSENT_SIGNING_KEY": new_signing_key_pem(),
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "ASSENT_SMS_BACKEND": "subjects.sms.LocmemBackend",
    "ASSENT_VAR_DIR": tempfile.mkdtemp(prefix="assent-test-"),
    # Webhook receivers in tests listen on loopback over http (tests/webhook_receiver.py).
    "ASSENT_WEBHOOK_ALLOW_LOOPBACK": "1",
}
for _name, _value in _defaults.items():
    os.environ.setdefault(_name, _value)
