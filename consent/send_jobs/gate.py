"""One chunk of a send job's lines, gated set-based: every reference parsed and blind-indexed, the digests and ids
COPied into a temporary table, ONE statement joining them to identifiers, subjects (a merged subject acts as its
survivor) and the state the policy reads, the policy asked once per distinct state shape (it is pure, so this is
exact), and the chunk's result lines and send-log rows rendered as bytes.

The rules are those of the send gate (consent.gates.sends), so that a line's answer equals what `POST /sends` would
answer for that reference at the same moment: Action.SEND, resolution by `subjects.selectors.resolve_with`, an
allowed recipient whose named address of the channel's kind is not the subject's is blocked `unknown_subject`, the
log row holds the index, the subject and the reason. A malformed line is blocked `invalid_reference` with an
`error` that names the problem (never the value)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import connection

from config.errors import DomainError
from consent.catalogue.snapshot import PurposeInfo
from consent.gates.sends import DESTINATION_KINDS
from consent.gates.unsubscribe import ONE_CLICK_BODY, unsubscribe_tokens, unsubscribe_url
from consent.policy import Action, ConsentFact, ConsentStatus, Decision, Reason, SubjectState, decide_many
from consent.policy import Actor as PolicyActor
from subjects.identity import Reference, parse_reference
from subjects.keys import blind_index
from subjects.selectors import Resolution, resolve_with

INVALID_REFERENCE = "invalid_reference"  # the reason of a malformed line (not a policy reason: nobody was decided)

_STATUSES: dict[str, ConsentStatus] = {s.value: s for s in ConsentStatus}
_ACTORS: dict[str, PolicyActor] = {a.value: a for a in PolicyActor}
# UWG §7(3): an address that came from a purchase lets a legitimate-interest purpose use the channel it reaches.
_PURCHASE_ADDRESS_CHANNELS = {"email": "email", "phone": "sms"}
_NONE: frozenset[str] = frozenset()
_UNAVAILABLE = Decision(False, Reason.UNAVAILABLE, None)

# Flat columns, one row per hit (a digest or a given id that names a subject), the subject's state beside it: only
# the one (purpose, channel) of the send can matter to the policy, so the consent is a LEFT JOIN, not an aggregate.
_RESOLVE_SQL = """
WITH hit AS MATERIALIZED (
    SELECT r.digest, NULL::uuid AS given, COALESCE(s.merged_into_id, s.id) AS sid
      FROM send_job_ref r
      JOIN subjects_identifier i ON i.blind_index = r.digest
      JOIN subjects_subject s ON s.id = i.subject_id
     WHERE r.digest IS NOT NULL
    UNION ALL
    SELECT NULL, s.id, COALESCE(s.merged_into_id, s.id)
      FROM send_job_ref r JOIN subjects_subject s ON s.id = r.given
     WHERE r.given IS NOT NULL
), state AS (
    SELECT s.id, s.status, s.is_child, s.restricted_at IS NOT NULL, s.erasure_started_at IS NOT NULL,
           s.erased_at IS NOT NULL,
           cs.status, cs.notice_version, extract(epoch FROM cs.granted_at), cs.confirmed, cs.actor, cs.suppressed,
           o.purposes,
           {customer}
      FROM (SELECT DISTINCT sid FROM hit) w
      JOIN subjects_subject s ON s.id = w.sid
      LEFT JOIN consent_consentstate cs
             ON cs.subject_id = s.id AND cs.purpose = %(purpose)s AND cs.channel = %(channel)s
      -- Objections are few: aggregated once and hashed, not looked up per subject.
      LEFT JOIN (SELECT subject_id, array_agg(purpose ORDER BY purpose) AS purposes FROM consent_objection
                  WHERE purpose = '' OR purpose = %(purpose)s GROUP BY subject_id) o ON o.subject_id = s.id
)
SELECT h.digest, h.given, st.* FROM hit h JOIN state st ON st.id = h.sid
"""
_CUSTOMER_SQL = """ARRAY(SELECT DISTINCT i.kind FROM subjects_identifier i
          WHERE i.subject_id = s.id AND i.purchase_at IS NOT NULL AND i.kind IN ('email', 'phone') ORDER BY i.kind)"""


@dataclass(frozen=True, slots=True)
class ChunkOutcome:
    result: bytes  # the chunk's NDJSON result lines, in input order
    log: bytes  # the chunk's consent_sendrecipient rows, COPY text format
    allowed: int
    blocked: int


@dataclass(slots=True)
class _Line:
    raw: bytes | None  # the line's JSON text when it is JSON, echoed as the recipient
    reference: Reference | None  # None: malformed
    error: str = ""


def _parse(line: bytes, too_long: bool) -> _Line:
    """orjson alone, not config.input's guarded walk: a line is one flat reference whose values parse_reference
    requires to be strings (no depth, no numbers to guard), orjson refuses lone surrogates and raw control
    characters itself, and a NUL is refused here as the guard refuses it for /sends."""
    if too_long:
        return _Line(None, None, "line: longer than 64 KiB")
    raw = line.strip()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _Line(None, None, "line: not a JSON document")
    if b"\\u0000" in raw:
        return _Line(raw, None, "recipient: contains a NUL character")
    try:
        return _Line(raw, parse_reference(value, field="recipient"))
    except DomainError as exc:
        return _Line(raw, None, f"{exc.field or 'recipient'}: {exc.detail}")


def _copy_refs(digests: set[bytes], given: set[uuid.UUID]) -> None:
    rows = [b"\\\\x" + d.hex().encode() + b"\t\\N\n" for d in digests]
    rows += [b"\\N\t" + str(g).encode() + b"\n" for g in given]
    with connection.connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS pg_temp.send_job_ref")
        # ON COMMIT DROP: gone with the chunk's transaction (the DROP above covers a caller's enclosing one)
        cursor.execute("CREATE TEMP TABLE send_job_ref (digest bytea, given uuid) ON COMMIT DROP")
        with cursor.copy("COPY send_job_ref (digest, given) FROM STDIN") as copy:
            copy.write(b"".join(rows))
        cursor.execute("ANALYZE send_job_ref")


def _state(row: Sequence[Any], info: PurposeInfo, channel: str) -> SubjectState:
    """The SubjectState consent.selectors would build for this subject, for the send's one purpose and channel."""
    (status, is_child, restricted, erasing, erased, cs_status, version, epoch, confirmed, actor, suppressed) = row[:11]
    objections, kinds = row[11], row[12]
    consents: dict[tuple[str, str], ConsentFact] = {}
    if cs_status is not None:
        consents[(info.rule.key, channel)] = ConsentFact(
            status=_STATUSES[cs_status],  # an unknown status raises: this subject's decision fails closed
            notice_version=version or None,
            granted_at=datetime.fromtimestamp(float(epoch), tz=UTC) if epoch is not None else None,
            confirmed=bool(confirmed),
            actor=_ACTORS.get(actor, PolicyActor.AGENT),
            suppressed=bool(suppressed),
        )
    objected = frozenset(objections) if objections else _NONE
    return SubjectState(
        erased=status == "erased" or bool(erased),
        erasure_in_progress=bool(erasing),
        restricted=bool(restricted),
        is_child=bool(is_child),
        objects_to_direct_marketing="" in objected,
        objected_purposes=objected - {""} if objected else _NONE,
        consents=consents,
        existing_customer_channels=frozenset(
            _PURCHASE_ADDRESS_CHANNELS[k] for k in kinds if k in _PURCHASE_ADDRESS_CHANNELS
        )
        if kinds
        else _NONE,
    )


def _decisions(
    lines: list[_Line], info: PurposeInfo, channel: str, now: datetime
) -> tuple[list[Resolution], list[Decision], dict[bytes, set[uuid.UUID]]]:
    """Who each parsed line names and the policy's decision for them (before the destination check)."""
    index = blind_index()
    references = [line.reference for line in lines if line.reference is not None]
    digests = [[index.lookup(kind, value) for kind, value in ref.identifiers] for ref in references]
    given = {ref.subject_id for ref in references if ref.subject_id is not None}
    owners: dict[bytes, set[uuid.UUID]] = {}
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    shape_of: dict[uuid.UUID, tuple[Any, ...]] = {}
    if references:
        _copy_refs({d for ds in digests for d in ds}, given)
        customer = _CUSTOMER_SQL if info.rule.uwg_7_3 else "NULL"
        with connection.connection.cursor() as cursor:
            cursor.execute(_RESOLVE_SQL.format(customer=customer), {"purpose": info.rule.key, "channel": channel})
            for digest, given_id, sid, *state in cursor:
                if digest is not None:
                    owners.setdefault(bytes(digest), set()).add(sid)
                else:
                    survivors[given_id] = sid
                if sid not in shape_of:
                    objections, kinds = state[11], state[12]  # arrays: hashable as tuples
                    shape_of[sid] = (
                        *state[:11],
                        tuple(objections) if objections else None,
                        tuple(kinds) if kinds else None,
                    )
    # The policy is pure: one decision per distinct state shape, whatever the number of subjects sharing it.
    shapes: dict[tuple[Any, ...], Decision] = {}
    new: list[tuple[Any, ...]] = []
    states: list[SubjectState | None] = [None]  # the unknown subject's decision first
    for shape in set(shape_of.values()):
        try:
            states.append(_state(shape, info, channel))
            new.append(shape)
        except (KeyError, ValueError, TypeError):
            shapes[shape] = _UNAVAILABLE  # a corrupt state row: no decision may rest on it
    decided = decide_many(states, info.rule, channel, Action.SEND, now)
    unknown = decided[0]
    shapes.update(zip(new, decided[1:], strict=True))
    ambiguous = Decision.deny(Reason.AMBIGUOUS_SUBJECT, info.rule.legal_basis)
    resolutions = resolve_with(references, digests, owners, survivors)
    decisions = [
        ambiguous if r.ambiguous else unknown if r.subject_id is None else shapes[shape_of[r.subject_id]]
        for r in resolutions
    ]
    # The destination check of the send gate (consent.gates.sends): the address the client will deliver to must
    # be the subject's own, or the recipient is blocked as unknown at that address.
    kind = DESTINATION_KINDS.get(channel)
    if kind is not None:
        for i, (ref, resolution, decision) in enumerate(zip(references, resolutions, decisions, strict=True)):
            if not decision.allowed:
                continue
            for (ref_kind, _value), digest in zip(ref.identifiers, digests[i], strict=True):
                if ref_kind == kind and resolution.subject_id not in owners.get(digest, _NO_OWNERS):
                    decisions[i] = Decision(False, Reason.UNKNOWN_SUBJECT, decision.legal_basis)
    return resolutions, decisions, owners


_NO_OWNERS: set[uuid.UUID] = set()


def chunk_gate(
    *,
    lines: Sequence[tuple[bytes, bool]],
    first_index: int,
    info: PurposeInfo,
    channel: str,
    send_id: uuid.UUID,
    now: datetime,
) -> ChunkOutcome:
    """Gate `lines` ((line, too long) pairs; the first is input line `first_index`) in a fixed number of statements.
    Reads only: the caller writes the outcome. Runs inside the caller's transaction (the temporary table)."""
    parsed = [_parse(line, too_long) for line, too_long in lines]
    good = [p for p in parsed if p.reference is not None]
    resolutions, decisions, _owners = _decisions(good, info, channel, now)
    allowed_ids = [
        r.subject_id for r, d in zip(resolutions, decisions, strict=True) if d.allowed and r.subject_id is not None
    ]
    urls = iter([unsubscribe_url(t) for t in unsubscribe_tokens(subject_ids=allowed_ids, send_id=send_id)])
    send = str(send_id).encode()
    # Appended to one buffer each: a list of 50,000 small orjson outputs would hold some 4 KiB apiece (orjson's
    # output buffer), 200 MB for a chunk.
    result, log = bytearray(), bytearray()
    allowed_count = 0
    outcome = iter(zip(resolutions, decisions, strict=True))
    dumps, fragment, newline = orjson.dumps, orjson.Fragment, orjson.OPT_APPEND_NEWLINE
    invalid = INVALID_REFERENCE.encode()
    for offset, line in enumerate(parsed):
        index = first_index + offset
        recipient = fragment(line.raw) if line.raw is not None else None
        if line.reference is None:
            result += dumps(
                {
                    "index": index,
                    "allowed": False,
                    "recipient": recipient,
                    "subject": None,
                    "reason": INVALID_REFERENCE,
                    "error": line.error,
                },
                option=newline,
            )
            log += b"%s\t%d\t\\N\tf\t%s\n" % (send, index, invalid)
            continue
        resolution, decision = next(outcome)
        subject = resolution.subject_id
        subject_text = str(subject).encode() if subject is not None else b"\\N"
        reason = decision.reason.value
        if decision.allowed and subject is not None:
            allowed_count += 1
            url = next(urls)
            result += dumps(
                {
                    "index": index,
                    "allowed": True,
                    "recipient": recipient,
                    "subject": subject,
                    "unsubscribe_url": url,
                    "list_unsubscribe": f"<{url}>",
                    "list_unsubscribe_post": ONE_CLICK_BODY,  # RFC 8058 header value
                },
                option=newline,
            )
            log += b"%s\t%d\t%s\tt\t%s\n" % (send, index, subject_text, reason.encode())
        else:
            result += dumps(
                {"index": index, "allowed": False, "recipient": recipient, "subject": subject, "reason": reason},
                option=newline,
            )
            log += b"%s\t%d\t%s\tf\t%s\n" % (send, index, subject_text, reason.encode())
    return ChunkOutcome(
        result=bytes(result),
        log=bytes(log),
        allowed=allowed_count,
        blocked=len(parsed) - allowed_count,
    )
