"""Logging pieces settings.LOGGING names before the apps load (so nothing here imports a model)."""

from __future__ import annotations

import logging

from pythonjsonlogger.json import JsonFormatter


class PathsWithheld(logging.Filter):
    """Django's own request warnings (`Bad Request: /u/<token>`) name the path, and paths carry link tokens and
    subject ids: the path and the request object are dropped from the record (the request line has the route)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "request"):
            record.request = None
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                "(path withheld)" if isinstance(arg, str) and arg.startswith("/") else arg for arg in record.args
            )
        return True


def json_formatter() -> logging.Formatter:
    """The formatter of settings.LOGGING, for handlers Celery makes itself."""
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )
