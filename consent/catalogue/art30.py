"""The catalogue's keys for the records of processing (Art. 30(1) GDPR) that the rest of the catalogue does not
already say: who the controller and the data protection officer are (a, b), the categories of data subjects (c)
and of recipients (d), transfers to third countries with their safeguards (e), and the organisation's technical
and organisational measures (g). Every key is optional, so a catalogue without them still applies; when present,
each is validated and every problem names its place. They are read back from the stored catalogue document (like
`one_per_person`), never copied into rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from config.names import Name, localised
from consent.catalogue.reader import LANGUAGES, DocumentReader, at, show

TOP_KEYS = ("controller", "dpo", "security_measures")
PURPOSE_KEYS = ("data_subjects", "recipients", "transfers")

# The safeguard a transfer rests on (Chapter V GDPR), with the article the records name.
SAFEGUARDS: dict[str, str] = {
    "adequacy_decision": "Art. 45 GDPR",
    "standard_contractual_clauses": "Art. 46(2)(c) GDPR",
    "binding_corporate_rules": "Art. 46(2)(b), Art. 47 GDPR",
    "code_of_conduct": "Art. 46(2)(e) GDPR",
    "certification": "Art. 46(2)(f) GDPR",
    "derogation": "Art. 49 GDPR",
}
# The EU member states and the other EEA states (ISO 3166-1 alpha-2; Greece as GR): no third country.
EEA = frozenset(
    (
        *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
        *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
        *("IS", "LI", "NO"),  # the EEA beyond the EU
    )
)
COUNTRY = re.compile(r"[A-Z]{2}")
MAX_ITEMS = 50


@dataclass(frozen=True, slots=True)
class Contact:
    name: Name
    contact: str
    address: Name = ""


@dataclass(frozen=True, slots=True)
class Transfer:
    country: str
    recipient: Name
    safeguard: str
    details: Name = ""

    @property
    def article(self) -> str:
        return SAFEGUARDS.get(self.safeguard, "")


@dataclass(frozen=True, slots=True)
class PurposeFacts:
    """What a purpose's entry says for Art. 30(1)(c)-(e); None where the catalogue does not say it."""

    data_subjects: tuple[Name, ...] | None = None
    recipients: tuple[Name, ...] | None = None
    transfers: tuple[Transfer, ...] | None = None


@dataclass(frozen=True, slots=True)
class Art30Facts:
    controller: Contact | None
    dpo: Contact | None
    security_measures: tuple[Name, ...]
    purposes: dict[str, PurposeFacts]


# ---------------------------------------------------------------------------------------------------------
# Validation (called by consent.catalogue.validate)
# ---------------------------------------------------------------------------------------------------------
def art30_top_validate(r: DocumentReader, top: dict[str, Any]) -> None:
    if "controller" in top:
        _contact(r, top["controller"], "controller", optional=("address",))
    if "dpo" in top:
        _contact(r, top["dpo"], "dpo", optional=())
    if "security_measures" in top:
        _names(r, top, "security_measures", "", empty_ok=False, what="a measure")


def art30_purpose_validate(r: DocumentReader, obj: dict[str, Any], place: str) -> None:
    if "data_subjects" in obj:
        _names(r, obj, "data_subjects", place, empty_ok=False, what="a category of data subjects")
    if "recipients" in obj:
        # An empty list says so on purpose: nobody outside the controller receives the data.
        _names(r, obj, "recipients", place, empty_ok=True, what="a category of recipients")
    for index, item in enumerate(_list(r, obj, "transfers", place) or []):
        _transfer(r, item, f"{at(place, 'transfers')}[{index}]")


def _contact(r: DocumentReader, item: object, place: str, *, optional: tuple[str, ...]) -> None:
    obj = r.mapping(item, place, ("name", "contact"), optional)
    if obj is None:
        return
    r.name(obj, "name", place)
    r.text(obj, "contact", place, max_length=300)
    if "address" in obj:
        r.name(obj, "address", place, max_length=500)


def _list(r: DocumentReader, obj: dict[str, Any], key: str, place: str) -> list[Any] | None:
    items = r.items(obj, key, place)
    if items is not None and len(items) > MAX_ITEMS:
        r.problem(at(place, key), f"must list at most {MAX_ITEMS} entries")
        return None
    return items


def _names(r: DocumentReader, obj: dict[str, Any], key: str, place: str, *, empty_ok: bool, what: str) -> None:
    items = _list(r, obj, key, place)
    if items is None:
        return
    if not items and not empty_ok:
        r.problem(at(place, key), f"must name at least one entry ({what}), or leave the key out")
    for index, item in enumerate(items):
        _name_at(r, item, f"{at(place, key)}[{index}]")


def _name_at(r: DocumentReader, value: object, place: str) -> None:
    """A list entry that is a name: one string, or texts per language (each of LANGUAGES)."""
    if isinstance(value, dict):
        texts = r.mapping(value, place, LANGUAGES)
        for language in LANGUAGES:
            if texts is not None and language in texts:
                r.text(texts, language, place, max_length=500)
    elif not isinstance(value, str) or not value.strip():
        r.problem(place, "must be a non-empty string, or an object of texts per language (de, en)")
    elif len(value) > 500:
        r.problem(place, "must be at most 500 characters")


def _transfer(r: DocumentReader, item: object, place: str) -> None:
    obj = r.mapping(item, place, ("country", "recipient", "safeguard"), ("details",))
    if obj is None:
        return
    country = obj.get("country")
    if "country" in obj and (not isinstance(country, str) or not COUNTRY.fullmatch(country)):
        r.problem(at(place, "country"), f"{show(country)} is not an ISO 3166-1 alpha-2 country code (e.g. 'US')")
    elif isinstance(country, str) and country in EEA:
        r.problem(
            at(place, "country"),
            f"'{country}' is in the EU/EEA: not a third country; list it under recipients instead",
        )
    r.name(obj, "recipient", place)
    r.choice(obj, "safeguard", place, tuple(SAFEGUARDS))
    if "details" in obj:
        r.name(obj, "details", place, max_length=500)


# ---------------------------------------------------------------------------------------------------------
# Reading a stored (validated) document
# ---------------------------------------------------------------------------------------------------------
def art30_facts(document: dict[str, Any] | None) -> Art30Facts:
    """The Art. 30 keys of a stored catalogue document (validated when it was applied)."""
    document = document or {}
    purposes: dict[str, PurposeFacts] = {}
    for item in document.get("purposes", []):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            continue
        transfers = item.get("transfers")
        purposes[item["key"]] = PurposeFacts(
            data_subjects=tuple(item["data_subjects"]) if "data_subjects" in item else None,
            recipients=tuple(item["recipients"]) if "recipients" in item else None,
            transfers=None
            if transfers is None
            else tuple(Transfer(t["country"], t["recipient"], t["safeguard"], t.get("details", "")) for t in transfers),
        )
    return Art30Facts(
        controller=_read_contact(document.get("controller")),
        dpo=_read_contact(document.get("dpo")),
        security_measures=tuple(document.get("security_measures", ())),
        purposes=purposes,
    )


def _read_contact(item: object) -> Contact | None:
    if not isinstance(item, dict):
        return None
    return Contact(name=item["name"], contact=item["contact"], address=item.get("address", ""))


def art30_keys_of(document: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The top-level Art. 30 keys and, per purpose key, its Art. 30 keys: what an admin edit carries over from the
    stored document (its forms edit neither)."""
    document = document or {}
    top = {key: document[key] for key in TOP_KEYS if key in document}
    per_purpose = {
        item["key"]: {key: item[key] for key in PURPOSE_KEYS if key in item}
        for item in document.get("purposes", [])
        if isinstance(item, dict) and isinstance(item.get("key"), str)
    }
    return top, {key: keys for key, keys in per_purpose.items() if keys}


def text(value: Name, language: str | None) -> str:
    return localised(value, language)
