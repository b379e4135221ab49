"""Fuzzing an HTML form through Django's test client: read the form's fields off the page, then post hostile values
(any text, any bytes, NUL, invalid UTF-8, megabytes) for any subset of them, raw and url-encoded, so that bytes a
browser would never send arrive too. The answer must be a page a person can read, never a 500."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

SKIP = {"csrfmiddlewaretoken"}
FORM = "application/x-www-form-urlencoded"


@dataclass
class Form:
    """The fields of a POST form: name -> the values the page offers (options, checkbox values, initial)."""

    action: str  # where it posts ("": to the page itself)
    fields: dict[str, list[str]] = field(default_factory=dict)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", "")) if a.get("method", "get").lower() == "post" else None
            if self._form is not None:
                self.forms.append(self._form)
        elif self._form is not None and tag in ("input", "textarea", "select", "button") and a.get("name"):
            name = a["name"]
            if name not in SKIP:
                offered = self._form.fields.setdefault(name, [])
                if a.get("value") or a.get("type") == "checkbox":
                    offered.append(a.get("value") or "on")
            self._select = name if tag == "select" else None
        elif tag == "option" and self._form is not None and self._select and a.get("value"):
            self._form.fields[self._select].append(a["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def form_of(html: str) -> Form:
    """The page's main POST form: the one with the most fields (not the sign-out button in the header)."""
    parser = _FormParser()
    parser.feed(html)
    return max(parser.forms, key=lambda form: len(form.fields), default=Form(""))


# What a hostile or careless user can put in one field.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=20).map(lambda s: s * 500),  # long
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "a\x00b",
            "0",
            "-1",
            "1e309",
            str(10**400),
            "NaN",
            "null",
            "[]",
            "{}",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "../../etc/passwd",
            "%00",
            "\u202e",
            "\ufeff",
            "a@b",
            "x" * 70_000 + "@example.de",
            "2999-01-01",
            "0001-01-01",
            "+49 171 1234567",
        ]
    ),
)
HOSTILE_BYTES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"\x00", b"caf\xe9", b"\xf4\x90\x80\x80"]),
)


@st.composite
def hostile_form(draw: st.DrawFn, form: Form) -> bytes:
    """A url-encoded body: a subset of the form's fields (missing fields too), each with a value the page offered
    or a hostile one; sometimes a field repeated or one the form does not have."""
    names = sorted(form.fields)
    chosen = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    pairs: list[tuple[bytes, bytes]] = []
    for name in chosen:
        offered = form.fields[name]
        value: Any = draw(
            st.one_of(
                st.sampled_from(offered) if offered else st.just(""),
                HOSTILE_TEXT,
                HOSTILE_BYTES,
            )
        )
        raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
        pairs.extend([(name.encode(), raw)] * draw(st.integers(1, 2)))
    if draw(st.booleans()):
        pairs.append((draw(HOSTILE_BYTES), draw(HOSTILE_BYTES)))
    return b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)


def assert_readable(response: Any, where: str) -> None:
    """Never a 500; a page (or a redirect to one) a person can read."""
    assert response.status_code < 500, f"{where}: {response.status_code}"
    if response.status_code in (301, 302, 303):
        return
    content_type = response.get("Content-Type", "")
    assert content_type.startswith("text/html"), f"{where}: {response.status_code} {content_type}"
    text = b"".join(response).decode("utf-8") if response.streaming else response.content.decode("utf-8")
    assert "<title>" in text, f"{where}: {response.status_code} is not a page: {text[:300]}"
    assert len(text) > 200, f"{where}: {response.status_code} says nothing a person can read: {text[:300]}"
