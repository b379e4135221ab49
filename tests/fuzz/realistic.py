"""Bodies the catalogue recognises. A schema can only say "a string" for a purpose, a channel or a source (they are
the catalogue's), so purely schema-driven cases nearly always stop at the first 400. Half the positive cases get
some of their fields replaced by values of the standard catalogue (tests/catalogue.py), so that the fuzzer also
reaches what lies behind validation: subjects resolved and created, requests opened, merges proposed."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.catalogue import CHANNEL_NAMES, NEWSLETTER_NOTICE

PEOPLE = ("anna@example.de", "bo@example.org", "Cem@Example.COM")
REFERENCES = st.one_of(
    st.builds(lambda email: {"email": email}, st.sampled_from(PEOPLE)),
    st.builds(lambda n: {"phone": f"+49171123456{n}"}, st.integers(0, 9)),
    st.builds(lambda n: {"customer_number": f"C-{n}"}, st.integers(0, 5)),
    st.builds(
        lambda email, n: {"email": email, "customer_number": f"C-{n}"}, st.sampled_from(PEOPLE), st.integers(0, 5)
    ),
)
MOMENTS = st.sampled_from(["2026-01-10T10:00:00Z", "2025-06-01T00:00:00+02:00", "1900-01-01T00:00:00Z"])
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "purpose": st.sampled_from(["newsletter", "offers", "order-updates"]),
    "channel": st.sampled_from(sorted(CHANNEL_NAMES)),
    "action": st.sampled_from(["grant", "withdraw", "object", "confirm"]),
    "notice_version": st.just(NEWSLETTER_NOTICE),
    "actor": st.sampled_from(["subject", "agent", "parental_guardian"]),
    "kind": st.sampled_from(["access", "portability", "erasure", "rectification", "restriction", "objection"]),
    "subject": REFERENCES,
    "subjects": st.lists(REFERENCES, min_size=1, max_size=5),
    "recipients": st.lists(REFERENCES, min_size=1, max_size=5),
    "identifiers": REFERENCES,
    "category": st.sampled_from(["contact", "purchases"]),
    "occurred_at": MOMENTS,
    "verified": st.booleans(),
}
RECORD = st.fixed_dictionaries(
    {
        "source": st.just("pos"),
        "external_id": st.text(min_size=1, max_size=8),
        "category": FIELDS["category"],
        "identifiers": REFERENCES,
        "occurred_at": MOMENTS,
    }
)


@st.composite
def _replaced(draw: st.DrawFn, body: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out = dict(body)
    for name in names:
        if name == "records":
            out[name] = draw(st.lists(RECORD, min_size=1, max_size=3))
        elif name == "source":
            out[name] = "pos"  # a record's source must be the catalogue's; a consent's is a free slug: `pos` is both
        else:
            out[name] = draw(FIELDS[name])
    return out


def realistic(body: Any) -> st.SearchStrategy[Any]:
    """The generated body, or the same body with some (or all) of its known fields set to values the catalogue
    knows."""
    if not isinstance(body, dict):
        return st.just(body)
    present = sorted(name for name in body if name in FIELDS or name in ("source", "records"))
    if not present:
        return st.just(body)
    some = st.lists(st.sampled_from(present), unique=True).flatmap(lambda names: _replaced(body, names))
    return st.one_of(st.just(body), some, _replaced(body, present))
