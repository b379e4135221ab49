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
from datetime import datetime

import orjson
from django.db import connection, transaction
from django.utils import timezone

from config.errors import DomainError
from config.metrics import decisions_count
from consent.catalogue.snapshot import PurposeInfo
from consent.gates.sends import DESTINATION_KINDS
from consent.gates.unsubscribe import ONE_CLICK_BODY, unsubscribe_tokens, unsubscribe_url
from consent.policy import (
    Action,
    Decision,
    Reason,
    SubjectState,
    consent_expiry_cutoff,
    decide_many,
)
from consent.selectors import PURCHASE_KIND_OF_CHANNEL, narrow_state
from subjects.identity import Reference, parse_reference
from subjects.keys import blind_index
from subjects.selectors import Resolution, resolve_with

INVALID_REFERENCE = "invalid_reference"  # the reason of a malformed line (not a policy reason: nobody was decided)

_UNAVAILABLE = Decision(False, Reason.UNAVAILABLE, None)

# Flat columns, one row per hit (a digest or a given id that names a subject), the subject's state beside it,
# narrowed to the one purpose and channel of the send: all such a decision reads (as consent.selectors does it).
_RESOLVE_SQL = """
WITH hit AS MATERIALIZED (
    -- Each digest and id looked up by its index on its own (LATERAL ... OFFSET 0): for a chunk of 20,000 the
    -- planner would otherwise hash the whole identifier table, millions of rows, once per chunk.
    -- An identifier belongs to a surviving subject (as consent.selectors relies on: a merge moves them).
    SELECT r.digest, NULL::uuid AS given, i.subject_id AS sid
      FROM send_job_ref r
     CROSS JOIN LATERAL (SELECT i.subject_id FROM subjects_identifier i WHERE i.blind_index = r.digest OFFSET 0) i
     WHERE r.digest IS NOT NULL
    UNION ALL
    SELECT NULL, r.given, s.sid
      FROM send_job_ref r
     CROSS JOIN LATERAL (SELECT COALESCE(s.merged_into_id, s.id) AS sid FROM subjects_subject s
                          WHERE s.id = r.given OFFSET 0) s
     WHERE r.given IS NOT NULL
), state AS (
    -- Each subject's state as one text, its shape (as consent.selectors builds it): subjects whose shapes are equal
    -- are alike for this decision. A grant's time is in it only as its side of the policy's expiry cutoff; the time
    -- itself comes beside it, for the one state built per shape. The notice version, free text, comes last.
    SELECT s.id,
           concat_ws('|',
             (s.status = 'erased' OR s.erased_at IS NOT NULL)::int, (s.erasure_started_at IS NOT NULL)::int,
             (s.restricted_at IS NOT NULL)::int, s.is_child::int,
             COALESCE(o.direct_marketing, false)::int, COALESCE(o.this_purpose, false)::int, ({customer})::int,
             COALESCE(cs.status, ''), COALESCE(cs.confirmed::int::text, ''), COALESCE(cs.actor, ''),
             COALESCE(cs.suppressed::int::text, ''),
             COALESCE((cs.granted_at <= %(cutoff)s::timestamptz)::int::text, ''),
             COALESCE(cs.notice_version, '')) AS shape,
           CASE WHEN %(cutoff)s::timestamptz IS NOT NULL
                THEN (extract(epoch FROM cs.granted_at) * 1000000)::int8 END AS granted_us
      FROM (SELECT DISTINCT sid FROM hit) w
      JOIN subjects_subject s ON s.id = w.sid AND s.merged_into_id IS NULL
      LEFT JOIN consent_consentstate cs
             ON cs.subject_id = s.id AND cs.purpose = %(purpose)s AND cs.channel = %(channel)s
      -- Objections are few: aggregated once and hashed, not looked up per subject.
      LEFT JOIN (SELECT subject_id, bool_or(purpose = '') AS direct_marketing,
                        bool_or(purpose = %(purpose)s) AS this_purpose
                   FROM consent_objection WHERE purpose = '' OR purpose = %(purpose)s GROUP BY subject_id) o
             ON o.subject_id = s.id
)
SELECT h.digest, h.given, st.id, st.shape, st.granted_us FROM hit h JOIN state st ON st.id = h.sid
"""
_CUSTOMER_SQL = """EXISTS (SELECT 1 FROM subjects_identifier c
                    WHERE c.subject_id = s.id AND c.purchase_at IS NOT NULL AND c.kind = %(customer_kind)s)"""


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


@dataclass(slots=True)
class Resolved:
    """A chunk's lines parsed, and who their references name with each subject's flat state row: what the database
    says, read at once at `now`, the moment of the decision (chunk_render decides at it)."""

    parsed: list[_Line]
    references: list[Reference]
    digests: list[list[bytes]]
    owners: dict[bytes, set[uuid.UUID]]
    survivors: dict[uuid.UUID, uuid.UUID]
    rows: dict[uuid.UUID, tuple[str, int | None]]  # subject -> (shape, grant time in microseconds)
    now: datetime  # the moment of the decision: the expiry cutoff was compared at it


def chunk_resolve(
    *, lines: Sequence[tuple[bytes, bool]], info: PurposeInfo, channel: str, now: datetime | None = None
) -> Resolved:
    """Parse `lines` ((line, too long) pairs), blind-index their identifiers, and resolve them with their subjects'
    states in ONE statement over a temporary table (its own short transaction)."""
    parsed = [_parse(line, too_long) for line, too_long in lines]
    references = [line.reference for line in parsed if line.reference is not None]
    lookup = blind_index().lookup
    digests = [[lookup(kind, value) for kind, value in ref.identifiers] for ref in references]
    owners: dict[bytes, set[uuid.UUID]] = {}
    survivors: dict[uuid.UUID, uuid.UUID] = {}
    rows: dict[uuid.UUID, tuple[str, int | None]] = {}
    now = now or timezone.now()
    if references:
        customer_kind = PURCHASE_KIND_OF_CHANNEL.get(channel) if info.rule.uwg_7_3 else None
        sql = _RESOLVE_SQL.format(customer=_CUSTOMER_SQL if customer_kind else "false")
        cutoff = consent_expiry_cutoff(info.rule, now)
        params = {"purpose": info.rule.key, "channel": channel, "customer_kind": customer_kind, "cutoff": cutoff}
        with transaction.atomic():  # the temporary table lives for this transaction
            _copy_refs({d for ds in digests for d in ds}, {r.subject_id for r in references if r.subject_id})
            with connection.connection.cursor() as cursor:
                cursor.execute(sql, params)
                fetched = cursor.fetchall()
        for digest, given_id, sid, shape, granted_us in fetched:
            if digest is not None:
                owners.setdefault(digest, set()).add(sid)
            else:
                survivors[given_id] = sid
            rows[sid] = (shape, granted_us)
    return Resolved(parsed, references, digests, owners, survivors, rows, now)


def _decisions(resolved: Resolved, info: PurposeInfo, channel: str) -> tuple[list[Resolution], list[Decision]]:
    """Who each reference names and the policy's decision, destination check included (consent.gates.sends)."""
    rule = info.rule
    decision_of: dict[uuid.UUID, Decision] = {}
    shapes: dict[str, list[uuid.UUID]] = {}  # people whose rows are alike share one state, decided once
    for sid, (shape, _granted) in resolved.rows.items():
        shapes.setdefault(shape, []).append(sid)
    states: list[SubjectState | None] = [None]  # the unknown subject's decision first
    decidable: list[list[uuid.UUID]] = []
    for sids in shapes.values():
        try:
            states.append(narrow_state(*resolved.rows[sids[0]], rule.key, channel))
            decidable.append(sids)
        except (KeyError, ValueError, TypeError):
            decision_of.update(dict.fromkeys(sids, _UNAVAILABLE))  # a corrupt state row: no decision rests on it
    decided = decide_many(states, rule, channel, Action.SEND, resolved.now)
    for sids, decision in zip(decidable, decided[1:], strict=True):
        decision_of.update(dict.fromkeys(sids, decision))
    unknown, ambiguous = decided[0], Decision.deny(Reason.AMBIGUOUS_SUBJECT, rule.legal_basis)
    resolutions = resolve_with(resolved.references, resolved.digests, resolved.owners, resolved.survivors)
    decisions = [
        ambiguous if r.ambiguous else unknown if r.subject_id is None else decision_of[r.subject_id]
        for r in resolutions
    ]
    # The address the client will deliver to must be the subject's own, or the recipient is blocked as unknown at
    # that address. A reference that is nothing but that address resolved through it: already proven.
    kind = DESTINATION_KINDS.get(channel)
    if kind is not None:
        owners = resolved.owners
        for i, (ref, resolution) in enumerate(zip(resolved.references, resolutions, strict=True)):
            decision = decisions[i]
            if not decision.allowed or (ref.subject_id is None and len(ref.identifiers) == 1):
                continue
            for (ref_kind, _value), digest in zip(ref.identifiers, resolved.digests[i], strict=True):
                if ref_kind == kind and resolution.subject_id not in owners.get(digest, _NO_OWNERS):
                    decisions[i] = Decision(False, Reason.UNKNOWN_SUBJECT, decision.legal_basis)
    # Counted in the worker's process (config.metrics: a shared PROMETHEUS_MULTIPROC_DIR shows it in the scrape); a
    # chunk a dead worker's successor decides again is counted again.
    decisions_count(purpose=rule.key, channel=channel, action=Action.SEND.value, reasons=[d.reason for d in decisions])
    return resolutions, decisions


_NO_OWNERS: set[uuid.UUID] = set()


def chunk_render(
    *, resolved: Resolved, first_index: int, info: PurposeInfo, channel: str, send_id: uuid.UUID
) -> ChunkOutcome:
    """Decide a resolved chunk (at the moment its states were read) and render its result lines and log rows (the
    first is input line `first_index`). No database: the caller writes the outcome."""
    parsed = resolved.parsed
    resolutions, decisions = _decisions(resolved, info, channel)
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


def chunk_gate(
    *,
    lines: Sequence[tuple[bytes, bool]],
    first_index: int,
    info: PurposeInfo,
    channel: str,
    send_id: uuid.UUID,
    now: datetime,
) -> ChunkOutcome:
    """Resolve and render one chunk at once (the worker does the two on two threads, see services)."""
    resolved = chunk_resolve(lines=lines, info=info, channel=channel, now=now)
    return chunk_render(resolved=resolved, first_index=first_index, info=info, channel=channel, send_id=send_id)
