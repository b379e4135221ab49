"""Normalising identifiers: the same person's address typed two ways must find the same subject."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from subjects.errors import InvalidIdentifierError, InvalidReferenceError
from subjects.identity import normalise, parse_reference


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("email", "  Kim.Doe@Example.ORG ", "kim.doe@example.org"),
        ("email", "jörg@bücher.de", "jörg@xn--bcher-kva.de"),
        ("email", "Jo\u0308rg@example.org", "jörg@example.org"),  # NFC
        ("phone", "+49 171 1234567", "+491711234567"),
        ("phone", "0171 1234567", "+491711234567"),  # the default region is DE
        ("customer_number", " C-1 ", "C-1"),
        ("social_handle", "@KimDoe", "@kimdoe"),
    ],
)
def test_identifiers_are_normalised(kind: str, raw: str, expected: str) -> None:
    assert normalise(kind, raw) == expected


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("email", "no-at-sign"),
        ("email", "a@nodot"),
        ("email", "a b@example.org"),
        ("phone", "12"),
        ("phone", "+49 000"),
        ("email", ""),
        ("email", 42),
        ("customer_number", "C 1"),
        ("shoe_size", "42"),
    ],
)
def test_invalid_identifiers_are_rejected_naming_the_field(kind: str, raw: object) -> None:
    with pytest.raises(InvalidIdentifierError) as info:
        normalise(kind, raw, field=f"subject.{kind}")
    assert info.value.field == f"subject.{kind}"


def test_a_reference_holds_an_id_and_normalised_identifiers() -> None:
    subject_id = uuid.uuid4()
    ref = parse_reference({"id": str(subject_id), "email": "A@B.de", "phone": "+49 171 1234567"})
    assert ref.subject_id == subject_id
    assert ref.identifiers == (("email", "a@b.de"), ("phone", "+491711234567"))
    assert ref.email == "a@b.de"


@pytest.mark.parametrize("raw", [{}, [], "a@b.de", {"id": "not-a-uuid"}, {"id": 7}, {"shoe": "x"}])
def test_malformed_references_are_rejected(raw: object) -> None:
    with pytest.raises((InvalidReferenceError, InvalidIdentifierError)):
        parse_reference(raw)


# Plain ASCII e-mail addresses take a fast path; a padded copy of the same text takes the general one (the padding
# is trimmed there). Both must agree on every text: the same canonical form, or the same refusal.
_email_text = st.text(alphabet="abcXYZ019._%+-@", min_size=1, max_size=40) | st.emails()


def _normalised_or_refused(text: str) -> str | None:
    try:
        return normalise("email", text)
    except InvalidIdentifierError:
        return None


# No deadline: the first example pays for lazy imports, which took over 200 ms on a loaded machine (one run in a
# full local run failed with DeadlineExceeded); derandomized so that every run tries the same texts.
@settings(max_examples=500, deadline=None, derandomize=True)
@given(text=_email_text)
def test_the_plain_email_fast_path_agrees_with_the_general_path(text: str) -> None:
    assert _normalised_or_refused(text) == _normalised_or_refused(f" {text} ")


def test_a_plain_email_is_lower_cased_whole() -> None:
    assert normalise("email", "Bench.One+Tag@Example.ORG") == "bench.one+tag@example.org"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=_email_text)
def test_a_reference_by_a_plain_email_alone_parses_as_the_general_walk_would(text: str) -> None:
    # {"email": x} alone takes parse_reference's shortcut; beside an "id" it takes the walk over every key.
    subject_id = "7d3f1e39-6a0b-4a55-9f0e-2f5b8c1d4e6a"
    try:
        walked: tuple[tuple[str, str], ...] | None = parse_reference({"id": subject_id, "email": text}).identifiers
    except InvalidIdentifierError:
        walked = None
    try:
        short: tuple[tuple[str, str], ...] | None = parse_reference({"email": text}).identifiers
    except InvalidIdentifierError:
        short = None
    assert short == walked
