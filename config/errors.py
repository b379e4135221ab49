"""Typed domain errors. Each carries a stable `code` and an HTTP status; config/api.py renders them as
RFC 9457 problem details. Messages never echo personal data."""

from __future__ import annotations

from typing import Any, Self

# How many fields a problem's `detail` names in words; `errors` names every one (up to MAX_NAMED_FIELDS).
DETAIL_FIELDS = 5
MAX_NAMED_FIELDS = 100


class DomainError(Exception):
    code = "error"
    status = 400
    title = "Bad request"

    def __init__(self, detail: str = "", *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.field = field
        self.extra = extra
        self._every_field: dict[str, list[str]] | None = None

    @property
    def errors(self) -> dict[str, list[str]] | None:
        if self._every_field:
            return self._every_field
        return {self.field: [self.detail]} if self.field else None

    def naming_every_field(self, errors: dict[str, list[str]]) -> Self:
        """This error (its code, status and title), naming every bad field of the input at once: a client fixes its
        request in one round instead of one field per round."""
        self._every_field = errors
        self.detail = fields_in_words(errors)
        return self


def fields_in_words(errors: dict[str, list[str]]) -> str:
    """`field: message; field: message` for the first few fields of a problem, and how many more there are."""
    named = [f"{field}: {messages[0]}" for field, messages in list(errors.items())[:DETAIL_FIELDS] if messages]
    more = len(errors) - DETAIL_FIELDS
    return "; ".join(named) + (f" (and {more} more in `errors`)" if more > 0 else "")


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
