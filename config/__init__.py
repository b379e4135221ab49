"""The project: settings (every knob once), URLs, Celery, shared API helpers (config/api.py), database plumbing
(config/db.py) and input guards; the Celery app is loaded with Django so tasks register."""

from config.celery import app as celery_app

__all__ = ("celery_app",)
