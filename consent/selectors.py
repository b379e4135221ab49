"""Reads: each subject's state as the policy sees it, in a fixed number of queries, and their consent history."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection

from config.db import prepared_rows
from consent.catalogue.snapshot import catalogue_snapshot
from consent.errors import undecidable
from consent.models import ConsentEvent, ConsentState
from consent.policy import Actor as PolicyActor
from consent.policy import ConsentFact, ConsentStatus, PurposeRule, SubjectState, consent_expiry_cutoff
from subjects.identity import Reference
from subjects.models import Subject
from subjects.selectors import Resolution, reference_digests, resolve_with, subject_resolve_many

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------
# Subject state for the policy
# ---------------------------------------------------------------------------------------------------------
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
    sql, params = _state_query(ids, wanted)
    if connection.vendor == "postgresql":
        # Prepared (config.db.prepared_rows): a profile read asks this for one person, where planning costs more than
        # running it.
        rows = prepared_rows(sql, params)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)  # type: ignore[arg-type]
            rows = cursor.fetchall()
    for row in rows:
        sid = row[0] if isinstance(row[0], uuid.UUID) else uuid.UUID(str(row[0]))
        try:
            result[sid] = _state_of(row)
        except (KeyError, ValueError, TypeError) as exc:
            # A corrupt state row: no decision may rest on it (API.md: 503, allowed false, unavailable).
            logger.warning("policy state of subject %s cannot be read", sid, exc_info=True)
            raise undecidable() from exc
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
    *, references: Sequence[Reference], rule: PurposeRule, channel: str, now: datetime
) -> tuple[list[Resolution], dict[uuid.UUID, SubjectState], frozenset[uuid.UUID]]:
    """Who each reference names, the state the policy needs to decide `rule` on `channel`, and the subjects whose
    state cannot be read (a corrupt row: their checks cannot decide, the others still can), for checks and sends.

    Each state is narrowed to this one purpose and channel, which is all such a decision reads, and subjects whose
    rows are alike share one SubjectState object: `decide_many` then decides each distinct state once (the policy
    is pure, so reusing its answer is exact). On PostgreSQL this is ONE statement, a state shape per row, for any
    number of references (the single check is the hottest path of the service); elsewhere resolution, then states.
    References that each name one identifier and no id (nearly all) go faster through `policy_inputs_by_digest`."""
    if connection.vendor != "postgresql":
        resolutions = subject_resolve_many(references=references)
        found = {r.subject_id for r in resolutions if r.subject_id is not None}
        return resolutions, subject_states_for_policy(subject_ids=found, purposes=[rule.key]), frozenset()
    digests = reference_digests(references)
    wanted = list({d for ds in digests for d in ds})
    given = [str(ref.subject_id) for ref in references if ref.subject_id is not None]
    owners: dict[bytes, set[uuid.UUID]] = {}
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    states: dict[uuid.UUID, SubjectState] = {}
    unreadable: set[uuid.UUID] = set()
    state_of = _ShapeStates(rule.key, channel)
    for ordinal, given_id, sid, shape, granted_us in _state_rows(wanted, given, rule, channel, now):
        if ordinal is not None:
            owners.setdefault(wanted[ordinal], set()).add(sid)
        else:
            survivors[given_id] = sid
        state = state_of(shape, granted_us, sid)
        if state is None:
            unreadable.add(sid)
        else:
            states[sid] = state
    return resolve_with(references, digests, owners, survivors), states, frozenset(unreadable)


def policy_inputs_by_digest(
    *, digests: Sequence[bytes], rule: PurposeRule, channel: str, now: datetime
) -> tuple[dict[bytes, tuple[uuid.UUID, SubjectState | None]], set[bytes]]:
    """`policy_inputs` for references that each name one identifier and no id, given as their blind indexes: the
    subject that holds each digest with its state (None: the state cannot be read), and the digests held by more
    than one subject (a shared identifier: ambiguous). A digest nobody holds is in neither. The same one statement
    and the same rules (subjects.selectors.resolve_with: one holder names the subject, several are ambiguous),
    without a Reference, a Resolution or a set per person. PostgreSQL only."""
    wanted = list(dict.fromkeys(digests))
    held: dict[bytes, tuple[uuid.UUID, SubjectState | None]] = {}
    shared: set[bytes] = set()
    state_of = _ShapeStates(rule.key, channel)
    for ordinal, _given, sid, shape, granted_us in _state_rows(wanted, [], rule, channel, now):
        digest = wanted[ordinal]
        first = held.get(digest)
        if first is None:
            held[digest] = (sid, state_of(shape, granted_us, sid))
        elif first[0] != sid:
            shared.add(digest)
    return held, shared


class _ShapeStates:
    """The SubjectState of each distinct shape, built once per shape and shared by every subject of that shape;
    None for a shape that cannot be read (logged with the first subject that has it)."""

    __slots__ = ("_channel", "_purpose", "_shapes")

    def __init__(self, purpose: str, channel: str) -> None:
        self._purpose, self._channel = purpose, channel
        self._shapes: dict[str, SubjectState | None] = {}

    def __call__(self, shape: str, granted_us: int | None, sid: uuid.UUID) -> SubjectState | None:
        state = self._shapes.get(shape, _UNSEEN)
        if state is _UNSEEN:
            state = self._shapes[shape] = _narrow_state_of(shape, granted_us, self._purpose, self._channel, sid)
        return state  # type: ignore[return-value]


_UNSEEN = object()


def _state_rows(
    wanted: list[bytes], given: list[str], rule: PurposeRule, channel: str, now: datetime
) -> list[tuple[Any, ...]]:
    """(ordinal of the digest in `wanted` or None, given id or None, subject, shape, grant time) per hit."""
    customer_kind = PURCHASE_KIND_OF_CHANNEL.get(channel) if rule.uwg_7_3 else None
    cutoff = consent_expiry_cutoff(rule, now)
    tail = (rule.key, customer_kind, cutoff, cutoff, rule.key, channel)
    # A server-side prepared statement (config.db.prepared_rows): planning this statement costs more than running
    # it for one person, and Django's client-side binding would plan it on every check.
    if len(wanted) == 1 and not given:
        return prepared_rows(_CHECK_ONE_SQL, (wanted[0], *tail))
    return prepared_rows(_CHECK_SQL, (len(wanted), b"".join(wanted), given, *tail))


# The blind indexes travel as one bytea of 32-byte digests cut apart by the server: an array parameter of 10,000
# values costs the client more to build than the whole statement costs the server to run. Each is looked up by the
# index on its own (the LATERAL ... OFFSET 0): for a call of 10,000 the planner would otherwise hash the whole
# identifier table, a million rows, to find them. A hit comes back as the digest's ordinal, not the digest (four bytes
# instead of 66 characters of hex each way). An identifier always belongs to a surviving subject (a merge moves
# them in its transaction), so it names its subject without a second look at the subjects table; should that ever
# not hold, the merged subject is no row here and the reference answers as unknown: a denial, never an allow.
_DIGEST_BYTES = 32
_HITS = f"""  SELECT g AS ordinal, NULL::uuid AS given, i.subject_id AS sid
    FROM generate_series(0, %s::int - 1) g
    CROSS JOIN LATERAL (
      SELECT i.subject_id FROM subjects_identifier i
       WHERE i.blind_index = substring(%b::bytea FROM g * {_DIGEST_BYTES} + 1 FOR {_DIGEST_BYTES}) OFFSET 0) i
  UNION ALL
  SELECT NULL, s.id, COALESCE(s.merged_into_id, s.id) FROM subjects_subject s WHERE s.id = ANY(%s::uuid[])"""
# The same for one blind index and no id (nearly every single check): a plain equality, so that PostgreSQL keeps one
# generic plan for the prepared statement. The many-digest form gets a custom plan on every call (its generic plan
# hashes the identifier table: 9.7 ms of PostgreSQL CPU per check instead of 0.4), and planning it costs more than
# running it for one person.
_HITS_ONE = """  SELECT 0 AS ordinal, NULL::uuid AS given, i.subject_id AS sid
    FROM subjects_identifier i WHERE i.blind_index = %b::bytea"""
_CHECK_TEMPLATE = """
WITH hit AS (
{hits}
)
SELECT h.ordinal, h.given, h.sid,
       concat_ws('|',
         (s.status = 'erased' OR s.erased_at IS NOT NULL)::int, (s.erasure_started_at IS NOT NULL)::int,
         (s.restricted_at IS NOT NULL)::int, s.is_child::int,
         EXISTS (SELECT 1 FROM consent_objection o WHERE o.subject_id = s.id AND o.purpose = '')::int,
         EXISTS (SELECT 1 FROM consent_objection o WHERE o.subject_id = s.id AND o.purpose = %s)::int,
         EXISTS (SELECT 1 FROM subjects_identifier c
                  WHERE c.subject_id = s.id AND c.purchase_at IS NOT NULL AND c.kind = %s)::int,
         COALESCE(cs.status, ''), COALESCE(cs.confirmed::int::text, ''), COALESCE(cs.actor, ''),
         COALESCE(cs.suppressed::int::text, ''), COALESCE((cs.granted_at <= %s::timestamptz)::int::text, ''),
         COALESCE(cs.notice_version, '')),
       CASE WHEN %s::timestamptz IS NOT NULL THEN (extract(epoch FROM cs.granted_at) * 1000000)::int8 END
  FROM hit h JOIN subjects_subject s ON s.id = h.sid AND s.merged_into_id IS NULL
  LEFT JOIN consent_consentstate cs ON cs.subject_id = s.id AND cs.purpose = %s AND cs.channel = %s
"""
_CHECK_SQL = _CHECK_TEMPLATE.format(hits=_HITS)
_CHECK_ONE_SQL = _CHECK_TEMPLATE.format(hits=_HITS_ONE)
# Each row's state as one text, its shape: subjects whose shapes are equal are alike for this decision, so the text
# is the key under which they share one SubjectState, taken apart once per shape rather than once per subject. A
# grant's time is in the shape only as its side of the policy's expiry cutoff (compared by PostgreSQL, exactly), or
# every person with an expiring grant would be a shape of their own; the time itself comes beside the shape for the
# one state built per shape. The notice version comes last: it is the only free text.
SHAPE_PARTS = 13
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _narrow_state_of(
    shape: str, granted_us: int | None, purpose: str, channel: str, sid: uuid.UUID
) -> SubjectState | None:
    try:
        return narrow_state(shape, granted_us, purpose, channel)
    except (KeyError, ValueError, TypeError):
        # A corrupt state row: no decision may rest on it (API.md: 503, allowed false, unavailable).
        logger.warning("policy state of subject %s cannot be read", sid, exc_info=True)
        return None


def narrow_state(shape: str, granted_us: int | None, purpose: str, channel: str) -> SubjectState:
    """The state a shape stands for (see _CHECK_SQL; send jobs build the same text), narrowed to one purpose and
    channel. A shape that cannot be read raises KeyError or ValueError: its subjects' decisions fail closed."""
    parts = shape.split("|", SHAPE_PARTS - 1)
    if len(parts) != SHAPE_PARTS:
        raise ValueError(f"a state shape of {len(parts)} parts")
    erased, erasing, restricted, child, objects_dm, objects_purpose, customer = (p == "1" for p in parts[:7])
    status, confirmed, actor, suppressed, _side, version = parts[7:]
    consents: dict[tuple[str, str], ConsentFact] = {}
    if status:
        consents[(purpose, channel)] = ConsentFact(
            status=_STATUSES[status],  # an unknown status raises
            notice_version=version or None,
            granted_at=None if granted_us is None else _EPOCH + timedelta(microseconds=granted_us),
            confirmed=confirmed == "1",
            actor=_ACTORS.get(actor, PolicyActor.AGENT),
            suppressed=suppressed == "1",
        )
    return SubjectState(
        erased=erased,
        erasure_in_progress=erasing,
        restricted=restricted,
        is_child=child,
        objects_to_direct_marketing=objects_dm,
        objected_purposes=frozenset({purpose}) if objects_purpose else _NONE,
        consents=consents,
        existing_customer_channels=frozenset({channel}) if customer else _NONE,
    )


# UWG §7(3): an address that came from a purchase lets a legitimate-interest purpose use the channel it reaches.
_PURCHASE_ADDRESS_CHANNELS = {"email": "email", "phone": "sms"}
PURCHASE_KIND_OF_CHANNEL = {channel: kind for kind, channel in _PURCHASE_ADDRESS_CHANNELS.items()}

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


def subject_state_lateral(*, purposes: list[str]) -> tuple[str, list[object]]:
    """The policy-state statement of subject_states_for_policy for the subject `h.sid` of an enclosing query (for a
    LATERAL join), with its parameters; `subject_state_of_row` reads the nine columns it selects."""
    return _state_query([], purposes, lateral=True, customer=_needs_customer(purposes))


def subject_state_of_row(row: Sequence[Any]) -> SubjectState:
    """The SubjectState of a row of `subject_state_lateral`; KeyError, ValueError or TypeError for a corrupt one."""
    return _state_of(row)


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
