"""Catalogue names in one language or several (API.md): a string (`"SMS"`) or texts per language
(`{"de": "Briefpost", "en": "Letter post"}`). Every place that shows a name goes through `localised`, so a plain
string keeps working everywhere. Pure: no Django."""

from __future__ import annotations

from typing import Any

LANGUAGES = ("de", "en")  # an object of texts must hold each of these
FALLBACK = "de"  # a page shows the reader's language, else German


def localised(value: Any, language: str | None = None) -> str:
    """The text of a name for `language` (e.g. "en", "de-DE"), else German, else any text it has; a string as is."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return ""
    wanted = (language or "").split("-")[0].lower()
    for candidate in (wanted, FALLBACK, *LANGUAGES):
        text = value.get(candidate)
        if isinstance(text, str) and text:
            return text
    return next((text for text in value.values() if isinstance(text, str) and text), "")


def as_given(name: str, texts: dict[str, str] | None) -> str | dict[str, str]:
    """What the catalogue was given: the texts per language when there were several, else the one string."""
    return dict(texts) if texts else name


Name = str | dict[str, str]
