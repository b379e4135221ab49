"""Reads: the catalogue as the policy sees it, and each subject's state, in a fixed number of queries."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection

from config.errors import UnavailableError
from config.names import as_given, localised
from consent.models import (
    CatalogueRevision,
    Channel,
    ConsentEvent,
    ConsentState,
    DataCategory,
    Notice,
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
from subjects.identity import Reference
from subjects.models import Subject
from subjects.selectors import Resolution, reference_digests, resolve_with, subject_resolve_many

logger = logging.getLogger(__name__)

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
        one_per_person=frozenset(revision[2] or ()) if revision else frozenset(),
        merge_order=tuple(revision[1]) if revision else (),
        categories=dict(DataCategory.objects.values_list("key", "profile")),
        sources=sources,
        system_of_record=frozenset(system_of_record),
        purchase_categories=frozenset(DataCategory.objects.filter(purchase=True).values_list("key", flat=True)),
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
    """SubjectState per subject (absent ids are unknown) in ONE query whatever the count: every check, read
    and send pays for this, so the flags, the states, the objections and the existing-customer addresses
    come back together, each subject's rows aggregated into JSON by the database."""
    ids = list(set(subject_ids))
    if not ids:
        return {}
    wanted = list(purposes) if purposes is not None else None
    result: dict[uuid.UUID, SubjectState] = {}
    with connection.cursor() as cursor:
        sql, params = _state_query(ids, wanted)
        cursor.execute(sql, params)  # type: ignore[arg-type]
        for row in cursor:
            sid = row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0]))
            try:
                result[sid] = _state_of(row)
            except (KeyError, ValueError, TypeError) as exc:
                # A corrupt state row: no decision may rest on it (API.md: 503, allowed false, unavailable).
                logger.warning("policy state of subject %s cannot be read", sid, exc_info=True)
                raise UnavailableError("cannot decide now", allowed=False, reason="unavailable") from exc
    return result


def _state_of(row: Sequence[Any]) -> SubjectState:
    _sid, status, is_child, restricted, erasing, erased, states, objections, purchase_kinds = row
    # The bulk check builds 10,000 of these: the common empty cases share constants instead of new sets.
    objected = frozenset(_json_list(objections)) if objections else _NONE
    return SubjectState(
        erased=status == Subject.Status.ERASED or bool(erased),
        erasure_in_progress=bool(erasing),
        restricted=bool(restricted),
        is_child=bool(is_child),
        objects_to_direct_marketing="" in objected,
        objected_purposes=objected - _DIRECT_MARKETING if objected else _NONE,
        consents={(fact[0], fact[1]): _fact(fact) for fact in _json_list(states)} if states else {},
        existing_customer_channels=frozenset(
            _PURCHASE_ADDRESS_CHANNELS[k] for k in _json_list(purchase_kinds) if k in _PURCHASE_ADDRESS_CHANNELS
        )
        if purchase_kinds
        else _NONE,
    )


_NONE: frozenset[str] = frozenset()
_DIRECT_MARKETING = frozenset({""})


def policy_inputs(
    *, references: Sequence[Reference], purposes: list[str]
) -> tuple[list[Resolution], dict[uuid.UUID, SubjectState], frozenset[uuid.UUID]]:
    """Who each reference names, the state the policy needs, and the subjects whose state cannot be read (a
    corrupt row: their checks cannot decide, the others still can), for checks and sends. On PostgreSQL this is
    ONE statement for any number of references (the single check is the hottest path of the service); elsewhere
    the two-step path of resolution, then states."""
    if connection.vendor != "postgresql":
        resolutions = subject_resolve_many(references=references)
        found = {r.subject_id for r in resolutions if r.subject_id is not None}
        return resolutions, subject_states_for_policy(subject_ids=found, purposes=purposes), frozenset()
    digests = reference_digests(references)
    wanted = list({d for ds in digests for d in ds})
    given = [str(ref.subject_id) for ref in references if ref.subject_id is not None]
    params: list[object] = [wanted, given]
    state_sql, state_params = _state_query([], purposes, lateral=True, customer=_needs_customer(purposes))
    sql = (
        "WITH hit AS ("
        " SELECT i.blind_index AS digest, NULL::uuid AS given, COALESCE(s.merged_into_id, s.id) AS sid"
        "   FROM subjects_identifier i JOIN subjects_subject s ON s.id = i.subject_id"
        "  WHERE i.blind_index = ANY(%b::bytea[])"
        " UNION ALL"
        " SELECT NULL, s.id, COALESCE(s.merged_into_id, s.id) FROM subjects_subject s WHERE s.id = ANY(%s::uuid[])"
        f") SELECT h.digest, h.given, st.* FROM hit h CROSS JOIN LATERAL ({state_sql}) st"
    )
    owners: dict[bytes, set[uuid.UUID]] = {}
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    states: dict[uuid.UUID, SubjectState] = {}
    unreadable: set[uuid.UUID] = set()
    connection.ensure_connection()
    # A raw psycopg cursor with a server-side prepared statement: planning this statement costs more than
    # running it for one person, and Django's client-side binding would plan it on every check.
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        cursor.execute(sql, [*params, *state_params], prepare=True)
        for digest, given_id, *row in cursor:
            sid = row[0]
            if digest is not None:
                owners.setdefault(bytes(digest), set()).add(sid)
            else:
                survivors[given_id] = sid
            if sid not in states and sid not in unreadable:
                try:
                    states[sid] = _state_of(row)
                except (KeyError, ValueError, TypeError):
                    logger.warning("policy state of subject %s cannot be read", sid, exc_info=True)
                    unreadable.add(sid)
    return resolve_with(references, digests, owners, survivors), states, frozenset(unreadable)


# UWG §7(3): an address that came from a purchase lets a legitimate-interest purpose use the channel it reaches.
_PURCHASE_ADDRESS_CHANNELS = {"email": "email", "phone": "sms"}

# One statement, two dialects: PostgreSQL in production and tests, SQLite in the demo.
_STATE_SQL = """
SELECT s.id, s.status, s.is_child,
       s.restricted_at IS NOT NULL, s.erasure_started_at IS NOT NULL, s.erased_at IS NOT NULL,
       (SELECT {agg}({arr}(cs.purpose, cs.channel, cs.status, cs.notice_version, {epoch}, cs.confirmed,
                           cs.actor, cs.suppressed))
          FROM consent_consentstate cs WHERE cs.subject_id = s.id {state_filter}),
       (SELECT {agg}(o.purpose) FROM consent_objection o WHERE o.subject_id = s.id {objection_filter}),
       {customer}
  FROM subjects_subject s
 WHERE s.id {id_filter}
"""
_CUSTOMER_SQL = """(SELECT {agg}(DISTINCT i.kind) FROM subjects_identifier i
         WHERE i.subject_id = s.id AND i.purchase_at IS NOT NULL AND i.kind IN ('email', 'phone'))"""


def _needs_customer(purposes: list[str] | None) -> bool:
    """Only UWG §7(3) purposes read the existing-customer addresses: the others skip that subquery."""
    if purposes is None:
        return True
    known = catalogue_snapshot().purposes
    return any(known[p].rule.uwg_7_3 for p in purposes if p in known)


def _state_query(
    ids: list[uuid.UUID], purposes: list[str] | None, *, lateral: bool = False, customer: bool = True
) -> tuple[str, list[object]]:
    """The state statement for these subjects, or (lateral) for the subject `h.sid` of an enclosing query."""
    postgres = connection.vendor == "postgresql"
    params: list[object] = []
    if postgres:
        parts = {"agg": "json_agg", "arr": "json_build_array", "epoch": "extract(epoch FROM cs.granted_at)"}
    else:
        parts = {
            "agg": "json_group_array",
            "arr": "json_array",
            "epoch": "(julianday(cs.granted_at) - 2440587.5) * 86400.0",
        }

    def one_of(values: list[str] | list[uuid.UUID], *, uuid_values: bool = False) -> str:
        if postgres:
            params.append([str(v) for v in values] if uuid_values else values)
            return "= ANY(%s::uuid[])" if uuid_values else "= ANY(%s::text[])"
        params.extend(v.hex if isinstance(v, uuid.UUID) else v for v in values)
        return "IN (" + ",".join(["%s"] * len(values)) + ")" if values else "IN (NULL)"

    state_filter = objection_filter = ""
    if purposes is not None:
        state_filter = "AND cs.purpose " + one_of(purposes)
        objection_filter = "AND (o.purpose = '' OR o.purpose " + one_of(purposes) + ")"
    id_filter = "= h.sid" if lateral else one_of(ids, uuid_values=True)
    sql = _STATE_SQL.format(
        **parts,
        state_filter=state_filter,
        objection_filter=objection_filter,
        id_filter=id_filter,
        customer=_CUSTOMER_SQL.format(**parts) if customer else "NULL",
    )
    return sql, params


def _json_list(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):  # SQLite returns JSON as text; psycopg decodes json itself
        loaded: list[Any] = json.loads(value)
        return loaded
    return list(value)  # type: ignore[call-overload]


_STATUSES: dict[str, ConsentStatus] = {s.value: s for s in ConsentStatus}
_ACTORS: dict[str, PolicyActor] = {a.value: a for a in PolicyActor}


def _fact(row: list[Any]) -> ConsentFact:
    _purpose, _channel, status, version, granted_epoch, confirmed, actor, suppressed = row
    return ConsentFact(
        status=_STATUSES[status],  # an unknown status raises: the caller's check then fails closed
        notice_version=version or None,
        granted_at=datetime.fromtimestamp(float(granted_epoch), tz=UTC) if granted_epoch is not None else None,
        confirmed=bool(confirmed),
        actor=_ACTORS.get(actor, PolicyActor.AGENT),
        suppressed=bool(suppressed),
    )


def consent_states_list(*, subject_id: uuid.UUID) -> list[ConsentState]:
    return list(ConsentState.objects.filter(subject_id=subject_id).order_by("purpose", "channel"))


def consent_history_list(*, subject_id: uuid.UUID) -> list[ConsentEvent]:
    return list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("seq"))
