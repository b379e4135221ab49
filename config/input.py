"""One guard for everything a request carries in: JSON bodies, strings and dates. Every API endpoint parses through
it (DRF's default parser and the hand-rolled fast paths), so no endpoint can forget a check."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson
from django.utils import timezone
from rest_framework.parsers import BaseParser

from config.errors import DomainError

MAX_DEPTH = 32
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_SAFE_INTEGER = 2**53 - 1  # beyond this a JavaScript client or a JSON column silently loses digits
EARLIEST = dt.date(1900, 1, 1)


class MalformedInputError(DomainError):
    code = "malformed"
    title = "Malformed request"


class BodyTooLargeError(DomainError):
    code = "too_large"
    status = 413
    title = "Request too large"


def bad_string_reason(value: str) -> str | None:
    """Why a string cannot be stored (PostgreSQL refuses NUL, UTF-8 has no lone surrogates), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    if value.isascii():  # nearly every string: no surrogate possible, and no encoding needed to know it
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate"
    return None


# A place in the body: its parent's place and its key or index. The readable path ("subjects[3].email") is spelt
# out only for the error message: a 10,000-reference bulk check must not build 20,000 path strings to find nothing.
_Place = tuple["_Place | None", "str | int"] | None


def _where(place: _Place) -> str:
    parts: list[str | int] = []
    while place is not None:
        place, key = place
        parts.append(key)
    text = ""
    for key in reversed(parts):
        if isinstance(key, int):
            text = f"{text or 'body'}[{key}]"
        else:
            text = f"{text}.{key}" if text else key
    return text or "body"


def _check(data: Any) -> None:
    stack: list[tuple[Any, int, _Place]] = [(data, 1, None)]
    while stack:
        value, depth, place = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise MalformedInputError(f"JSON nested deeper than {MAX_DEPTH} levels", field="body")
            if isinstance(value, dict):
                for key, item in value.items():
                    reason = bad_string_reason(key)
                    if reason:
                        raise MalformedInputError(f"a key {reason}", field=_where(place))
                    stack.append((item, depth + 1, (place, key)))
            else:
                stack.extend((item, depth + 1, (place, i)) for i, item in enumerate(value))
        elif isinstance(value, str):
            reason = bad_string_reason(value)
            if reason:
                raise MalformedInputError(reason, field=_where(place))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if abs(value) > MAX_SAFE_INTEGER:
                raise MalformedInputError("integer outside ±(2^53-1)", field=_where(place))
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise MalformedInputError("number is not finite", field=_where(place))
            # orjson reads an integer literal beyond 64 bits as a float: 2**64 arrives as 1.8446744073709552e19,
            # its last digits silently gone. Any number past the safe range is refused, whatever its spelling.
            if abs(value) > MAX_SAFE_INTEGER:
                raise MalformedInputError("number outside ±(2^53-1)", field=_where(place))


def guarded_loads(body: bytes | str) -> Any:
    """Parse JSON and refuse what would crash or corrupt a layer below: deep nesting, NUL, lone surrogates,
    numbers beyond ±(2^53-1) or non-finite, oversize bodies (413)."""
    if len(body) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"the request body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB")
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson stops at 1,024 levels on its own, in C, without Python recursion; the walk below holds 32.
        if "depth limit" in str(exc) or "recursion" in str(exc):
            raise MalformedInputError(f"JSON nested deeper than {MAX_DEPTH} levels", field="body") from None
        raise MalformedInputError(f"JSON parse error - {exc}") from None
    # Without a \\u escape an ASCII body cannot carry a NUL or a lone surrogate (JSON forbids raw control
    # characters and orjson refuses them): only depth and numbers are left, and a bulk check's 10,000 references
    # cost a type test each instead of a walk over every string. Anything else, or any doubt, takes the full walk,
    # which also names the place of a problem.
    if not (raw.isascii() and b"\\u" not in raw and _plain(data, 1)):
        _check(data)
    return data


def _plain(value: Any, depth: int) -> bool:
    """True when `_check` would find nothing in a body without bad strings: containers at most MAX_DEPTH deep and
    every number finite and within ±(2^53-1). False only means "let `_check` look"."""
    kind = type(value)
    if kind is dict:
        items = value.values()
    elif kind is list:
        items = value
    else:
        return False
    if depth > MAX_DEPTH:
        return False
    for item in items:
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is dict or kind is list:
            if not _plain(item, depth + 1):
                return False
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                return False
        elif kind is not float or not (math.isfinite(item) and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER):
            return False
    return True


def date_in_window(value: dt.date | dt.datetime, *, field: str | None = None) -> dt.date | dt.datetime:
    """A date a request may carry: 1900-01-01 up to tomorrow. Year 1 or 2999 is a typo or an attack on
    arithmetic (deadlines, retention), never a real consent."""
    latest = timezone.now() + dt.timedelta(days=1)
    if isinstance(value, dt.datetime):
        aware = value if timezone.is_aware(value) else timezone.make_aware(value, dt.UTC)
        ok = dt.datetime(1900, 1, 1, tzinfo=dt.UTC) <= aware <= latest
    else:
        ok = EARLIEST <= value <= latest.date()
    if not ok:
        raise MalformedInputError("must lie between 1900-01-01 and tomorrow", field=field)
    return value


class GuardedJSONParser(BaseParser):
    """DRF's default parser (settings REST_FRAMEWORK): every endpoint's JSON goes through `guarded_loads`."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        # One byte more than allowed is enough to know the body is too large, without reading all of it.
        body = stream.read(MAX_BODY_BYTES + 1) if stream is not None else b""
        return guarded_loads(body)
