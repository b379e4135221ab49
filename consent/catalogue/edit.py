"""Editing the catalogue from the admin: every edit is a catalogue document applied by `catalogue_apply`.

The stored catalogue is exported as a catalogue file (API.md), the edit changes that document, and the result is
applied like a file: the same rules hold (UWG §7, TDDDG §25, notices that never change), nothing is deleted, and
every edit is a new CatalogueRevision that says what changed. A notice is never edited in place: a new text is a
new version (`catalogue_notice_add`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import connection

from config.names import Name, as_given, localised
from consent.catalogue.apply import ApplyResult, catalogue_apply
from consent.catalogue.art30 import PURPOSE_KEYS as ART30_PURPOSE_KEYS
from consent.catalogue.art30 import art30_keys_of
from consent.catalogue.spec import CatalogueError
from consent.catalogue.validate import catalogue_validate
from consent.models import CatalogueRevision, Channel, DataCategory, Notice, Purpose, Source, SourceCategory

Document = dict[str, Any]
Edit = Callable[[Document], None]

_EDIT_LOCK = int.from_bytes(hashlib.sha256(b"assent:catalogue-edit").digest()[:8], "big", signed=True)


# ---------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------
def catalogue_document() -> Document:
    """The stored catalogue as a catalogue file; applying it changes nothing."""
    latest = CatalogueRevision.objects.order_by("-pk").values_list(
        "merge_identifiers", "document__one_per_person", "document"
    )
    revision, one_per_person, stored_document = latest.first() or (None, None, None)
    newest: dict[int, Notice] = {}
    for stored in Notice.objects.order_by("created_at", "pk"):
        newest[stored.purpose_id] = stored
    purposes = []
    for purpose in Purpose.objects.prefetch_related("channels", "data_categories").order_by("pk"):
        notice = newest.get(purpose.pk)
        purposes.append(
            purpose_item(
                key=purpose.key,
                name=as_given(purpose.name, purpose.names),
                legal_basis=purpose.legal_basis,
                marketing=purpose.marketing,
                channels=[c.key for c in sorted(purpose.channels.all(), key=lambda c: c.pk)],
                data_categories=[c.key for c in sorted(purpose.data_categories.all(), key=lambda c: c.pk)],
                double_opt_in=list(purpose.double_opt_in),
                consent_valid_days=purpose.consent_valid_days,
                uwg_7_3=purpose.uwg_7_3,
                dpv=purpose.dpv,
                automated_decision=as_given(purpose.automated_decision, purpose.automated_decision_texts),
                gpc=purpose.gpc,
                tcf_purposes=list(purpose.tcf_purposes),
                reads_device_identifiers=purpose.reads_device_identifiers,
                notice=notice_item(notice.version, notice.requires_reconsent, notice.texts) if notice else None,
            )
        )
    holdings: dict[int, dict[str, Any]] = {}
    for holding in SourceCategory.objects.select_related("category").order_by("pk"):
        holdings.setdefault(holding.source_id, {})[holding.category.key] = holding_item(
            delete_after_days=holding.delete_after_days,
            legal_hold_years=holding.legal_hold_years,
            legal_hold_from=holding.legal_hold_from,
            legal_hold_law=holding.legal_hold_law,
        )
    document: Document = {
        "merge_identifiers": list(revision or []),
        "channels": [{"key": c.key, "name": as_given(c.name, c.names)} for c in Channel.objects.order_by("pk")],
        "data_categories": [
            {"key": c.key, "name": as_given(c.name, c.names), "profile": c.profile, "purchase": c.purchase}
            for c in DataCategory.objects.order_by("pk")
        ],
        "purposes": purposes,
        "sources": [
            {
                "key": s.key,
                "name": as_given(s.name, s.names),
                "system_of_record": s.system_of_record,
                "categories": holdings.get(s.pk, {}),
            }
            for s in Source.objects.order_by("pk")
        ],
    }
    # An admin edit keeps each source's connector (a file without it removes it).
    connectors = dict(Source.objects.filter(connector__isnull=False).values_list("key", "connector"))
    for source in document["sources"]:
        if connectors.get(source["key"]):
            source["connector"] = connectors[source["key"]]
    if one_per_person is not None:  # kept on every admin edit: dropping it would merge two customer numbers again
        document["one_per_person"] = list(one_per_person)
    # The records of processing's keys live only in the stored document (consent.catalogue.art30): kept likewise.
    art30_top, art30_purposes = art30_keys_of(stored_document if isinstance(stored_document, dict) else None)
    document.update(art30_top)
    for item in document["purposes"]:
        item.update(art30_purposes.get(item["key"], {}))
    return document


def purpose_item(
    *,
    key: str,
    name: Name,
    legal_basis: str,
    marketing: bool,
    channels: Sequence[str],
    data_categories: Sequence[str],
    double_opt_in: Sequence[str],
    consent_valid_days: int | None,
    uwg_7_3: bool,
    dpv: str,
    automated_decision: Name,
    gpc: bool,
    tcf_purposes: Sequence[int],
    reads_device_identifiers: bool,
    notice: dict[str, Any] | None,
) -> dict[str, Any]:
    """A purpose as the catalogue file writes it; optional keys only where they say something."""
    item: dict[str, Any] = {
        "key": key,
        "name": name,
        "legal_basis": legal_basis,
        "marketing": marketing,
        "channels": list(channels),
        "data_categories": list(data_categories),
        "double_opt_in": list(double_opt_in),
    }
    if consent_valid_days is not None:
        item["consent_valid_days"] = consent_valid_days
    if uwg_7_3:
        item["uwg_7_3"] = True
    if dpv:
        item["dpv"] = dpv
    if automated_decision:
        item["automated_decision"] = automated_decision
    if gpc:
        item["gpc"] = True
    if tcf_purposes:
        item["tcf_purposes"] = list(tcf_purposes)
    if reads_device_identifiers:
        item["reads_device_identifiers"] = True
    if notice is not None:
        item["notice"] = notice
    return item


def notice_item(version: str, requires_reconsent: bool, texts: dict[str, str]) -> dict[str, Any]:
    return {"version": version, "requires_reconsent": requires_reconsent, "texts": dict(texts)}


def holding_item(
    *, delete_after_days: int, legal_hold_years: int | None, legal_hold_from: str, legal_hold_law: str
) -> dict[str, Any]:
    item: dict[str, Any] = {"delete_after_days": delete_after_days}
    if legal_hold_years is not None:
        item["legal_hold"] = {"years": legal_hold_years, "from": legal_hold_from, "law": legal_hold_law}
    return item


# ---------------------------------------------------------------------------------------------------------
# Edits: functions that change an exported document in place
# ---------------------------------------------------------------------------------------------------------
def _upsert(items: list[dict[str, Any]], item: dict[str, Any]) -> None:
    for index, existing in enumerate(items):
        if existing.get("key") == item["key"]:
            # The admin's forms edit one text: texts per language stay when that text is unchanged.
            for field in ("name", "automated_decision"):
                kept = existing.get(field)
                if isinstance(kept, dict) and item.get(field) == localised(kept):
                    item = {**item, field: kept}
            items[index] = item
            return
    items.append(item)


def _find(items: list[dict[str, Any]], key: str, what: str) -> dict[str, Any]:
    for item in items:
        if item.get("key") == key:
            return item
    raise CatalogueError(f"{what} '{key}' is not in the catalogue")


def edit_channel(*, key: str, name: str) -> Edit:
    return lambda doc: _upsert(doc["channels"], {"key": key, "name": name})


def edit_category(*, key: str, name: str, profile: bool, purchase: bool = False) -> Edit:
    item = {"key": key, "name": name, "profile": profile, "purchase": purchase}
    return lambda doc: _upsert(doc["data_categories"], item)


def edit_purpose(*, item: dict[str, Any], keep_notice: bool = True) -> Edit:
    """Upsert a purpose. keep_notice: the stored newest notice stays the purpose's notice unless `item` names one."""

    def edit(doc: Document) -> None:
        new = dict(item)
        old = next((p for p in doc["purposes"] if p.get("key") == new["key"]), None)
        if keep_notice and "notice" not in new and old is not None and "notice" in old:
            new["notice"] = old["notice"]
        for key in ART30_PURPOSE_KEYS:  # the admin's purpose form does not edit the records of processing's keys
            if key not in new and old is not None and key in old:
                new[key] = old[key]
        _upsert(doc["purposes"], new)

    return edit


def edit_notice(*, purpose: str, version: str, requires_reconsent: bool, texts: dict[str, str]) -> Edit:
    def edit(doc: Document) -> None:
        _find(doc["purposes"], purpose, "purpose")["notice"] = notice_item(version, requires_reconsent, texts)

    return edit


def edit_source(*, key: str, name: str, system_of_record: bool) -> Edit:
    def edit(doc: Document) -> None:
        old = next((s for s in doc["sources"] if s.get("key") == key), None)
        categories = old["categories"] if old is not None else {}
        _upsert(
            doc["sources"], {"key": key, "name": name, "system_of_record": system_of_record, "categories": categories}
        )

    return edit


def edit_holding(*, source: str, category: str, holding: dict[str, Any]) -> Edit:
    def edit(doc: Document) -> None:
        _find(doc["sources"], source, "source")["categories"][category] = holding

    return edit


# ---------------------------------------------------------------------------------------------------------
# Checking and applying an edit
# ---------------------------------------------------------------------------------------------------------
def catalogue_edit_problems(*, edit: Edit) -> list[str]:
    """What would stop the edit, each problem naming its place; [] when it can be applied. For forms."""
    document = catalogue_document()
    try:
        edit(document)
    except CatalogueError as exc:
        return exc.errors
    return catalogue_validate(document)


def notice_version_taken(*, purpose: str, version: str) -> bool:
    """A notice version is the text people agreed to: a version already stored can never carry another text."""
    return Notice.objects.filter(purpose__key=purpose, version=version).exists()


def catalogue_edit(*, edit: Edit) -> ApplyResult:
    """Apply one admin edit as a new catalogue revision. Raises CatalogueError naming every problem.

    The document is exported under a session advisory lock that every admin edit takes, so two editors never
    apply a document exported before the other's change (a lost update). catalogue_apply runs its own durable
    transaction and its own lock against apply_catalog."""
    with _edit_lock():
        document = catalogue_document()
        before = copy.deepcopy(document)
        edit(document)
        if document == before:  # a form saved without a change: no empty revision
            latest = CatalogueRevision.objects.order_by("-pk").values_list("pk", flat=True).first()
            return ApplyResult(revision_id=latest or 0, changed=False, changes=[])
        return catalogue_apply(document=document)


@contextmanager
def _edit_lock() -> Iterator[None]:
    if connection.vendor != "postgresql":  # SQLite (the demo) serialises writers itself
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [_EDIT_LOCK])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_EDIT_LOCK])
