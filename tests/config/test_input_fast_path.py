"""The body guard's fast path (ASCII bodies without \\u escapes skip the string checks) must refuse exactly what the
full walk refuses: generated JSON bodies, hostile ones included, go through both and get the same verdict."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.input import MAX_DEPTH, MAX_SAFE_INTEGER, MalformedInputError, _check, guarded_loads

_numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1, 2.0**53, 1e300]),
)
_strings = st.one_of(st.text(max_size=8), st.sampled_from(["a\x00b", "plain", "ümlaut", "\ud800", "x\\u0000"]))
_json = st.recursive(
    st.one_of(st.none(), st.booleans(), _numbers, _strings),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_strings, inner, max_size=4)),
    max_leaves=30,
)


def _verdict(check: Any) -> str | None:
    try:
        check()
    except MalformedInputError as exc:
        return exc.detail if hasattr(exc, "detail") else str(exc)
    return None


def _encode(value: Any) -> bytes | None:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):  # lone surrogates and integers beyond 64 bits cannot be encoded
        return None


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_json)
def test_the_fast_path_refuses_what_the_full_walk_refuses(value: Any) -> None:
    raw = _encode(value)
    if raw is None:
        return
    parsed = orjson.loads(raw)
    assert (_verdict(lambda: guarded_loads(raw)) is None) == (_verdict(lambda: _check(parsed)) is None)


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):  # depth lists around one string
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (orjson.dumps({"subjects": [{"email": "a@example.org"}] * 1000}), False),
        (orjson.dumps(nested(MAX_DEPTH)), False),
        (orjson.dumps(nested(MAX_DEPTH + 1)), True),
        (b'{"n": 9007199254740992}', True),
        (b'{"n": 18446744073709551616}', True),
        (b'{"n": -9007199254740991}', False),
        (b'{"s": "a\\u0000b"}', True),
        (b'{"s": "\\ud800"}', True),
        (b'{"s\\u0000": 1}', True),
        (b'{"s": "\\u00fc"}', False),
    ],
)
def test_bodies_a_client_might_send(body: bytes, refused: bool) -> None:
    assert (_verdict(lambda: guarded_loads(body)) is not None) == refused
