"""Reads: the catalogue as the policy sees it, and each subject's state, in a fixed number of queries."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from consent.models import (
    CatalogueRevision,
    Channel,
    ConsentEvent,
    ConsentState,
    DataCategory,
    Notice,
    Objection,
    Purpose,
    Source,
    SourceCategory,
)
from consent.policy import (
    Actor as PolicyActor,
)
from consent.policy import (
    ConsentFact,
    ConsentStatus,
    LegalBasis,
    PurposeRule,
    SubjectState,
)
from subjects.models import Identifier, Subject

_SNAPSHOT_SECONDS = 2.0  # how long a process trusts its copy of the catalogue before re-reading it


@dataclass(frozen=True, slots=True)
class PurposeInfo:
    rule: PurposeRule
    name: str
    data_categories: tuple[str, ...]
    notice_versions: frozenset[str]
    current_notice: str | None  # the newest version, offered to people who choose now
    texts: dict[str, str] = field(default_factory=dict)  # the current notice's texts


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
    categories: dict[str, bool] = field(default_factory=dict)  # key -> profile
    sources: dict[str, dict[str, HoldingInfo]] = field(default_factory=dict)  # source -> category -> holding
    system_of_record: frozenset[str] = frozenset()


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
    revision = CatalogueRevision.objects.order_by("-pk").values_list("pk", "merge_identifiers").first()
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
            data_categories=tuple(sorted(c.key for c in purpose.data_categories.all())),
            notice_versions=frozenset(n.version for n in versions),
            current_notice=versions[-1].version if versions else None,
            texts=dict(versions[-1].texts) if versions else {},
        )
    sources: dict[str, dict[str, HoldingInfo]] = {}
    system_of_record: set[str] = set()
    for source in Source.objects.all():
        sources[source.key] = {}
        if source.system_of_record:
            system_of_record.add(source.key)
    for holding in SourceCategory.objects.select_related("source", "category"):
        sources[holding.source.key][holding.category.key] = HoldingInfo(
            holding.delete_after_days, holding.legal_hold_years, holding.legal_hold_from, holding.legal_hold_law
        )
    return CatalogueSnapshot(
        revision=revision[0] if revision else 0,
        purposes=purposes,
        channels=frozenset(Channel.objects.values_list("key", flat=True)),
        merge_identifiers=frozenset(revision[1]) if revision else frozenset(),
        categories=dict(DataCategory.objects.values_list("key", "profile")),
        sources=sources,
        system_of_record=frozenset(system_of_record),
    )


def _outdated(versions: list[Notice]) -> frozenset[str]:
    """Versions older than the newest version that requires re-consent."""
    last_reconsent = max((i for i, n in enumerate(versions) if n.requires_reconsent), default=-1)
    return frozenset(n.version for n in versions[:last_reconsent])


# ---------------------------------------------------------------------------------------------------------
# Subject state for the policy
# ---------------------------------------------------------------------------------------------------------
_STATE_FIELDS = (
    "subject_id",
    "purpose",
    "channel",
    "status",
    "notice_version",
    "granted_at",
    "confirmed",
    "actor",
    "suppressed",
)


def subject_states_for_policy(
    *, subject_ids: Iterable[uuid.UUID], purposes: Iterable[str] | None = None
) -> dict[uuid.UUID, SubjectState]:
    """SubjectState per subject (absent ids are unknown), in four queries whatever the count."""
    ids = list(set(subject_ids))
    if not ids:
        return {}
    flags = Subject.objects.filter(pk__in=ids).values_list(
        "pk", "status", "is_child", "restricted_at", "erasure_started_at", "erased_at"
    )
    states_qs = ConsentState.objects.filter(subject_id__in=ids)
    objections_qs = Objection.objects.filter(subject_id__in=ids)
    wanted = list(purposes) if purposes is not None else None
    if wanted is not None:
        states_qs = states_qs.filter(purpose__in=wanted)
        objections_qs = objections_qs.filter(purpose__in=[*wanted, ""])
    consents: dict[uuid.UUID, dict[tuple[str, str], ConsentFact]] = {}
    for sid, purpose, channel, status, version, granted_at, confirmed, actor, suppressed in states_qs.values_list(
        *_STATE_FIELDS
    ):
        consents.setdefault(sid, {})[(purpose, channel)] = ConsentFact(
            status=ConsentStatus(status),
            notice_version=version or None,
            granted_at=granted_at,
            confirmed=confirmed,
            actor=PolicyActor(actor) if actor in PolicyActor._value2member_map_ else PolicyActor.AGENT,
            suppressed=suppressed,
        )
    objected: dict[uuid.UUID, set[str]] = {}
    for sid, purpose in objections_qs.values_list("subject_id", "purpose"):
        objected.setdefault(sid, set()).add(purpose)
    customer_channels = _existing_customer_channels(ids, purposes=wanted)
    result: dict[uuid.UUID, SubjectState] = {}
    for sid, status, is_child, restricted_at, erasure_started_at, erased_at in flags:
        mine = objected.get(sid, set())
        result[sid] = SubjectState(
            erased=status == Subject.Status.ERASED or erased_at is not None,
            erasure_in_progress=erasure_started_at is not None,
            restricted=restricted_at is not None,
            is_child=is_child,
            objects_to_direct_marketing="" in mine,
            objected_purposes=frozenset(p for p in mine if p),
            consents=consents.get(sid, {}),
            existing_customer_channels=customer_channels.get(sid, frozenset()),
        )
    return result


# UWG §7(3): an address that came from a purchase lets a legitimate-interest purpose use the channel it reaches.
_PURCHASE_ADDRESS_CHANNELS = {"email": "email", "phone": "sms"}


def _existing_customer_channels(ids: list[uuid.UUID], *, purposes: list[str] | None) -> dict[uuid.UUID, frozenset[str]]:
    """Channels per subject on which the subject is an existing customer: one query, skipped when no wanted
    purpose rests on UWG §7(3)."""
    if purposes is not None:
        known = catalogue_snapshot().purposes
        if not any(known[p].rule.uwg_7_3 for p in purposes if p in known):
            return {}
    found: dict[uuid.UUID, set[str]] = {}
    rows = (
        Identifier.objects.filter(
            subject_id__in=ids, kind__in=list(_PURCHASE_ADDRESS_CHANNELS), purchase_at__isnull=False
        )
        .values_list("subject_id", "kind")
        .distinct()
    )
    for sid, kind in rows:
        found.setdefault(sid, set()).add(_PURCHASE_ADDRESS_CHANNELS[kind])
    return {sid: frozenset(channels) for sid, channels in found.items()}


def consent_states_list(*, subject_id: uuid.UUID) -> list[ConsentState]:
    return list(ConsentState.objects.filter(subject_id=subject_id).order_by("purpose", "channel"))


def consent_history_list(*, subject_id: uuid.UUID) -> list[ConsentEvent]:
    return list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("seq"))
