"""The API's edge, shared by every app's endpoints: key authentication, scopes, the per-client rate limit, RFC 9457
problem details, and the request parsing and serializer fields the views share."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import orjson
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.errors import MAX_NAMED_FIELDS, DomainError, InvalidInputError, fields_in_words
from config.input import MalformedInputError, bad_string_reason, date_in_window, guarded_loads
from config.net import client_address
from consent.clients import AuthenticatedClient, client_auth_blocked, client_auth_failed, client_key_check
from subjects.identity import Reference, parse_reference

if TYPE_CHECKING:  # DRF imports this module while it builds rest_framework.views
    from rest_framework.views import APIView

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        address = client_address(request._request)
        header = get_authorization_header(request).split()
        if len(header) == 2 and header[0].lower() == b"bearer":
            try:
                key = header[1].decode("ascii")
            except UnicodeDecodeError:
                key = None
            if key is not None:
                # The usual request: the address's block, the key and its rate limit in one round trip to Redis
                # and one lookup.
                checked = client_key_check(key=key, address=address)
                if checked.blocked is not None:
                    raise exceptions.Throttled(
                        wait=checked.blocked, detail="too many failed authentications from this address"
                    )
                if checked.client is not None:
                    if checked.limited is not None:
                        raise exceptions.Throttled(
                            wait=checked.limited, detail="rate limit reached for this API client"
                        )
                    return (checked.client, checked.client)
                self._failed(address, "unknown or revoked API key")
        wait = client_auth_blocked(address=address)
        if wait is not None:
            raise exceptions.Throttled(wait=wait, detail="too many failed authentications from this address")
        if not header:
            raise exceptions.NotAuthenticated("an API key is required: Authorization: Bearer <key>")
        if header[0].lower() != b"bearer" or len(header) != 2:
            client_auth_failed(address=address)
            raise exceptions.AuthenticationFailed("use Authorization: Bearer <key>")
        self._failed(address, "unknown or revoked API key")

    @staticmethod
    def _failed(address: str, detail: str) -> NoReturn:
        wait = client_auth_failed(address=address)
        if wait is not None:
            raise exceptions.Throttled(wait=wait, detail="too many failed authentications from this address")
        raise exceptions.AuthenticationFailed(detail)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="assent"'


class JsonOnlyNegotiation(DefaultContentNegotiation):
    """For the hot endpoints, whose only renderer is JSON: the answer is JSON whatever the Accept header says, without
    parsing that header on every request (a client that asks for something else gets JSON rather than a 406). The
    request body's parser is still chosen by its Content-Type (415 for anything but JSON)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class ScopeMissingError(exceptions.PermissionDenied):
    """A 403 that names the scope the client lacked, so whoever holds the key knows what to ask for."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this API client lacks the scope '{scope}' this endpoint needs")
        self.scope = scope


class HasScope(BasePermission):
    """A view declares `required_scope`; a client must hold it. A view that forgot to declare one is open to no
    client (fail closed): a public view says so with its own `permission_classes`."""

    message = "this API client lacks the scope for this endpoint"

    def has_permission(self, request: Request, view: APIView) -> bool:
        scope = getattr(view, "required_scope", None)
        scopes = getattr(request.auth, "scopes", None)
        if scope is not None and scopes is not None and scope not in scopes:
            raise ScopeMissingError(scope)
        return scope is not None and scopes is not None


def problem(
    status_code: int, title: str, detail: str, code: str, *, errors: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as `field.sub` / `field[index]` -> messages, as every problem names fields."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            out.update(flatten_errors(value, f"{prefix}.{name}" if prefix and name else prefix or name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {prefix or "body": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            if item:
                out.update(flatten_errors(item, f"{prefix}[{index}]"))
        return out
    return {prefix or "body": [str(detail)]}


# A domain error met inside a serializer field travels as DRF's ErrorDetail with this prefix on its code, so the
# problem keeps the domain's code (`invalid_identifier`, `invalid_subject`) beside the other fields' errors.
DOMAIN_CODE = "domain:"


def _domain_code(detail: Any) -> str | None:
    """The domain code of the first error in DRF's nested error detail, if it came from a domain error."""
    if isinstance(detail, dict):
        detail = list(detail.values())
    if isinstance(detail, list):
        return next((code for item in detail if (code := _domain_code(item))), None)
    code = getattr(detail, "code", None)
    return code.removeprefix(DOMAIN_CODE) if isinstance(code, str) and code.startswith(DOMAIN_CODE) else None


def problem_for(exc: Exception) -> tuple[dict[str, Any], dict[str, str]]:
    """(body, headers) for any exception the API can meet."""
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        if exc.status == 503:
            headers["Retry-After"] = "5"  # every "cannot decide now" says when to ask again
        return problem(exc.status, exc.title, exc.detail, exc.code, errors=exc.errors, **exc.extra), headers
    if isinstance(exc, RequestDataTooBig):
        return problem(413, "Request too large", "the request body is too large", "too_large"), headers
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail) or {"body": ["invalid"]}
        code = _domain_code(exc.detail) or "invalid"
        return problem(400, "Invalid input", fields_in_words(errors), code, errors=errors), headers
    if isinstance(exc, exceptions.ParseError):
        return problem(400, "Malformed request", str(exc.detail), "malformed"), headers
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers["WWW-Authenticate"] = 'Bearer realm="assent"'
        return problem(401, "Unauthorized", str(exc.detail), "unauthorized"), headers
    if isinstance(exc, ScopeMissingError):
        return problem(403, "Forbidden", str(exc.detail), "forbidden", scope=exc.scope), headers
    if isinstance(exc, (exceptions.PermissionDenied, DjangoPermissionDenied)):
        detail = str(getattr(exc, "detail", "")) or "not permitted"
        return problem(403, "Forbidden", detail, "forbidden"), headers
    if isinstance(exc, (exceptions.NotFound, Http404)):
        return problem(404, "Not found", "no such resource", "not_found"), headers
    if isinstance(exc, exceptions.MethodNotAllowed):
        return problem(405, "Method not allowed", str(exc.detail), "method_not_allowed"), headers
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return problem(415, "Unsupported media type", str(exc.detail), "unsupported_media_type"), headers
    if isinstance(exc, exceptions.NotAcceptable):
        return problem(406, "Not acceptable", str(exc.detail), "not_acceptable"), headers
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(getattr(exc, "wait", None) or 1))
        headers["Retry-After"] = str(wait)
        return problem(429, "Too many requests", str(exc.detail), "rate_limited", retry_after=wait), headers
    if isinstance(exc, DatabaseError):
        log.exception("database error")
        # A check that cannot decide is a deny: the 503 body says so for clients that read it.
        body = problem(
            503, "Service unavailable", "cannot decide now", "unavailable", allowed=False, reason="unavailable"
        )
        headers["Retry-After"] = "5"
        return body, headers
    if isinstance(exc, exceptions.APIException):
        return problem(exc.status_code, "Error", str(exc.detail), str(exc.default_code)), headers
    log.exception("unexpected error in the API")
    body = problem(
        500, "Internal error", "an unexpected error occurred", "internal", allowed=False, reason="unavailable"
    )
    return body, headers


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    body, headers = problem_for(exc)
    response = Response(body, status=body["status"], headers=headers)
    response.content_type = PROBLEM
    return response


class ProblemResponse(JsonResponse):
    def __init__(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body, status=body["status"], content_type=PROBLEM, headers=headers)


def _refuse_bad_query(request: HttpRequest) -> ProblemResponse | None:
    """A NUL or lone surrogate in the path or query string is bad input (400), not a database failure (503)."""
    for name, values in request.GET.lists():
        for text in (name, *values):
            reason = bad_string_reason(text)
            if reason:
                errors = {name if name == text or bad_string_reason(name) is None else "query": [reason]}
                return ProblemResponse(
                    problem(400, "Malformed request", f"{name}: {reason}", "malformed", errors=errors)
                )
    reason = bad_string_reason(request.path)
    if reason:
        return ProblemResponse(problem(400, "Malformed request", f"path {reason}", "malformed"))
    return None


@csrf_exempt  # an unknown path must answer a 404 problem, not the HTML CSRF 403 a POST would otherwise get
def api_not_found(request: HttpRequest, exception: Exception | None = None) -> ProblemResponse:
    return ProblemResponse(problem(404, "Not found", "no such resource", "not_found"))


def api_server_error(request: HttpRequest) -> ProblemResponse:
    return ProblemResponse(
        problem(500, "Internal error", "an unexpected error occurred", "internal", allowed=False, reason="unavailable")
    )


class ProblemMiddleware:
    """Errors raised outside DRF's views (body too large, database down in middleware, unknown routes) still
    answer as problem details under /api/."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        if request.path.startswith("/api/"):
            refusal = _refuse_bad_query(request)
            if refusal is not None:
                return refusal
            # The API speaks English to other services, whatever the Accept-Language (the portal is German first).
            translation.activate("en")
            request.LANGUAGE_CODE = "en"
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> ProblemResponse | None:
        if not request.path.startswith("/api/"):
            return None
        body, headers = problem_for(exception)
        return ProblemResponse(body, headers)


class _InWindow:
    """A moment a request carries lies between 1900-01-01 and tomorrow (config.input.date_in_window)."""

    def to_internal_value(self, value: Any) -> Any:
        parsed = super().to_internal_value(value)  # type: ignore[misc]
        try:
            return date_in_window(parsed)
        except MalformedInputError as exc:
            raise serializers.ValidationError(exc.detail) from None


class WindowedDateTimeField(_InWindow, serializers.DateTimeField):
    """A date-time a request carries, within the window."""


class WindowedDateField(_InWindow, serializers.DateField):
    """A date a request carries, within the window."""


class EvidenceField(serializers.DictField):
    """Evidence is free-form, but its moments (`confirmed_at` and any other `*_at`) are ISO 8601 date-times
    within the window, or the proof of a consent could claim year 1 or 2999."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        for key, item in value.items():
            if isinstance(key, str) and key.endswith("_at") and item is not None:
                try:
                    WindowedDateTimeField().to_internal_value(item)
                except serializers.ValidationError as exc:
                    raise serializers.ValidationError({key: exc.detail}) from None
        return value


# ---------------------------------------------------------------------------------------------------------
# Shared by the views of every app: the documented problems, the calling client, JSON bodies, subject references
# ---------------------------------------------------------------------------------------------------------
class ProblemSerializer(serializers.Serializer):
    """Documents every error answer (RFC 9457) in the OpenAPI schema; `problem()` builds the bodies. Codes may add
    members (`allowed` and `reason` on a 503, `retry_after` on a 429, the open request's `id` on a 409)."""

    class Meta:
        ref_name = "Problem"

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="messages per field, every bad field at once (a 400)",
    )
    scope = serializers.CharField(required=False, help_text="the scope the client lacks (a 403 `forbidden`)")


# The problems any operation can answer; a request body adds 413 and 415. Each is documented with its body and its
# media type, so a client (and the schema fuzzer, tests/fuzz) can hold every answer to the schema.
COMMON_PROBLEMS = {
    400: "Problem details (RFC 9457): bad input, with `errors` per field",
    401: "Problem details: no or invalid API key",
    403: "Problem details: scope or purpose not granted (`code: forbidden`; a missing scope is named in `scope`)",
    429: "Problem details: rate limited, with Retry-After",
    503: "Cannot decide now: `allowed: false, reason: unavailable`",
}
BODY_PROBLEMS = {
    413: "Problem details: the body is larger than the limit (`code: too_large`)",
    415: "Problem details: the body is not `application/json` (`code: unsupported_media_type`)",
}


def problems(notes: dict[int, str] | None = None, *, body: bool = False) -> dict[Any, OpenApiResponse]:
    """An operation's problem answers for `extend_schema(responses=...)`, as `application/problem+json`: the common
    ones, a body's when it takes one, and its own `notes` (a status and what it means there)."""
    described = {**COMMON_PROBLEMS, **(BODY_PROBLEMS if body else {}), **(notes or {})}
    return {
        (status, PROBLEM): OpenApiResponse(
            response=ProblemSerializer, description=text, examples=_problem_examples(status)
        )
        for status, text in sorted(described.items())
    }


# What a problem of each common status looks like, shown beside it in the docs (others show the bare shape).
_PROBLEM_EXAMPLES: dict[int, tuple[str, dict[str, Any]]] = {
    400: (
        "Two fields missing",
        problem(
            400,
            "Invalid input",
            "purpose: is required and must be a non-empty string; channel: is required and must be a non-empty string",
            "invalid",
            errors={
                "purpose": ["is required and must be a non-empty string"],
                "channel": ["is required and must be a non-empty string"],
            },
        ),
    ),
    401: (
        "No key",
        problem(401, "Unauthorized", "an API key is required: Authorization: Bearer <key>", "unauthorized"),
    ),
    403: (
        "A scope the key lacks",
        problem(
            403,
            "Forbidden",
            "this API client lacks the scope 'consent:check' this endpoint needs",
            "forbidden",
            scope="consent:check",
        ),
    ),
    429: (
        "Rate limited",
        problem(429, "Too many requests", "rate limit reached for this API client", "rate_limited", retry_after=2),
    ),
    503: (
        "Cannot decide now",
        problem(503, "Service unavailable", "cannot decide now", "unavailable", allowed=False, reason="unavailable"),
    ),
}


def _problem_examples(status: int) -> list[OpenApiExample]:
    if status not in _PROBLEM_EXAMPLES:
        return []
    summary, body = _PROBLEM_EXAMPLES[status]
    return [OpenApiExample(summary, value=body, response_only=True, status_codes=[status], media_type=PROBLEM)]


PROBLEM_RESPONSES = problems()


def client_of(request: Request) -> AuthenticatedClient:
    client = request.auth
    assert isinstance(client, AuthenticatedClient), "ApiKeyAuthentication ran"
    return client


def json_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidInputError("must be a JSON object", field="body")
    return data


def fast_json_body(request: Request) -> dict[str, Any]:
    """The JSON body of a hot endpoint, parsed with orjson instead of DRF's parser stack (same errors)."""
    # Media types are case-insensitive (RFC 9110 8.3.1): `Application/JSON` is JSON, as DRF's parser agrees.
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType(request.content_type)
    return json_object(guarded_loads(request.body))


def fast_json_response(body: dict[str, Any], *, status: int = 200) -> HttpResponse:
    """Rendered with orjson, bypassing DRF's renderer: a 10,000-result bulk check renders in milliseconds. A UTC
    date-time ends in `Z`, as DRF's renderer writes it."""
    return HttpResponse(orjson.dumps(body, option=orjson.OPT_UTC_Z), content_type="application/json", status=status)


def required_string(body: dict[str, Any], name: str, *, max_length: int = 64) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidInputError("is required and must be a non-empty string", field=name)
    if len(value) > max_length:
        raise InvalidInputError(f"must be at most {max_length} characters", field=name)
    return value


def required_reference(body: dict[str, Any], name: str = "subject") -> Reference:
    if name not in body:
        raise InvalidInputError("is required", field=name)
    return parse_reference(body[name], field=name)


def every_field_error(first: DomainError, checks: Iterable[Callable[[], object]]) -> DomainError:
    """The error a hand-parsed body stopped at, widened to name every bad field: each check parses one field again
    (only on this error path: the hot paths stop at the first error and pay nothing for this)."""
    errors: dict[str, list[str]] = {}
    for check in checks:
        try:
            check()
        except InvalidInputError as exc:
            for field, messages in (exc.errors or {"body": [exc.detail]}).items():
                errors.setdefault(field, []).extend(messages)
            if len(errors) >= MAX_NAMED_FIELDS:
                break
    return first.naming_every_field(errors) if len(errors) > 1 else first


def reference_list(body: dict[str, Any], name: str) -> list[Any]:
    """The list of 1 to ASSENT_BULK_LIMIT subject references under `name` (each still to be parsed)."""
    items = body.get(name)
    if not isinstance(items, list):
        raise InvalidInputError("must be a list of subject references", field=name)
    if not 1 <= len(items) <= settings.ASSENT_BULK_LIMIT:
        raise InvalidInputError(f"must hold 1 to {settings.ASSENT_BULK_LIMIT:,} references", field=name)
    return items


def bulk_checks(body: dict[str, Any], name: str) -> Iterator[Callable[[], object]]:
    """A bulk body's fields (`purpose`, `channel`, the list under `name` and each of its references), each parsed
    on its own, for a problem that names every bad one."""
    yield lambda: required_string(body, "purpose")
    yield lambda: required_string(body, "channel")
    yield lambda: reference_list(body, name)
    items = body.get(name)
    if isinstance(items, list):
        for i, item in enumerate(items):
            yield functools.partial(parse_reference, item, field=f"{name}[{i}]")


class SubjectReferenceField(serializers.DictField):
    """`{"id": "<uuid>"}` or identifiers such as `{"email": "a@b.de", "phone": "+49 171 1234567"}`."""

    def to_internal_value(self, data: Any) -> Any:
        name = self.field_name or "subject"
        try:
            return parse_reference(data, field=name)
        except InvalidInputError as exc:
            # As a field error, so the serializer goes on and the problem names the other bad fields too.
            message = serializers.ErrorDetail(exc.detail, code=DOMAIN_CODE + exc.code)
            place = (exc.field or name).removeprefix(name).removeprefix(".")
            raise serializers.ValidationError({place: [message]} if place else [message]) from None
