"""The catalogue as code: validating a catalogue file (API.md, "Catalogue file") and applying it.

Applying is idempotent and never destructive: what the file leaves out stays, a notice version's texts never
change once stored, and every applied file is kept as a CatalogueRevision. Validation is pure and collects every
problem, each naming its place in the file, so an operator fixes a file in one round.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from config.errors import InvalidInputError
from config.names import Name, localised
from consent.catalogue.snapshot import catalogue_forget
from consent.models import (
    CatalogueRevision,
    Channel,
    ConsentState,
    DataCategory,
    Notice,
    Purpose,
    Source,
    SourceCategory,
)
from subjects.models import Identifier

__all__ = ["ApplyResult", "CatalogueError", "catalogue_apply", "catalogue_load_file", "catalogue_validate"]


class CatalogueError(InvalidInputError):
    code = "catalogue_invalid"
    title = "Invalid catalogue"

    def __init__(self, errors: str | Sequence[str]) -> None:
        problems = [errors] if isinstance(errors, str) else list(errors)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}" if problems else "the catalogue is invalid")
        self._problems = problems

    @property  # every problem, each naming its place; not the per-field dict of other domain errors
    def errors(self) -> list[str]:  # type: ignore[override]
        return list(self._problems)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision_id: int
    changed: bool
    changes: list[str]


# ---------------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------------
LEGAL_BASES = tuple(Purpose.LegalBasis.values)
CONSENT = Purpose.LegalBasis.CONSENT.value
LEGITIMATE_INTEREST = Purpose.LegalBasis.LEGITIMATE_INTEREST.value
HOLD_FROM = tuple(SourceCategory.HoldFrom.values)
LANGUAGES = ("de", "en")
# Shared identifiers name a household, a shared device or a public account, never one person: merging on them
# would fuse strangers' data (DESIGN.md, "Subjects and linked records").
SHARED_KINDS = (Identifier.Kind.PHONE.value, Identifier.Kind.COOKIE_ID.value, Identifier.Kind.SOCIAL_HANDLE.value)
PERSON_KINDS = tuple(kind for kind in Identifier.Kind.values if kind not in SHARED_KINDS)
# Channel keys that are the media UWG §7 speaks of.
EMAIL, SMS, PHONE = "email", "sms", "phone"
# Words in a data category key that mark data read from the person's terminal equipment (TDDDG §25).
TERMINAL_WORDS = re.compile(r"(^|[-_])(cookies?|devices?|fingerprints?|tracking|browsing|clickstream)([-_]|ids?|$)")
KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_DAYS = 36_500  # a hundred years; also keeps every count inside PositiveIntegerField
MAX_YEARS = 100
DAYS_PER_YEAR = 365  # a legal hold of n years lasts at least 365 n days
TCF_PURPOSES = range(1, 12)  # IAB TCF v2.2 purposes 1 to 11

TOP_KEYS = ("merge_identifiers", "channels", "data_categories", "purposes", "sources")
TOP_OPTIONAL = ("one_per_person",)
PURPOSE_REQUIRED = ("key", "name", "legal_basis", "marketing", "channels", "data_categories")
PURPOSE_OPTIONAL = (
    "double_opt_in", "consent_valid_days", "uwg_7_3", "notice", "dpv", "automated_decision", "gpc",
    "tcf_purposes", "reads_device_identifiers",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Notice:
    version: str
    requires_reconsent: bool
    texts: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Purpose:
    place: str
    key: str
    name: Name
    legal_basis: str
    marketing: bool
    channels: tuple[str, ...]
    data_categories: tuple[str, ...]
    double_opt_in: tuple[str, ...]
    consent_valid_days: int | None
    uwg_7_3: bool
    notice: _Notice | None
    dpv: str
    automated_decision: Name
    gpc: bool
    tcf_purposes: tuple[int, ...]
    reads_device_identifiers: bool


@dataclass(frozen=True, slots=True)
class _Holding:
    category: str
    delete_after_days: int
    hold_years: int | None
    hold_from: str
    hold_law: str


@dataclass(frozen=True, slots=True)
class _Source:
    key: str
    name: Name
    system_of_record: bool
    categories: tuple[_Holding, ...]


@dataclass(frozen=True, slots=True)
class _Catalogue:
    merge_identifiers: tuple[str, ...]
    channels: dict[str, Name]  # key -> name
    categories: dict[str, tuple[Name, bool, bool]]  # key -> (name, profile, purchase)
    purposes: tuple[_Purpose, ...]
    sources: tuple[_Source, ...]


def catalogue_validate(document: object) -> list[str]:
    """Every problem of a catalogue document, each naming its place; [] when it can be applied. Pure: what the
    database holds (a notice version stored with other texts) is checked by catalogue_apply."""
    return _parse(document)[1]


def catalogue_load_file(path: str) -> object:
    """The parsed JSON of a catalogue file, or CatalogueError naming the file and what is wrong with it."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CatalogueError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogueError(f"{path}: not UTF-8 text (at byte offset {exc.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    except _DuplicateKeyError as exc:
        raise CatalogueError(f"{path}: key '{exc.key}' appears twice in one object") from None
    except ValueError as exc:
        raise CatalogueError(f"{path}: not valid JSON ({exc})") from None


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would silently keep the last of two "notice" keys: a catalogue must say one thing.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(key)
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# ---------------------------------------------------------------------------------------------------------
# Reading the document: types, keys and references, every problem with its place
# ---------------------------------------------------------------------------------------------------------
def _at(place: str, key: object) -> str:
    name = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return f"{place}.{name}" if place else name
    return f"{place}[{json.dumps(name, ensure_ascii=False)}]"


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class _Reader:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def problem(self, place: str, message: str) -> None:
        self.problems.append(f"{place}: {message}")

    def mapping(
        self, value: object, place: str, required: Sequence[str], optional: Sequence[str] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(place, "must be an object")
            return None
        known = (*required, *optional)
        for key in value:
            if key not in known:
                self.problem(_at(place, key), f"unknown key (known keys: {', '.join(known)})")
        for key in required:
            if key not in value:
                self.problem(_at(place, key), "is required")
        return value

    def items(self, obj: dict[str, Any], key: str, place: str) -> list[Any] | None:
        if key not in obj:
            return None
        if not isinstance(obj[key], list):
            self.problem(_at(place, key), "must be a list")
            return None
        return obj[key]

    def key(self, obj: dict[str, Any], place: str) -> str | None:
        if "key" not in obj:
            return None
        value = obj["key"]
        if not isinstance(value, str) or not KEY.fullmatch(value):
            self.problem(
                _at(place, "key"),
                f"{_show(value)} is not a key: use lower-case letters, digits, '-' and '_' (at most 64 characters)",
            )
            return None
        return value

    def name(self, obj: dict[str, Any], key: str, place: str, *, max_length: int | None = 200) -> Name | None:
        """A name: one string, or an object of texts per language (each of LANGUAGES, nothing else)."""
        if key not in obj or not isinstance(obj[key], dict):
            return self.text(obj, key, place, max_length=max_length)
        texts = self.mapping(obj[key], _at(place, key), LANGUAGES)
        if texts is None:
            return None
        found = {language: self.text(texts, language, _at(place, key), max_length=max_length) for language in texts}
        if len(texts) != len(LANGUAGES) or any(text is None for text in found.values()):
            return None
        return {language: text for language, text in found.items() if text is not None}

    def text(self, obj: dict[str, Any], key: str, place: str, *, max_length: int | None = 200) -> str | None:
        if key not in obj:
            return None
        value = obj[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(_at(place, key), "must be a non-empty string")
            return None
        if max_length is not None and len(value) > max_length:
            self.problem(_at(place, key), f"must be at most {max_length} characters")
            return None
        if "\x00" in value or not _encodable(value):
            # PostgreSQL stores neither a NUL character nor a lone surrogate in text or jsonb.
            self.problem(_at(place, key), "must not contain NUL characters or unpaired surrogates")
            return None
        return value

    def flag(self, obj: dict[str, Any], key: str, place: str) -> bool | None:
        if key not in obj:
            return None
        if not isinstance(obj[key], bool):
            self.problem(_at(place, key), "must be true or false")
            return None
        return bool(obj[key])

    def count(self, obj: dict[str, Any], key: str, place: str, *, maximum: int) -> int | None:
        if key not in obj:
            return None
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            self.problem(_at(place, key), f"must be a whole number from 1 to {maximum}")
            return None
        return value

    def choice(self, obj: dict[str, Any], key: str, place: str, choices: Sequence[str]) -> str | None:
        if key not in obj:
            return None
        value = obj[key]
        if not isinstance(value, str) or value not in choices:
            self.problem(_at(place, key), f"{_show(value)} is not one of {', '.join(choices)}")
            return None
        return value

    def references(
        self, obj: dict[str, Any], key: str, place: str, declared: Sequence[str] | dict[str, Any] | None, what: str
    ) -> tuple[str, ...] | None:
        """A list of keys, each declared elsewhere in the file (declared None: the declarations themselves are
        broken, so only the shape is checked), none twice."""
        items = self.items(obj, key, place)
        if items is None:
            return None
        seen: list[str] = []
        for index, item in enumerate(items):
            where = f"{_at(place, key)}[{index}]"
            if not isinstance(item, str):
                self.problem(where, f"must be the key of a {what}")
            elif item in seen:
                self.problem(where, f"'{item}' is listed twice")
            elif declared is not None and item not in declared:
                self.problem(where, f"'{item}' is not a declared {what}")
            else:
                seen.append(item)
        return tuple(seen)

    def unique(self, key: str | None, place: str, first_places: dict[str, str]) -> str | None:
        if key is None:
            return None
        if key in first_places:
            self.problem(_at(place, "key"), f"'{key}' is declared twice (first at {first_places[key]})")
            return None
        first_places[key] = place
        return key


def _parse(document: object) -> tuple[_Catalogue | None, list[str]]:
    r = _Reader()
    if not isinstance(document, dict):
        r.problem("catalogue", f"must be a JSON object with the keys {', '.join(TOP_KEYS)}")
        return None, r.problems
    top = r.mapping(document, "", TOP_KEYS, TOP_OPTIONAL)
    assert top is not None
    merge = _merge_identifiers(r, top)
    _one_per_person(r, top)
    channels: dict[str, Name] = {}
    places: dict[str, str] = {}
    channel_list = r.items(top, "channels", "")
    for index, item in enumerate(channel_list or []):
        place = f"channels[{index}]"
        obj = r.mapping(item, place, ("key", "name"))
        if obj is not None:
            key, name = r.unique(r.key(obj, place), place, places), r.name(obj, "name", place)
            if key is not None:
                channels[key] = name or key
    categories: dict[str, tuple[Name, bool, bool]] = {}
    places = {}
    category_list = r.items(top, "data_categories", "")
    for index, item in enumerate(category_list or []):
        place = f"data_categories[{index}]"
        obj = r.mapping(item, place, ("key", "name"), ("profile", "purchase"))
        if obj is not None:
            key, name = r.unique(r.key(obj, place), place, places), r.name(obj, "name", place)
            profile, purchase = r.flag(obj, "profile", place), r.flag(obj, "purchase", place)
            if key is not None:
                categories[key] = (name or key, bool(profile), bool(purchase))
    purposes: list[_Purpose] = []
    places = {}
    for index, item in enumerate(r.items(top, "purposes", "") or []):
        purpose = _purpose(
            r,
            item,
            f"purposes[{index}]",
            channels if channel_list is not None else None,
            categories if category_list is not None else None,
            places,
        )
        if purpose is not None:
            purposes.append(purpose)
    sources: list[_Source] = []
    places = {}
    for index, item in enumerate(r.items(top, "sources", "") or []):
        source = _source(r, item, f"sources[{index}]", categories if category_list is not None else None, places)
        if source is not None:
            sources.append(source)
    if r.problems:
        return None, r.problems
    return _Catalogue(merge, channels, categories, tuple(purposes), tuple(sources)), []


def _one_per_person(r: _Reader, top: dict[str, Any]) -> None:
    """Kinds of which one person holds at most one value: a merge that would give a survivor two of them waits
    for the DPO (DESIGN.md). It is read back from the stored document (`catalogue_one_per_person`)."""
    if "one_per_person" not in top:
        return
    seen: list[str] = []
    for index, kind in enumerate(r.items(top, "one_per_person", "") or []):
        place = f"one_per_person[{index}]"
        if not isinstance(kind, str) or kind not in PERSON_KINDS:
            r.problem(place, f"{_show(kind)} is not a person-bound identifier kind (one of {', '.join(PERSON_KINDS)})")
        elif kind in seen:
            r.problem(place, f"'{kind}' is listed twice")
        else:
            seen.append(kind)


def _merge_identifiers(r: _Reader, top: dict[str, Any]) -> tuple[str, ...]:
    kinds: list[str] = []
    for index, kind in enumerate(r.items(top, "merge_identifiers", "") or []):
        place = f"merge_identifiers[{index}]"
        if kind in SHARED_KINDS:
            r.problem(
                place,
                f"'{kind}' is a shared identifier (a household's number, a shared browser, a public account) and "
                f"never merges people; list only person-bound kinds: {', '.join(PERSON_KINDS)}",
            )
        elif not isinstance(kind, str) or kind not in PERSON_KINDS:
            r.problem(place, f"{_show(kind)} is not an identifier kind (one of {', '.join(PERSON_KINDS)})")
        elif kind in kinds:
            r.problem(place, f"'{kind}' is listed twice")
        else:
            kinds.append(kind)
    return tuple(kinds)


def _purpose(
    r: _Reader,
    item: object,
    place: str,
    channels: dict[str, Name] | None,
    categories: dict[str, tuple[Name, bool, bool]] | None,
    places: dict[str, str],
) -> _Purpose | None:
    obj = r.mapping(item, place, PURPOSE_REQUIRED, PURPOSE_OPTIONAL)
    if obj is None:
        return None
    before = len(r.problems)
    key = r.unique(r.key(obj, place), place, places)
    name = r.name(obj, "name", place)
    basis = r.choice(obj, "legal_basis", place, LEGAL_BASES)
    marketing = r.flag(obj, "marketing", place)
    used = r.references(obj, "channels", place, channels, "channel")
    if obj.get("channels") == []:
        r.problem(_at(place, "channels"), "must name at least one channel (where the purpose contacts or is used)")
    read = r.references(obj, "data_categories", place, categories, "data category")
    if used is None:
        double_opt_in = r.references(obj, "double_opt_in", place, channels, "channel")
    else:
        double_opt_in = r.references(obj, "double_opt_in", place, used, "channel of this purpose")
    valid_days = r.count(obj, "consent_valid_days", place, maximum=MAX_DAYS)
    uwg_7_3 = bool(r.flag(obj, "uwg_7_3", place))
    dpv = r.text(obj, "dpv", place) or ""
    automated = r.name(obj, "automated_decision", place, max_length=None) or ""
    gpc = bool(r.flag(obj, "gpc", place))
    reads_device = bool(r.flag(obj, "reads_device_identifiers", place))
    tcf = _tcf_purposes(r, obj, place)
    notice = _notice(r, obj["notice"], _at(place, "notice")) if "notice" in obj else None

    # Rules between fields (API.md, DESIGN.md "The policy check"), only where the fields themselves read well.
    if basis == CONSENT and "notice" not in obj:
        r.problem(_at(place, "notice"), "is required for legal basis consent: the exact texts the person is shown")
    if basis is not None and basis != CONSENT:
        if "double_opt_in" in obj and double_opt_in:
            r.problem(_at(place, "double_opt_in"), f"double opt-in confirms a consent; this purpose rests on {basis}")
        if valid_days is not None:
            r.problem(_at(place, "consent_valid_days"), f"only a consent expires; this purpose rests on {basis}")
        _tdddg(r, place, basis, obj, read or ())
    if marketing and basis in (Purpose.LegalBasis.CONTRACT, Purpose.LegalBasis.LEGAL_OBLIGATION):
        r.problem(_at(place, "marketing"), f"direct marketing rests on consent or legitimate interest, not {basis}")
    li_marketing = basis == LEGITIMATE_INTEREST and marketing is True
    if uwg_7_3 and basis is not None and marketing is not None and not li_marketing:
        r.problem(
            _at(place, "uwg_7_3"), "the existing-customer exemption (UWG §7(3)) is for legitimate-interest marketing"
        )
    if li_marketing and used is not None:
        for index, channel in enumerate(obj["channels"]):
            where = f"{_at(place, 'channels')}[{index}]"
            if channel == PHONE:
                r.problem(
                    where,
                    "legitimate-interest marketing may never call: advertising calls need the person's prior "
                    "express consent (UWG §7(2) Nr. 1)",
                )
            elif channel in (EMAIL, SMS) and not uwg_7_3:
                r.problem(
                    where,
                    f"legitimate-interest marketing may use '{channel}' only for existing customers: set "
                    "uwg_7_3: true (UWG §7(3)), or rest the purpose on consent",
                )
    if len(r.problems) > before or key is None or name is None or basis is None or marketing is None:
        return None
    if "double_opt_in" not in obj:
        # API.md: e-mail marketing on consent is confirmed by the address owner unless the file says otherwise.
        double_opt_in = (EMAIL,) if marketing and basis == CONSENT and EMAIL in (used or ()) else ()
    return _Purpose(
        place=place,
        key=key,
        name=name,
        legal_basis=basis,
        marketing=marketing,
        channels=used or (),
        data_categories=read or (),
        double_opt_in=double_opt_in or (),
        consent_valid_days=valid_days,
        uwg_7_3=uwg_7_3,
        notice=notice,
        dpv=dpv,
        automated_decision=automated,
        gpc=gpc,
        tcf_purposes=tcf,
        reads_device_identifiers=reads_device,
    )


def _tdddg(r: _Reader, place: str, basis: str, obj: dict[str, Any], read: tuple[str, ...]) -> None:
    """TDDDG §25: storing or reading information on the person's device needs consent, whatever the purpose."""
    why = f"reading cookie or device identifiers needs consent (TDDDG §25); this purpose rests on {basis}"
    if obj.get("reads_device_identifiers") is True:
        r.problem(_at(place, "reads_device_identifiers"), why)
    if obj.get("gpc") is True:
        r.problem(_at(place, "gpc"), f"sale, sharing or targeted advertising reads the device: {why}")
    if isinstance(obj.get("tcf_purposes"), list) and obj["tcf_purposes"]:
        r.problem(_at(place, "tcf_purposes"), f"IAB TCF purposes are processing on the device: {why}")
    for index, category in enumerate(obj["data_categories"] if isinstance(obj.get("data_categories"), list) else []):
        if category in read and TERMINAL_WORDS.search(category):
            r.problem(f"{_at(place, 'data_categories')}[{index}]", f"'{category}' holds cookie or device data: {why}")


def _tcf_purposes(r: _Reader, obj: dict[str, Any], place: str) -> tuple[int, ...]:
    items = r.items(obj, "tcf_purposes", place)
    ids: list[int] = []
    for index, item in enumerate(items or []):
        where = f"{_at(place, 'tcf_purposes')}[{index}]"
        if isinstance(item, bool) or not isinstance(item, int) or item not in TCF_PURPOSES:
            r.problem(where, f"{_show(item)} is not an IAB TCF purpose id (1 to 11)")
        elif item in ids:
            r.problem(where, f"{item} is listed twice")
        else:
            ids.append(item)
    return tuple(ids)


def _notice(r: _Reader, item: object, place: str) -> _Notice | None:
    obj = r.mapping(item, place, ("version", "texts"), ("requires_reconsent",))
    if obj is None:
        return None
    version = r.text(obj, "version", place, max_length=64)
    reconsent = r.flag(obj, "requires_reconsent", place)
    texts: dict[str, str] = {}
    if "texts" in obj:
        languages = r.mapping(obj["texts"], _at(place, "texts"), LANGUAGES)
        for language in LANGUAGES:
            text = r.text(languages, language, _at(place, "texts"), max_length=None) if languages else None
            if text is not None:
                texts[language] = text
    if version is None or len(texts) != len(LANGUAGES):
        return None
    return _Notice(version=version, requires_reconsent=bool(reconsent), texts=texts)


def _source(
    r: _Reader, item: object, place: str, categories: dict[str, tuple[Name, bool, bool]] | None, places: dict[str, str]
) -> _Source | None:
    obj = r.mapping(item, place, ("key", "name", "system_of_record", "categories"))
    if obj is None:
        return None
    key = r.unique(r.key(obj, place), place, places)
    name = r.name(obj, "name", place)
    system_of_record = r.flag(obj, "system_of_record", place)
    holdings: list[_Holding] = []
    held = obj.get("categories", {})
    if not isinstance(held, dict):
        r.problem(_at(place, "categories"), "must be an object: data category key -> how long this source keeps it")
        held = {}
    for category, value in held.items():
        where = _at(_at(place, "categories"), category)
        if categories is not None and category not in categories:
            r.problem(where, f"'{category}' is not a declared data category")
            continue
        holding = _holding(r, value, where, category)
        if holding is not None:
            holdings.append(holding)
    if key is None or name is None or system_of_record is None:
        return None
    return _Source(key=key, name=name, system_of_record=system_of_record, categories=tuple(holdings))


def _holding(r: _Reader, item: object, place: str, category: str) -> _Holding | None:
    obj = r.mapping(item, place, ("delete_after_days",), ("legal_hold",))
    if obj is None:
        return None
    days = r.count(obj, "delete_after_days", place, maximum=MAX_DAYS)
    years: int | None = None
    hold_from = law = ""
    if "legal_hold" in obj:
        where = _at(place, "legal_hold")
        hold = r.mapping(obj["legal_hold"], where, ("years", "from", "law"))
        if hold is None:
            return None
        years = r.count(hold, "years", where, maximum=MAX_YEARS)
        hold_from = r.choice(hold, "from", where, HOLD_FROM) or ""
        law = r.text(hold, "law", where) or ""
        if years is None or not hold_from or not law:
            return None
    if days is None:
        return None
    if years is not None and days < DAYS_PER_YEAR * years:
        # The purge keeps held records anyway; a limit shorter than the hold is a mistake in the catalogue.
        r.problem(
            _at(place, "delete_after_days"),
            f"{days} days is shorter than the legal hold of '{category}' ({years} years, {law}): "
            f"set at least {DAYS_PER_YEAR * years}",
        )
        return None
    return _Holding(category=category, delete_after_days=days, hold_years=years, hold_from=hold_from, hold_law=law)


# ---------------------------------------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------------------------------------
_LOCK_ID = int.from_bytes(hashlib.sha256(b"assent:catalogue").digest()[:8], "big", signed=True)


@transaction.atomic(durable=True)
def catalogue_apply(*, document: object) -> ApplyResult:
    """Apply a catalogue document: upsert by key, add new notice versions, keep what the file leaves out, and
    store the document as a new revision. The same document twice writes nothing the second time. Any problem
    raises CatalogueError before a row is written (the transaction covers whatever could still fail)."""
    catalogue, problems = _parse(document)
    if problems or catalogue is None or not isinstance(document, dict):
        raise CatalogueError(problems)
    digest = hashlib.sha256(rfc8785.dumps(document)).hexdigest()
    # Two operators applying at once: the second waits and then compares against the first one's revision.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_ID])
    latest = CatalogueRevision.objects.order_by("-pk").first()
    if latest is not None and latest.digest == digest:
        return ApplyResult(revision_id=latest.pk, changed=False, changes=[])
    conflicts = _notice_conflicts(catalogue)
    if conflicts:
        raise CatalogueError(conflicts)

    now = timezone.now()
    changes: list[str] = []
    if latest is None or list(latest.merge_identifiers) != list(catalogue.merge_identifiers):
        before = ", ".join(latest.merge_identifiers) if latest is not None else "(none)"
        changes.append(f"merge_identifiers: {before} -> {', '.join(catalogue.merge_identifiers) or '(none)'}")
    one_before = (latest.document or {}).get("one_per_person", []) if latest is not None else []
    if isinstance(document, dict) and list(one_before) != list(document.get("one_per_person", [])):
        changes.append(
            f"one_per_person: {', '.join(one_before) or '(none)'} -> "
            f"{', '.join(document.get('one_per_person', [])) or '(none)'}"
        )
    channels = _apply_channels(catalogue, changes)
    categories = _apply_categories(catalogue, changes)
    _apply_purposes(catalogue, channels, categories, now, changes)
    _apply_sources(catalogue, categories, changes)
    revision = CatalogueRevision.objects.create(
        applied_at=now, digest=digest, merge_identifiers=list(catalogue.merge_identifiers), document=document
    )
    transaction.on_commit(catalogue_forget)
    return ApplyResult(revision_id=revision.pk, changed=True, changes=changes)


def _notice_conflicts(catalogue: _Catalogue) -> list[str]:
    """A stored notice version is the text people agreed to: it never changes (API.md)."""
    with_notice = {p.key: p for p in catalogue.purposes if p.notice is not None}
    stored = Notice.objects.filter(purpose__key__in=with_notice).values_list(
        "purpose__key", "version", "texts", "requires_reconsent"
    )
    problems: list[str] = []
    for key, version, texts, requires_reconsent in stored:
        purpose = with_notice[key]
        notice = purpose.notice
        assert notice is not None
        if notice.version != version:
            continue
        if notice.texts != texts:
            problems.append(
                f"{purpose.place}.notice.texts: version '{version}' of purpose '{key}' is stored with other texts; "
                "a new text needs a new version"
            )
        if notice.requires_reconsent != requires_reconsent:
            problems.append(
                f"{purpose.place}.notice.requires_reconsent: version '{version}' of purpose '{key}' is stored with "
                f"requires_reconsent {str(requires_reconsent).lower()}; a change needs a new version"
            )
    return problems


def _apply_channels(catalogue: _Catalogue, changes: list[str]) -> dict[str, Channel]:
    stored = {c.key: c for c in Channel.objects.all()}
    for key, name in catalogue.channels.items():
        channel = stored.get(key)
        if channel is None:
            stored[key] = Channel.objects.create(key=key, **_names(name))
            changes.append(f"channel {key}: added")
        elif changed := _diff(f"channel {key}", channel, _names(name), changes):
            channel.save(update_fields=changed)
    changes.extend(f"channel {key}: absent from the file, kept" for key in sorted(stored.keys() - catalogue.channels))
    return stored


def _apply_categories(catalogue: _Catalogue, changes: list[str]) -> dict[str, DataCategory]:
    stored = {c.key: c for c in DataCategory.objects.all()}
    for key, (name, profile, purchase) in catalogue.categories.items():
        category = stored.get(key)
        if category is None:
            stored[key] = DataCategory.objects.create(key=key, **_names(name), profile=profile, purchase=purchase)
            changes.append(f"data category {key}: added")
            continue
        values = {**_names(name), "profile": profile, "purchase": purchase}
        changed = _diff(f"data category {key}", category, values, changes)
        if changed:
            category.save(update_fields=changed)
    changes.extend(
        f"data category {key}: absent from the file, kept" for key in sorted(stored.keys() - catalogue.categories)
    )
    return stored


def _apply_purposes(
    catalogue: _Catalogue,
    channels: dict[str, Channel],
    categories: dict[str, DataCategory],
    now: datetime,
    changes: list[str],
) -> None:
    stored = {p.key: p for p in Purpose.objects.prefetch_related("channels", "data_categories", "notices")}
    for spec in catalogue.purposes:
        fields: dict[str, Any] = {
            **_names(spec.name),
            "legal_basis": spec.legal_basis,
            "marketing": spec.marketing,
            "double_opt_in": list(spec.double_opt_in),
            "consent_valid_days": spec.consent_valid_days,
            "uwg_7_3": spec.uwg_7_3,
            "dpv": spec.dpv,
            **_names(spec.automated_decision, "automated_decision", "automated_decision_texts"),
            "gpc": spec.gpc,
            "tcf_purposes": list(spec.tcf_purposes),
            "reads_device_identifiers": spec.reads_device_identifiers,
        }
        label = f"purpose {spec.key}"
        purpose = stored.get(spec.key)
        if purpose is None:
            purpose = Purpose.objects.create(key=spec.key, **fields)
            purpose.channels.set([channels[key] for key in spec.channels])
            purpose.data_categories.set([categories[key] for key in spec.data_categories])
            changes.append(f"{label}: added ({spec.legal_basis}, channels {', '.join(spec.channels)})")
            notices: list[Notice] = []
        else:
            old_basis = purpose.legal_basis
            changed = _diff(label, purpose, fields, changes)
            if changed:
                purpose.save(update_fields=changed)
            if "legal_basis" in changed:
                _report_basis_change(spec, old_basis, changes)
            old_channels = {c.key for c in purpose.channels.all()}
            if old_channels != set(spec.channels):
                purpose.channels.set([channels[key] for key in spec.channels])
                changes.append(f"{label}: channels {_keys(old_channels)} -> {_keys(spec.channels)}")
            old_categories = {c.key for c in purpose.data_categories.all()}
            if old_categories != set(spec.data_categories):
                purpose.data_categories.set([categories[key] for key in spec.data_categories])
                changes.append(f"{label}: data categories {_keys(old_categories)} -> {_keys(spec.data_categories)}")
            notices = list(purpose.notices.all())
        if spec.notice is not None:
            _apply_notice(label, purpose, spec.notice, notices, now, changes)
    in_file = {p.key for p in catalogue.purposes}
    changes.extend(f"purpose {key}: absent from the file, kept" for key in sorted(stored.keys() - in_file))


def _report_basis_change(spec: _Purpose, old_basis: str, changes: list[str]) -> None:
    """Allowed, but the DPO should see whose recorded consents now stand on another footing."""
    counts = dict(
        ConsentState.objects.filter(purpose=spec.key).values_list("status").annotate(n=Count("pk")).order_by()
    )
    if counts:
        held = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        changes.append(
            f"purpose {spec.key}: legal basis changed from {old_basis} to {spec.legal_basis} while consent states "
            f"exist ({held}); checks now follow {spec.legal_basis}, the ledger keeps every event"
        )


def _apply_notice(
    label: str, purpose: Purpose, notice: _Notice, stored: list[Notice], now: datetime, changes: list[str]
) -> None:
    if any(n.version == notice.version for n in stored):
        newest = stored[-1].version if stored else notice.version
        if newest != notice.version:
            changes.append(
                f"{label}: the file names notice {notice.version}, older than the stored {newest}, which stays current"
            )
        return
    Notice.objects.create(
        purpose=purpose,
        version=notice.version,
        requires_reconsent=notice.requires_reconsent,
        texts=notice.texts,
        created_at=now,
    )
    reconsent = " (requires re-consent: consents to earlier versions are outdated)" if notice.requires_reconsent else ""
    changes.append(f"{label}: notice {notice.version} added{reconsent}")


def _apply_sources(catalogue: _Catalogue, categories: dict[str, DataCategory], changes: list[str]) -> None:
    stored = {s.key: s for s in Source.objects.prefetch_related("categories__category")}
    for spec in catalogue.sources:
        label = f"source {spec.key}"
        source = stored.get(spec.key)
        if source is None:
            source = Source.objects.create(key=spec.key, **_names(spec.name), system_of_record=spec.system_of_record)
            changes.append(f"{label}: added")
            holdings: dict[str, SourceCategory] = {}
        else:
            values = {**_names(spec.name), "system_of_record": spec.system_of_record}
            changed = _diff(label, source, values, changes)
            if changed:
                source.save(update_fields=changed)
            holdings = {h.category.key: h for h in source.categories.all()}
        for holding in spec.categories:
            values = {
                "delete_after_days": holding.delete_after_days,
                "legal_hold_years": holding.hold_years,
                "legal_hold_from": holding.hold_from,
                "legal_hold_law": holding.hold_law,
            }
            row = holdings.get(holding.category)
            if row is None:
                SourceCategory.objects.create(source=source, category=categories[holding.category], **values)
                changes.append(f"{label}: category {holding.category} added")
                continue
            changed = _diff(f"{label}: category {holding.category}", row, values, changes)
            if changed:
                row.save(update_fields=changed)
        in_file = {h.category for h in spec.categories}
        changes.extend(
            f"{label}: category {key} absent from the file, kept" for key in sorted(holdings.keys() - in_file)
        )
    in_file_sources = {s.key for s in catalogue.sources}
    changes.extend(f"source {key}: absent from the file, kept" for key in sorted(stored.keys() - in_file_sources))


def _names(value: Name, field: str = "name", texts: str = "names") -> dict[str, Any]:
    """A name as stored: the German (else any) text in `field`, which every reader can show, and the texts per
    language exactly as given in `texts` (None for a plain string)."""
    return {field: localised(value), texts: dict(value) if isinstance(value, dict) else None}


def _diff(label: str, row: Any, values: dict[str, Any], changes: list[str]) -> list[str]:
    """Set the values that differ on the row; report each; return the changed field names."""
    changed: list[str] = []
    for name, new in values.items():
        old = getattr(row, name)
        if old == new:
            continue
        changed.append(name)
        setattr(row, name, new)
        if name in ("automated_decision", "automated_decision_texts"):
            changes.append(f"{label}: automated_decision text changed")
        else:
            changes.append(f"{label}: {name} {_value(old)} -> {_value(new)}")
    return changed


def _value(value: object) -> str:
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, str) and not KEY.fullmatch(value):
        return f"'{value}'"
    return str(value)


def _keys(keys: set[str] | Sequence[str]) -> str:
    return ", ".join(sorted(keys)) or "(none)"
