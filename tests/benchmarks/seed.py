"""Seeding the template database fast: rows made in Python with the product's own crypto, loaded with COPY.

Subject i has the e-mail `bench{i}@example.org`. Its consent (purpose `newsletter`, from tests/conftest.py's
catalogue) follows i, so a check's expected answer is known without a lookup:
- i % 2 == 0: e-mail granted and confirmed (one `confirm` event carrying the notice version: a client whose own
  form ran the double opt-in); i % 4 == 0 also an SMS grant (a second event);
- i % 10 == 5: e-mail confirmed, then withdrawn (two events);
- any other i: no consent rows (the check answers no_consent).
Each subject's events form a valid HMAC chain under the template's ledger key, with a matching chain head,
so `verify_ledger` holds on the seeded data too.

Workers (one per core) each make a chunk of rows and COPY it in their own transaction."""

from __future__ import annotations

import io
import multiprocessing
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from subjects.columns import IDENTIFIER_VALUE

CHUNK = 20_000
PURPOSE = "newsletter"
NOTICE = "2026-01"

SUBJECT_COLUMNS = (
    "id",
    "created_at",
    "status",
    "merged_into_id",
    "key_kid",
    "wrapped_key",
    "is_child",
    "restricted_at",
    "erasure_started_at",
    "erased_at",
)
IDENTIFIER_COLUMNS = ("subject_id", "kind", "blind_index", "value_enc", "created_at")
STATE_COLUMNS = (
    "subject_id",
    "purpose",
    "channel",
    "status",
    "notice_version",
    "since",
    "granted_at",
    "confirmed",
    "actor",
    "suppressed",
    "seq",
    "event_id",
)
EVENT_COLUMNS = (
    "id",
    "subject_id",
    "seq",
    "purpose",
    "channel",
    "action",
    "notice_version",
    "source",
    "actor",
    "client_id",
    "evidence_enc",
    "related_subject",
    "occurred_at",
    "recorded_at",
    "prev_hash",
    "hash",
    "suppressed",
)
HEAD_COLUMNS = ("subject_id", "last_seq", "last_hash")


def email(i: int) -> str:
    return f"bench{i}@example.org"


def expected_reason(i: int) -> str:
    if i % 2 == 0:
        return "granted"
    if i % 10 == 5:
        return "withdrawn"
    return "no_consent"


def _init_worker(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def _bytea(value: bytes) -> str:
    return "\\\\x" + value.hex()


def _ts(moment: datetime) -> str:
    return moment.isoformat()


def _make_chunk(start: int, end: int) -> dict[str, str]:
    from consent.ledger.chain import GENESIS, canonical_fields, event_hash
    from consent.models import ConsentEvent
    from subjects import crypto
    from subjects.keys import blind_index, keyring

    ring = keyring()
    index = blind_index()
    rng = random.Random(start)
    now = datetime.now(UTC).replace(microsecond=0)
    subjects, identifiers, states, events, heads = (io.StringIO() for _ in range(5))
    event_ids: dict[tuple[uuid.UUID, int], uuid.UUID] = {}

    def event(sid: uuid.UUID, seq: int, channel: str, action: str, at: datetime, prev: str) -> str:
        e = ConsentEvent(
            id=uuid.uuid4(),
            subject_id=sid,
            seq=seq,
            purpose=PURPOSE,
            channel=channel,
            action=action,
            notice_version=NOTICE,
            source="import",
            actor="subject",
            client_id=None,
            related_subject=None,
            occurred_at=at,
            recorded_at=at,
            prev_hash=prev,
        )
        e.hash = event_hash(prev, canonical_fields(e, {}))
        event_ids[(sid, seq)] = e.id  # each state names the event it was projected from (verify_ledger)
        events.write(
            f"{e.id}\t{sid}\t{seq}\t{PURPOSE}\t{channel}\t{action}\t{NOTICE}\timport\tsubject\t\\N\t\\N\t\\N\t"
            f"{_ts(at)}\t{_ts(at)}\t{prev}\t{e.hash}\tf\n"
        )
        return e.hash

    def state(
        sid: uuid.UUID, channel: str, status: str, since: datetime, granted: datetime | None, confirmed: bool, seq: int
    ) -> None:
        states.write(
            f"{sid}\t{PURPOSE}\t{channel}\t{status}\t{NOTICE}\t{_ts(since)}\t"
            f"{_ts(granted) if granted else chr(92) + 'N'}\t{'t' if confirmed else 'f'}\tsubject\tf\t{seq}\t"
            f"{event_ids[(sid, seq)]}\n"
        )

    for i in range(start, end):
        sid = uuid.uuid4()
        created = now - timedelta(days=400, seconds=rng.randrange(86_400 * 30))
        key = crypto.new_data_key()
        kid, wrapped = ring.wrap(key, sid)
        subjects.write(f"{sid}\t{_ts(created)}\tactive\t\\N\t{kid}\t{_bytea(wrapped)}\tf\t\\N\t\\N\t\\N\n")
        value = email(i)
        sealed = crypto.seal(key, value.encode(), crypto.field_aad(sid, IDENTIFIER_VALUE))
        identifiers.write(f"{sid}\temail\t{_bytea(index.lookup('email', value))}\t{_bytea(sealed)}\t{_ts(created)}\n")
        if i % 2 == 0 or i % 10 == 5:
            at = now - timedelta(days=1 + rng.randrange(300), seconds=rng.randrange(86_400))
            last = event(sid, 1, "email", "confirm", at, GENESIS)
            seq = 1
            if i % 2 == 0:
                state(sid, "email", "granted", at, at, True, 1)
                if i % 4 == 0:
                    at2 = at + timedelta(minutes=5)
                    last = event(sid, 2, "sms", "grant", at2, last)
                    state(sid, "sms", "granted", at2, at2, False, 2)
                    seq = 2
            else:
                at2 = at + timedelta(days=1)
                last = event(sid, 2, "email", "withdraw", at2, last)
                state(sid, "email", "withdrawn", at2, None, False, 2)
                seq = 2
            heads.write(f"{sid}\t{seq}\t{last}\n")
    return {
        "subjects": subjects.getvalue(),
        "identifiers": identifiers.getvalue(),
        "states": states.getvalue(),
        "events": events.getvalue(),
        "heads": heads.getvalue(),
    }


def _copy(cursor: Any, table: str, columns: tuple[str, ...], data: str) -> None:
    if not data:
        return
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        step = 1 << 20
        for offset in range(0, len(data), step):
            copy.write(data[offset : offset + step])


def _seed_chunk(bounds: tuple[int, int]) -> tuple[int, float, float]:
    import psycopg

    start, end = bounds
    t0 = time.perf_counter()
    chunk = _make_chunk(start, end)
    t1 = time.perf_counter()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        # The subject rows first: the others reference them (checked, since triggers stay on).
        _copy(cursor, "subjects_subject", SUBJECT_COLUMNS, chunk["subjects"])
        _copy(cursor, "subjects_identifier", IDENTIFIER_COLUMNS, chunk["identifiers"])
        _copy(cursor, "consent_consentevent", EVENT_COLUMNS, chunk["events"])
        _copy(cursor, "consent_ledgerhead", HEAD_COLUMNS, chunk["heads"])
        _copy(cursor, "consent_consentstate", STATE_COLUMNS, chunk["states"])
    return end - start, t1 - t0, time.perf_counter() - t1


def seed(env: dict[str, str], subjects: int, *, processes: int = 2) -> dict[str, float]:
    """Seed `subjects` subjects into the (migrated, catalogued) database env['DATABASE_URL'] names."""
    started = time.perf_counter()
    bounds = [(start, min(start + CHUNK, subjects)) for start in range(0, subjects, CHUNK)]
    done = 0
    make_seconds = copy_seconds = 0.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_init_worker, initargs=(env,)) as pool:
        for count, made, copied in pool.imap_unordered(_seed_chunk, bounds):
            done += count
            make_seconds += made
            copy_seconds += copied
            if done % 200_000 < CHUNK or done == subjects:
                elapsed = time.perf_counter() - started
                print(f"  seeded {done:,}/{subjects:,} subjects in {elapsed:.0f} s", flush=True)
    loaded = time.perf_counter() - started
    import psycopg

    with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
        for table in (
            "subjects_subject",
            "subjects_identifier",
            "consent_consentevent",
            "consent_ledgerhead",
            "consent_consentstate",
        ):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        conn.execute("CHECKPOINT")
    return {
        "seconds": time.perf_counter() - started,
        "load_seconds": loaded,
        "vacuum_seconds": time.perf_counter() - started - loaded,
        "cpu_make_seconds": make_seconds,
        "cpu_copy_seconds": copy_seconds,
    }
