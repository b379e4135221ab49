"""Typed domain errors. Each carries a stable `code` and an HTTP status; config/api.py renders them as
RFC 9457 problem details. Messages never echo personal data."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Bad request"

    def __init__(self, detail: str = "", *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        self.extra = extra

    @property
    def errors(self) -> dict[str, list[str]] | None:
        return {self.field: [self.detail]} if self.field else None


class InvalidInputError(DomainError):
    code = "invalid"
    title = "Invalid input"


class NotFoundError(DomainError):
    code = "not_found"
    status = 404
    title = "Not found"


class ConflictError(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class UnavailableError(DomainError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"
