"""Verifying the consent ledger and the state the policy reads (DESIGN.md, the ledger).

The hash chain proves the events; the state rows (ConsentState) are what checks read, so they are proven too: each
subject's state is folded again from its chain (and the chains merged into it) by the projection's own replay
(consent.ledger.replay.state_replay, the code a split uses to rebuild states) and compared field by field with the
stored rows. Every row that differs, every projected state without a row, and every row that no chain projects
is named, as is a row whose `event` is not the event at its `seq`.

Which grants met the suppression list each event says itself (ConsentEvent.suppressed, inside the hash); for
events recorded before that flag existed, a row's `suppressed` flag names its seq, as the replay does elsewhere.
The catalogue's current channels and double opt-in settings come from the catalogue.

Runs: `verify_ledger` (full, exits non-zero), and the beat tasks consent.tasks.verify_ledger_incremental (every
5 minutes: subjects with events recorded since the last run, minus ASSENT_LEDGER_VERIFY_OVERLAP_SECONDS for
transactions that committed late) and verify_ledger_full (daily: every subject, which also catches a state row
edited without any new event). Each run is a LedgerVerification row; the admin dashboard shows the last one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from consent.catalogue.snapshot import CatalogueSnapshot, catalogue_snapshot
from consent.ledger import projection
from consent.ledger.chain import ledger_verify_subject
from consent.ledger.replay import state_replay
from consent.ledger.state_rows import STATE_FIELDS
from consent.models import ConsentEvent, ConsentState, LedgerHead, LedgerVerification
from subjects.models import Subject

PROBLEM_CAP = 200  # problems kept on a LedgerVerification row; the count is always exact
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Problem:
    subject_id: uuid.UUID
    kind: str  # "chain", "state_differs", "state_missing", "state_without_chain", "state_event"
    detail: str

    def __str__(self) -> str:
        return f"subject {self.subject_id}: {self.detail}"

    def as_json(self) -> dict[str, str]:
        return {"subject": str(self.subject_id), "kind": self.kind, "detail": self.detail}


@dataclass(slots=True)
class VerificationResult:
    subjects_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _state_problems(subject: Subject, snapshot: CatalogueSnapshot) -> list[Problem]:
    rows = list(ConsentState.objects.filter(subject=subject).order_by("purpose", "channel"))
    has_chain = ConsentEvent.objects.filter(subject=subject).exists()
    if subject.merged_into_id is not None or not has_chain:
        # An absorbed subject's states live on the survivor; a subject without events has no state to have.
        expected: dict[tuple[str, str], projection.Fact] = {}
    else:
        marked = frozenset(row.seq for row in rows if row.suppressed)
        expected = state_replay(subject_id=subject.pk, snapshot=snapshot, marked=marked)
    event_at = dict(
        ConsentEvent.objects.filter(subject=subject, seq__in={row.seq for row in rows}).values_list("seq", "pk")
    )
    problems: list[Problem] = []
    for row in rows:
        where = f"state row {row.pk} ({row.purpose}/{row.channel})"
        fact = expected.pop((row.purpose, row.channel), None)
        if fact is None:
            if not has_chain:
                detail = f"chain head: consent state without a chain (chain and head deleted): {where}"
            elif subject.merged_into_id:
                detail = f"{where}: has no chain (the subject was merged into another)"
            else:
                detail = f"{where}: has no chain (no event of the chain projects it)"
            problems.append(Problem(subject.pk, "state_without_chain", detail))
            continue
        differs = [
            f"{name} stored {getattr(row, name)!r}, chain gives {getattr(fact, name)!r}"
            for name in STATE_FIELDS
            if getattr(row, name) != getattr(fact, name)
        ]
        if differs:
            problems.append(
                Problem(subject.pk, "state_differs", f"{where}: differs from its chain: {'; '.join(differs)}")
            )
        elif row.event_id is None or row.event_id != event_at.get(row.seq):
            problems.append(
                Problem(subject.pk, "state_event", f"{where}: does not name the event at seq {row.seq} it comes from")
            )
    for (purpose, channel), fact in sorted(expected.items()):
        problems.append(
            Problem(
                subject.pk,
                "state_missing",
                f"state row ({purpose}/{channel}) missing: the chain gives {fact.status!r} from seq {fact.seq}",
            )
        )
    return problems


def _verify_chunk(ids: list[uuid.UUID], snapshot: CatalogueSnapshot, result: VerificationResult) -> None:
    head_of = {h.subject_id: h for h in LedgerHead.objects.filter(subject_id__in=ids)}
    for subject in Subject.objects.filter(pk__in=ids).order_by("pk"):
        result.subjects_checked += 1
        chain = [
            Problem(subject.pk, "chain", str(p).removeprefix(f"subject {subject.pk}: "))
            for p in ledger_verify_subject(subject, head_of.get(subject.pk))
        ]
        result.problems.extend(chain)
        if chain:
            continue  # a broken chain proves no state; its problems name what to look at
        result.problems.extend(_state_problems(subject, snapshot))


def verify_subjects(subject_ids: Iterable[uuid.UUID]) -> VerificationResult:
    """The chains of these subjects and the state projected from them."""
    snapshot = catalogue_snapshot(refresh=True)
    ids = sorted(set(subject_ids))
    result = VerificationResult()
    for start in range(0, len(ids), CHUNK):
        _verify_chunk(ids[start : start + CHUNK], snapshot, result)
    return result


def subjects_with_chain_or_state() -> list[uuid.UUID]:
    """Every subject with a chain, a head or a state row: a state row without either is a problem too."""
    heads = LedgerHead.objects.values_list("subject_id", flat=True)
    chained = ConsentEvent.objects.values_list("subject_id", flat=True)
    stated = ConsentState.objects.values_list("subject_id", flat=True)
    return sorted(set(heads.union(chained, stated)))


def subjects_changed_since(since: datetime) -> list[uuid.UUID]:
    return sorted(set(ConsentEvent.objects.filter(recorded_at__gte=since).values_list("subject_id", flat=True)))


def verify_full() -> VerificationResult:
    return verify_subjects(subjects_with_chain_or_state())


def _last_finished() -> LedgerVerification | None:
    return LedgerVerification.objects.filter(finished_at__isnull=False).order_by("-started_at").first()


def verification_run(*, kind: str, now: datetime | None = None) -> tuple[LedgerVerification, VerificationResult]:
    """Verify and record the run. Incremental: the subjects with events recorded since the last finished run
    started, less the overlap (a transaction that began before that run may commit after it); without an earlier
    run it checks everything."""
    now = now or timezone.now()
    last = _last_finished() if kind == LedgerVerification.Kind.INCREMENTAL else None
    run = LedgerVerification.objects.create(started_at=now, kind=kind)
    if kind == LedgerVerification.Kind.INCREMENTAL and last is not None:
        overlap = timedelta(seconds=settings.ASSENT_LEDGER_VERIFY_OVERLAP_SECONDS)
        result = verify_subjects(subjects_changed_since(last.started_at - overlap))
    else:
        result = verify_full()
    run.finished_at = timezone.now()
    run.subjects_checked = result.subjects_checked
    run.problem_count = len(result.problems)
    run.problems = [p.as_json() for p in result.problems[:PROBLEM_CAP]]
    run.save(update_fields=["finished_at", "subjects_checked", "problem_count", "problems"])
    return run, result


def verification_latest() -> LedgerVerification | None:
    """The newest run, finished or not (a run that never finishes shows as such on the dashboard)."""
    return LedgerVerification.objects.order_by("-started_at").first()
