"""The catalogue as the policy sees it: a per-process snapshot of purposes, channels, categories and sources, and
the lookups every service makes in it (an unknown purpose or channel is a 400).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from config.names import as_given, localised
from consent.errors import ChannelNotPermittedError, ChannelUnknownError, PurposeUnknownError
from consent.models import CatalogueRevision, Channel, DataCategory, Notice, Purpose, Source, SourceCategory
from consent.policy import LegalBasis, PurposeRule

_SNAPSHOT_SECONDS = 2.0  # how long a process trusts its copy of the catalogue before re-reading it


@dataclass(frozen=True, slots=True)
class PurposeInfo:
    rule: PurposeRule
    name: str
    data_categories: tuple[str, ...]
    notice_versions: frozenset[str]
    current_notice: str | None  # the newest version, offered to people who choose now
    texts: dict[str, str] = field(default_factory=dict)  # the current notice's texts
    names: dict[str, str] | None = None  # the name's texts per language, when the catalogue gave several

    def display_name(self, language: str | None = None) -> str:
        return localised(as_given(self.name, self.names), language)


def channel_display_name(key: str, language: str | None = None) -> str:
    """A channel's name in `language` (else German), the key itself for a channel the catalogue no longer has."""
    row = Channel.objects.filter(key=key).values_list("name", "names").first()
    return localised(as_given(*row), language) if row else key


def notice_text(texts: dict[str, str], language: str | None = None) -> str:
    """A notice's text in `language`, else German, else any: the reader sees one language, never both."""
    return localised(texts, language) if texts else ""


@dataclass(frozen=True, slots=True)
class HoldingInfo:
    """What one source keeps of one data category, and for how long."""

    delete_after_days: int
    legal_hold_years: int | None
    legal_hold_from: str
    legal_hold_law: str


@dataclass(frozen=True, slots=True)
class CatalogueSnapshot:
    revision: int
    purposes: dict[str, PurposeInfo]
    channels: frozenset[str]
    merge_identifiers: frozenset[str]
    one_per_person: frozenset[str] = frozenset()
    merge_order: tuple[str, ...] = ()  # merge_identifiers in the catalogue's order
    categories: dict[str, bool] = field(default_factory=dict)  # key -> profile
    sources: dict[str, dict[str, HoldingInfo]] = field(default_factory=dict)  # source -> category -> holding
    system_of_record: frozenset[str] = frozenset()
    purchase_categories: frozenset[str] = frozenset()  # UWG §7(3): their records make existing customers
    connectors: dict[str, dict[str, Any]] = field(default_factory=dict)  # source -> its connector (API.md)


_lock = threading.Lock()
_cached: tuple[float, CatalogueSnapshot] | None = None


def catalogue_snapshot(*, refresh: bool = False) -> CatalogueSnapshot:
    """The catalogue, cached per process for a moment: every check needs it, and it changes rarely.
    A caller that meets an unknown key asks again with refresh=True before it answers 400."""
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and not refresh and now - cached[0] < _SNAPSHOT_SECONDS:
        return cached[1]
    snapshot = _load_snapshot()
    with _lock:
        _cached = (now, snapshot)
    return snapshot


def catalogue_forget() -> None:
    global _cached
    with _lock:
        _cached = None


def _load_snapshot() -> CatalogueSnapshot:
    revision = (
        CatalogueRevision.objects.order_by("-pk")
        .values_list("pk", "merge_identifiers", "document__one_per_person")
        .first()
    )
    notices: dict[int, list[Notice]] = {}
    for notice in Notice.objects.order_by("created_at", "pk"):
        notices.setdefault(notice.purpose_id, []).append(notice)
    purposes: dict[str, PurposeInfo] = {}
    for purpose in Purpose.objects.prefetch_related("channels", "data_categories"):
        versions = notices.get(purpose.pk, [])
        purposes[purpose.key] = PurposeInfo(
            rule=PurposeRule(
                key=purpose.key,
                legal_basis=LegalBasis(purpose.legal_basis),
                marketing=purpose.marketing,
                channels=frozenset(c.key for c in purpose.channels.all()),
                double_opt_in=frozenset(purpose.double_opt_in),
                consent_valid_days=purpose.consent_valid_days,
                outdated_notice_versions=_outdated(versions),
                uwg_7_3=purpose.uwg_7_3,
            ),
            name=purpose.name,
            names=purpose.names,
            data_categories=tuple(sorted(c.key for c in purpose.data_categories.all())),
            notice_versions=frozenset(n.version for n in versions),
            current_notice=versions[-1].version if versions else None,
            texts=dict(versions[-1].texts) if versions else {},
        )
    sources: dict[str, dict[str, HoldingInfo]] = {}
    system_of_record: set[str] = set()
    connectors: dict[str, dict[str, Any]] = {}
    for source in Source.objects.all():
        sources[source.key] = {}
        if source.system_of_record:
            system_of_record.add(source.key)
        if source.connector is not None:
            connectors[source.key] = source.connector
    for holding in SourceCategory.objects.select_related("source", "category"):
        sources[holding.source.key][holding.category.key] = HoldingInfo(
            holding.delete_after_days, holding.legal_hold_years, holding.legal_hold_from, holding.legal_hold_law
        )
    return CatalogueSnapshot(
        revision=revision[0] if revision else 0,
        purposes=purposes,
        channels=frozenset(Channel.objects.values_list("key", flat=True)),
        merge_identifiers=frozenset(revision[1]) if revision else frozenset(),
        one_per_person=frozenset(revision[2] or ()) if revision else frozenset(),
        merge_order=tuple(revision[1]) if revision else (),
        categories=dict(DataCategory.objects.values_list("key", "profile")),
        sources=sources,
        system_of_record=frozenset(system_of_record),
        connectors=connectors,
        purchase_categories=frozenset(DataCategory.objects.filter(purchase=True).values_list("key", flat=True)),
    )


def _outdated(versions: list[Notice]) -> frozenset[str]:
    """Versions older than the newest version that requires re-consent."""
    last_reconsent = max((i for i, n in enumerate(versions) if n.requires_reconsent), default=-1)
    return frozenset(n.version for n in versions[:last_reconsent])


def purpose_get(
    snapshot: CatalogueSnapshot, key: str, *, field_name: str = "purpose"
) -> tuple[CatalogueSnapshot, PurposeInfo]:
    info = snapshot.purposes.get(key)
    if info is None:
        snapshot = catalogue_snapshot(refresh=True)
        info = snapshot.purposes.get(key)
    if info is None:
        raise PurposeUnknownError(f"'{key}' is not a purpose of the catalogue", field=field_name)
    return snapshot, info


def channel_check(
    snapshot: CatalogueSnapshot,
    info: PurposeInfo,
    channel: str,
    *,
    field_name: str = "channel",
    listed: bool = True,
) -> None:
    """400 for a channel the catalogue does not know; with `listed`, also for one the purpose does not use
    (a check answers that as a denial instead)."""
    if channel not in snapshot.channels and channel not in catalogue_snapshot(refresh=True).channels:
        raise ChannelUnknownError(f"'{channel}' is not a channel of the catalogue", field=field_name)
    if listed and channel not in info.rule.channels:
        raise ChannelNotPermittedError(
            f"purpose '{info.rule.key}' does not use channel '{channel}' "
            f"(it uses {', '.join(sorted(info.rule.channels))})",
            field=field_name,
        )
