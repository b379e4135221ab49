"""Typed errors of the rights machinery: a stable code and an HTTP status; messages never echo personal data."""

from __future__ import annotations

from config.errors import ConflictError, DomainError, InvalidInputError, NotFoundError


class RequestKindError(InvalidInputError):
    code = "kind_unknown"
    title = "Unknown kind of request"


class RequestDetailsError(InvalidInputError):
    code = "invalid_details"
    title = "Invalid request details"


class RequestNotFoundError(NotFoundError):
    code = "not_found"
    title = "Unknown request"


class RequestOpenError(ConflictError):
    """An identical request is still open: the problem carries its `id`."""

    code = "request_open"
    title = "An identical request is open"


class RequestStateError(ConflictError):
    code = "request_state"
    title = "Not possible in this state of the request"


class RequestForbiddenError(DomainError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class ExportUnavailableError(NotFoundError):
    code = "export_unavailable"
    title = "This export link is not valid (expired, deleted or not yours)"


class RectificationConflictError(ConflictError):
    code = "identifier_taken"
    title = "The corrected identifier belongs to another subject"


class NoEmailError(DomainError):
    code = "no_email"
    status = 409
    title = "No e-mail address is on file to tell the person"


class ConnectorError(DomainError):
    """A connected system did not do its part (API.md, Connectors): the part fails with the system's last answer."""

    code = "connector_failed"
    status = 502
    title = "A connected system did not complete its part"


class ConnectorSignatureError(DomainError):
    code = "invalid_signature"
    status = 401
    title = "The callback is not signed with the connector's secret"
