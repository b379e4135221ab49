"""Validating a catalogue document (API.md, "Catalogue file") against the law's rules: pure, and collecting every
problem, each naming its place in the file, so an operator fixes a file in one round. What the database holds (a
notice version stored with other texts) is checked when applying (consent.catalogue.apply)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from django.conf import settings

from config.errors import DomainError
from config.names import Name
from consent.catalogue.art30 import PURPOSE_KEYS as ART30_PURPOSE_KEYS
from consent.catalogue.art30 import TOP_KEYS as ART30_TOP_KEYS
from consent.catalogue.art30 import art30_purpose_validate, art30_top_validate
from consent.catalogue.dpv import dpv_purpose_problem
from consent.catalogue.reader import LANGUAGES, DocumentReader, at, show
from consent.catalogue.spec import CatalogueSpec, HoldingSpec, NoticeSpec, PurposeSpec, SourceSpec
from consent.models import SourceCategory
from consent.policy import LegalBasis
from consent.webhooks.urls import url_parse
from subjects.connectors.pgmap import POSTGRESQL, pg_map_parse
from subjects.models import Identifier

LEGAL_BASES = tuple(basis.value for basis in LegalBasis)
CONSENT = LegalBasis.CONSENT.value
LEGITIMATE_INTEREST = LegalBasis.LEGITIMATE_INTEREST.value
HOLD_FROM = tuple(SourceCategory.HoldFrom.values)
# Shared identifiers name a household, a shared device or a public account, never one person: merging on them
# would fuse strangers' data (DESIGN.md, "Subjects and linked records").
SHARED_KINDS = (Identifier.Kind.PHONE.value, Identifier.Kind.COOKIE_ID.value, Identifier.Kind.SOCIAL_HANDLE.value)
PERSON_KINDS = tuple(kind for kind in Identifier.Kind.values if kind not in SHARED_KINDS)
# Channel keys that are the media UWG §7 speaks of.
EMAIL, SMS, PHONE = "email", "sms", "phone"
# Words in a data category key that mark data read from the person's terminal equipment (TDDDG §25).
TERMINAL_WORDS = re.compile(r"(^|[-_])(cookies?|devices?|fingerprints?|tracking|browsing|clickstream)([-_]|ids?|$)")
MAX_DAYS = 36_500  # a hundred years; also keeps every count inside PositiveIntegerField
MAX_YEARS = 100
DAYS_PER_YEAR = 365  # a legal hold of n years lasts at least 365 n days
TCF_PURPOSES = range(1, 12)  # IAB TCF v2.2 purposes 1 to 11

HTTP = "http"
CONNECTOR_TYPES = (HTTP, POSTGRESQL)
TOP_KEYS = ("merge_identifiers", "channels", "data_categories", "purposes", "sources")
TOP_OPTIONAL = ("one_per_person", *ART30_TOP_KEYS)
PURPOSE_REQUIRED = ("key", "name", "legal_basis", "marketing", "channels", "data_categories")
PURPOSE_OPTIONAL = (
    "double_opt_in", "consent_valid_days", "uwg_7_3", "notice", "dpv", "automated_decision", "gpc",
    "tcf_purposes", "reads_device_identifiers", *ART30_PURPOSE_KEYS,
)  # fmt: skip

ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")


def catalogue_validate(document: object) -> list[str]:
    """Every problem of a catalogue document, each naming its place; [] when it can be applied. Pure: what the
    database holds (a notice version stored with other texts) is checked by catalogue_apply."""
    return catalogue_parse(document)[1]


def catalogue_parse(document: object) -> tuple[CatalogueSpec | None, list[str]]:
    r = DocumentReader()
    if not isinstance(document, dict):
        r.problem("catalogue", f"must be a JSON object with the keys {', '.join(TOP_KEYS)}")
        return None, r.problems
    top = r.mapping(document, "", TOP_KEYS, TOP_OPTIONAL)
    assert top is not None
    merge = _merge_identifiers(r, top)
    _one_per_person(r, top)
    art30_top_validate(r, top)
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
    purposes: list[PurposeSpec] = []
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
    sources: list[SourceSpec] = []
    places = {}
    for index, item in enumerate(r.items(top, "sources", "") or []):
        source = _source(r, item, f"sources[{index}]", categories if category_list is not None else None, places)
        if source is not None:
            sources.append(source)
    if r.problems:
        return None, r.problems
    return CatalogueSpec(merge, channels, categories, tuple(purposes), tuple(sources)), []


def _one_per_person(r: DocumentReader, top: dict[str, Any]) -> None:
    """Kinds of which one person holds at most one value: a merge that would give a survivor two of them waits
    for the DPO (DESIGN.md). It is read back from the stored document (`catalogue_one_per_person`)."""
    if "one_per_person" not in top:
        return
    seen: list[str] = []
    for index, kind in enumerate(r.items(top, "one_per_person", "") or []):
        place = f"one_per_person[{index}]"
        if not isinstance(kind, str) or kind not in PERSON_KINDS:
            r.problem(place, f"{show(kind)} is not a person-bound identifier kind (one of {', '.join(PERSON_KINDS)})")
        elif kind in seen:
            r.problem(place, f"'{kind}' is listed twice")
        else:
            seen.append(kind)


def _merge_identifiers(r: DocumentReader, top: dict[str, Any]) -> tuple[str, ...]:
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
            r.problem(place, f"{show(kind)} is not an identifier kind (one of {', '.join(PERSON_KINDS)})")
        elif kind in kinds:
            r.problem(place, f"'{kind}' is listed twice")
        else:
            kinds.append(kind)
    return tuple(kinds)


def _purpose(
    r: DocumentReader,
    item: object,
    place: str,
    channels: dict[str, Name] | None,
    categories: dict[str, tuple[Name, bool, bool]] | None,
    places: dict[str, str],
) -> PurposeSpec | None:
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
        r.problem(at(place, "channels"), "must name at least one channel (where the purpose contacts or is used)")
    read = r.references(obj, "data_categories", place, categories, "data category")
    if used is None:
        double_opt_in = r.references(obj, "double_opt_in", place, channels, "channel")
    else:
        double_opt_in = r.references(obj, "double_opt_in", place, used, "channel of this purpose")
    valid_days = r.count(obj, "consent_valid_days", place, maximum=MAX_DAYS)
    uwg_7_3 = bool(r.flag(obj, "uwg_7_3", place))
    dpv = r.text(obj, "dpv", place) or ""
    if dpv and (problem := dpv_purpose_problem(dpv)) is not None:
        r.problem(at(place, "dpv"), problem)
    automated = r.name(obj, "automated_decision", place, max_length=None) or ""
    gpc = bool(r.flag(obj, "gpc", place))
    reads_device = bool(r.flag(obj, "reads_device_identifiers", place))
    tcf = _tcf_purposes(r, obj, place)
    notice = _notice(r, obj["notice"], at(place, "notice")) if "notice" in obj else None
    art30_purpose_validate(r, obj, place)

    _purpose_rules(
        r,
        obj,
        place,
        basis=basis,
        marketing=marketing,
        used=used,
        read=read,
        double_opt_in=double_opt_in,
        valid_days=valid_days,
        uwg_7_3=uwg_7_3,
    )
    if len(r.problems) > before or key is None or name is None or basis is None or marketing is None:
        return None
    if "double_opt_in" not in obj:
        # API.md: e-mail marketing on consent is confirmed by the address owner unless the file says otherwise.
        double_opt_in = (EMAIL,) if marketing and basis == CONSENT and EMAIL in (used or ()) else ()
    return PurposeSpec(
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


def _purpose_rules(
    r: DocumentReader,
    obj: dict[str, Any],
    place: str,
    *,
    basis: str | None,
    marketing: bool | None,
    used: tuple[str, ...] | None,
    read: tuple[str, ...] | None,
    double_opt_in: tuple[str, ...] | None,
    valid_days: int | None,
    uwg_7_3: bool,
) -> None:
    """Rules between a purpose's fields (API.md, DESIGN.md "The policy check"), only where the fields themselves
    read well."""
    if basis == CONSENT and "notice" not in obj:
        r.problem(at(place, "notice"), "is required for legal basis consent: the exact texts the person is shown")
    if basis is not None and basis != CONSENT:
        if "double_opt_in" in obj and double_opt_in:
            r.problem(at(place, "double_opt_in"), f"double opt-in confirms a consent; this purpose rests on {basis}")
        if valid_days is not None:
            r.problem(at(place, "consent_valid_days"), f"only a consent expires; this purpose rests on {basis}")
        _tdddg(r, place, basis, obj, read or ())
    if marketing and basis in (LegalBasis.CONTRACT, LegalBasis.LEGAL_OBLIGATION):
        r.problem(at(place, "marketing"), f"direct marketing rests on consent or legitimate interest, not {basis}")
    li_marketing = basis == LEGITIMATE_INTEREST and marketing is True
    if uwg_7_3 and basis is not None and marketing is not None and not li_marketing:
        r.problem(
            at(place, "uwg_7_3"), "the existing-customer exemption (UWG §7(3)) is for legitimate-interest marketing"
        )
    if li_marketing and used is not None:
        for index, channel in enumerate(obj["channels"]):
            where = f"{at(place, 'channels')}[{index}]"
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


def _tdddg(r: DocumentReader, place: str, basis: str, obj: dict[str, Any], read: tuple[str, ...]) -> None:
    """TDDDG §25: storing or reading information on the person's device needs consent, whatever the purpose."""
    why = f"reading cookie or device identifiers needs consent (TDDDG §25); this purpose rests on {basis}"
    if obj.get("reads_device_identifiers") is True:
        r.problem(at(place, "reads_device_identifiers"), why)
    if obj.get("gpc") is True:
        r.problem(at(place, "gpc"), f"sale, sharing or targeted advertising reads the device: {why}")
    if isinstance(obj.get("tcf_purposes"), list) and obj["tcf_purposes"]:
        r.problem(at(place, "tcf_purposes"), f"IAB TCF purposes are processing on the device: {why}")
    for index, category in enumerate(obj["data_categories"] if isinstance(obj.get("data_categories"), list) else []):
        if category in read and TERMINAL_WORDS.search(category):
            r.problem(f"{at(place, 'data_categories')}[{index}]", f"'{category}' holds cookie or device data: {why}")


def _tcf_purposes(r: DocumentReader, obj: dict[str, Any], place: str) -> tuple[int, ...]:
    items = r.items(obj, "tcf_purposes", place)
    ids: list[int] = []
    for index, item in enumerate(items or []):
        where = f"{at(place, 'tcf_purposes')}[{index}]"
        if isinstance(item, bool) or not isinstance(item, int) or item not in TCF_PURPOSES:
            r.problem(where, f"{show(item)} is not an IAB TCF purpose id (1 to 11)")
        elif item in ids:
            r.problem(where, f"{item} is listed twice")
        else:
            ids.append(item)
    return tuple(ids)


def _notice(r: DocumentReader, item: object, place: str) -> NoticeSpec | None:
    obj = r.mapping(item, place, ("version", "texts"), ("requires_reconsent",))
    if obj is None:
        return None
    version = r.text(obj, "version", place, max_length=64)
    reconsent = r.flag(obj, "requires_reconsent", place)
    texts: dict[str, str] = {}
    if "texts" in obj:
        languages = r.mapping(obj["texts"], at(place, "texts"), LANGUAGES)
        for language in LANGUAGES:
            text = r.text(languages, language, at(place, "texts"), max_length=None) if languages else None
            if text is not None:
                texts[language] = text
    if version is None or len(texts) != len(LANGUAGES):
        return None
    return NoticeSpec(version=version, requires_reconsent=bool(reconsent), texts=texts)


def _source(
    r: DocumentReader,
    item: object,
    place: str,
    categories: dict[str, tuple[Name, bool, bool]] | None,
    places: dict[str, str],
) -> SourceSpec | None:
    obj = r.mapping(item, place, ("key", "name", "system_of_record", "categories"), ("connector",))
    if obj is None:
        return None
    key = r.unique(r.key(obj, place), place, places)
    name = r.name(obj, "name", place)
    system_of_record = r.flag(obj, "system_of_record", place)
    holdings: list[HoldingSpec] = []
    held = obj.get("categories", {})
    if not isinstance(held, dict):
        r.problem(at(place, "categories"), "must be an object: data category key -> how long this source keeps it")
        held = {}
    for category, value in held.items():
        where = at(at(place, "categories"), category)
        if categories is not None and category not in categories:
            r.problem(where, f"'{category}' is not a declared data category")
            continue
        holding = _holding(r, value, where, category)
        if holding is not None:
            holdings.append(holding)
    connector = _connector(r, obj["connector"], at(place, "connector")) if "connector" in obj else None
    if key is None or name is None or system_of_record is None:
        return None
    return SourceSpec(
        key=key, name=name, system_of_record=system_of_record, categories=tuple(holdings), connector=connector
    )


def _http_connector(r: DocumentReader, obj: dict[str, Any], place: str) -> dict[str, Any] | None:
    """`{"type": "http", "url", "secret_env"}`: the URL under the webhooks' rules (https; http only for loopback
    when allowed), the secret's variable named (it is read when a part is sent: a missing one fails that part)."""
    if r.mapping(obj, place, ("type", "url", "secret_env")) is None:
        return None
    url, env = obj.get("url"), obj.get("secret_env")
    ok = True
    try:
        scheme, host, _port, _path = url_parse(url if isinstance(url, str) else "")
        # The address is checked again at every sending (a name may resolve elsewhere later); plain http is for a
        # loopback system in development only.
        if scheme == "http" and not (settings.ASSENT_WEBHOOK_ALLOW_LOOPBACK and _loopback(host)):
            r.problem(at(place, "url"), "must be an https URL (http only for a loopback address in development)")
            ok = False
    except DomainError as exc:
        r.problem(at(place, "url"), exc.detail)
        ok = False
    if not isinstance(env, str) or not ENV_NAME.fullmatch(env):
        r.problem(at(place, "secret_env"), "must name an environment variable (A-Z, 0-9, _)")
        ok = False
    return {"type": "http", "url": url, "secret_env": env} if ok else None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _connector(r: DocumentReader, item: object, place: str) -> dict[str, Any] | None:
    """A source's connector (API.md, "Connectors"), by its type; the live schema is checked when applying."""
    if not isinstance(item, dict):
        r.problem(place, f"must be an object with a type (one of {', '.join(CONNECTOR_TYPES)})")
        return None
    kind = item.get("type")
    if kind == HTTP:
        return _http_connector(r, item, place)
    if kind == POSTGRESQL:
        _map, problems = pg_map_parse(item, place)
        r.problems.extend(problems)
        return None if problems else dict(item)
    r.problem(at(place, "type"), f"{show(kind)} is not a connector type (one of {', '.join(CONNECTOR_TYPES)})")
    return None


def _holding(r: DocumentReader, item: object, place: str, category: str) -> HoldingSpec | None:
    obj = r.mapping(item, place, ("delete_after_days",), ("legal_hold",))
    if obj is None:
        return None
    days = r.count(obj, "delete_after_days", place, maximum=MAX_DAYS)
    years: int | None = None
    hold_from = law = ""
    if "legal_hold" in obj:
        where = at(place, "legal_hold")
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
            at(place, "delete_after_days"),
            f"{days} days is shorter than the legal hold of '{category}' ({years} years, {law}): "
            f"set at least {DAYS_PER_YEAR * years}",
        )
        return None
    return HoldingSpec(category=category, delete_after_days=days, hold_years=years, hold_from=hold_from, hold_law=law)
