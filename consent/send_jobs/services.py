"""Send jobs: created from an upload, run by a worker chunk by chunk, taken over when the worker dies.

Effects happen once whatever dies when (API.md: one send, one log row per line, the result lines once, in order):
- a worker claims a job with a conditional UPDATE on the job's own columns that sets a lease (`claimed_until`) and a
  fresh `lease_token`; a job whose lease ran out can be claimed again;
- the first claim creates the job's one Send in the same transaction;
- each chunk is gated outside any transaction that writes, then committed in one durable transaction that first
  locks the job row *if the lease is still ours*, writes the chunk's result lines at the checkpoint's offset of
  the result file (cutting whatever a dead worker wrote past it) and fsyncs them, COPies the chunk's log rows, and
  moves the checkpoint. The row lock keeps a new claim out while the file is written, so no two workers ever write
  the file at once; the file is ahead of the checkpoint only until the commit, and a successor cuts it back.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, BinaryIO, TypeVar

from celery import current_app
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from config.errors import DomainError
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, channel_check, purpose_get
from consent.gates.sends import PurposeNotMarketingError
from consent.models import Send, SendJob
from consent.send_jobs.files import (
    MAX_LINE_BYTES,
    files_remove,
    job_dir,
    job_path,
    result_name,
    result_write,
    upload_store,
)
from consent.send_jobs.gate import ChunkOutcome, Resolved, chunk_render, chunk_resolve
from consent.task_names import RUN_SEND_JOB

logger = logging.getLogger(__name__)
T = TypeVar("T")


class UploadShortError(Exception):
    """The upload holds fewer lines than were counted when it arrived: it was changed under the job."""


class LeaseLostError(Exception):
    """Another worker took the job over (ours was too slow to renew the lease): stop, write nothing more."""


def lease() -> timedelta:
    return timedelta(seconds=settings.ASSENT_SEND_JOB_LEASE_SECONDS)


def _enqueue_on_commit(job_id: uuid.UUID) -> None:
    # By name (consent.task_names): the task module is an edge that imports this service, not the other way round.
    transaction.on_commit(current_app.signature(RUN_SEND_JOB, args=(str(job_id),)).apply_async)


# ---------------------------------------------------------------------------------------------------------
# Creating
# ---------------------------------------------------------------------------------------------------------
def _nothing(size: int) -> bytes:
    return b""  # an empty body (DRF gives no stream for Content-Length 0)


def send_job_create(
    *, client_id: int, campaign: str, info: PurposeInfo, channel: str, body: BinaryIO | None, gzipped: bool
) -> SendJob:
    """Store the upload (streamed, see files.upload_store), then the job, queued; a worker is asked on commit."""
    job_id = uuid.uuid4()
    upload = upload_store(job_id=job_id, read=body.read if body is not None else _nothing, gzipped=gzipped)
    now = timezone.now()
    try:
        with transaction.atomic(durable=True):
            job = SendJob.objects.create(
                id=job_id,
                client_id=client_id,
                campaign=campaign,
                purpose=info.rule.key,
                channel=channel,
                total=upload.lines,
                upload_file=upload.name,
                result_file=result_name(job_id),
                checkpoint={"input": 0, "result": 0},
                enqueued_at=now,
                created_at=now,
            )
            _enqueue_on_commit(job_id)
    except BaseException:
        files_remove(upload.name)
        raise
    return job


# ---------------------------------------------------------------------------------------------------------
# Claiming and running
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claim:
    job_id: uuid.UUID
    token: uuid.UUID


@dataclass(frozen=True, slots=True)
class RunResult:
    retry_in: float | None = None  # another worker holds a live lease: look again when it ends


def _claimable(now: datetime) -> Q:
    return Q(status=SendJob.Status.QUEUED) | Q(status=SendJob.Status.RUNNING, claimed_until__lt=now)


@transaction.atomic(durable=True)
def send_job_claim(*, job_id: uuid.UUID) -> Claim | None:
    """One worker wins (a conditional UPDATE on the job's own columns, which PostgreSQL re-checks on the latest row
    version); the first winner creates the job's Send."""
    now = timezone.now()
    token = uuid.uuid4()
    won = SendJob.objects.filter(_claimable(now), pk=job_id).update(
        status=SendJob.Status.RUNNING,
        lease_token=token,
        claimed_until=now + lease(),
        attempts=F("attempts") + 1,
        started_at=Coalesce(F("started_at"), now),
    )
    if not won:
        return None
    job = SendJob.objects.get(pk=job_id)
    if job.send_id is None:
        send = Send.objects.create(
            client_id=job.client_id,
            campaign=job.campaign,
            purpose=job.purpose,
            channel=job.channel,
            created_at=now,
        )
        SendJob.objects.filter(pk=job_id).update(send=send)
    return Claim(job_id, token)


def _read_chunk(stream: BinaryIO, limit: int) -> list[tuple[bytes, bool]]:
    """Up to `limit` lines ((line, too long)); a line longer than MAX_LINE_BYTES is read past, never held whole."""
    lines: list[tuple[bytes, bool]] = []
    while len(lines) < limit:
        line = stream.readline(MAX_LINE_BYTES + 1)
        if not line:
            break
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                pass
            lines.append((b"", True))
        else:
            lines.append((line, False))
    return lines


def _chunk_commit(claim: Claim, send_id: uuid.UUID, outcome: ChunkOutcome, end: int) -> SendJob:
    """Write one gated chunk: result lines, log rows, progress, checkpoint and a renewed lease, or nothing. `end`: the
    upload's byte offset after the chunk."""
    allowed, blocked = outcome.allowed, outcome.blocked
    with transaction.atomic(durable=True):
        # Our lease, or nothing: the lock also keeps a new claim out while the result file is written.
        current = (
            SendJob.objects.select_for_update()
            .filter(pk=claim.job_id, lease_token=claim.token, status=SendJob.Status.RUNNING)
            .first()
        )
        if current is None:
            raise LeaseLostError(str(claim.job_id))
        result_end = result_write(name=current.result_file, offset=current.checkpoint["result"], data=outcome.result)
        with (
            connection.wrap_database_errors,
            connection.connection.cursor() as cursor,
            cursor.copy("COPY consent_sendrecipient (send_id, index, subject_id, allowed, reason) FROM STDIN") as copy,
        ):
            copy.write(outcome.log)
        processed = current.processed + allowed + blocked
        done = processed >= current.total
        now = timezone.now()
        changes: dict[str, object] = {
            "processed": processed,
            "allowed": F("allowed") + allowed,
            "blocked": F("blocked") + blocked,
            "checkpoint": {"input": end, "result": result_end},
            "claimed_until": now + lease(),
        }
        if done:
            changes.update(status=SendJob.Status.COMPLETED, finished_at=now, lease_token=None, claimed_until=None)
        SendJob.objects.filter(pk=claim.job_id).update(**changes)
        Send.objects.filter(pk=send_id).update(
            allowed_count=F("allowed_count") + allowed, blocked_count=F("blocked_count") + blocked
        )
    current.refresh_from_db()
    return current


class _Lane:
    """One thread of its own (with its own database connection) that runs calls in order, so that a worker's database
    waits overlap its Python: the next chunk is read and resolved, and the last one committed, while this one is
    decided and rendered. Inside a caller's transaction (tests, in process) calls run inline instead, where that
    transaction's data is visible."""

    def __init__(self, name: str) -> None:
        self.pool = None if connection.in_atomic_block else ThreadPoolExecutor(1, thread_name_prefix=name)

    def run(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self.pool is not None:
            return self.pool.submit(self._call, fn, *args)
        done: Future[T] = Future()
        done.set_result(fn(*args))  # an error raises here, as .result() would
        return done

    @staticmethod
    def _call(fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        finally:
            connection.close_if_unusable_or_obsolete()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.submit(connection.close).result()  # the thread's connection ends with the thread
            self.pool.shutdown()


@dataclass(frozen=True, slots=True)
class _Chunk:
    lines: int
    end: int  # the upload's byte offset after it
    resolved: Resolved


def _next_chunk(stream: BinaryIO, limit: int, info: PurposeInfo, channel: str) -> _Chunk:
    lines = _read_chunk(stream, limit)
    return _Chunk(len(lines), stream.tell(), chunk_resolve(lines=lines, info=info, channel=channel))


def _gate_to_the_end(
    job: SendJob, info: PurposeInfo, claim: Claim, stream: BinaryIO, reader: _Lane, committer: _Lane
) -> None:
    """Chunk after chunk from the checkpoint: the next one read and resolved ahead, this one decided and rendered,
    the last one committed, each commit after the one before (a lost lease stops the run there)."""
    assert job.send_id is not None
    size = settings.ASSENT_SEND_JOB_CHUNK_LINES
    index = job.processed
    ahead = reader.run(_next_chunk, stream, size, info, job.channel)
    committed: Future[SendJob] | None = None
    while index < job.total:
        chunk = ahead.result()
        if not chunk.lines:  # the upload ended before its counted lines: it was changed under us
            raise UploadShortError(str(job.id))
        if index + chunk.lines < job.total:
            ahead = reader.run(_next_chunk, stream, size, info, job.channel)
        outcome = chunk_render(
            resolved=chunk.resolved, first_index=index, info=info, channel=job.channel, send_id=job.send_id
        )
        if committed is not None:
            committed.result()
        committed = committer.run(_chunk_commit, claim, job.send_id, outcome, chunk.end)
        index += chunk.lines
    if committed is not None:
        committed.result()


def send_job_run(*, job_id: uuid.UUID) -> RunResult:
    """Claim the job and gate it to the end, chunk by chunk from its checkpoint. Transient errors (the database
    away) propagate for the task to retry; a job that cannot be gated at all (its purpose gone from the catalogue)
    fails; a lease lost to another worker ends this run quietly."""
    claim = send_job_claim(job_id=job_id)
    if claim is None:
        return RunResult(retry_in=_live_lease_left(job_id))
    job = SendJob.objects.get(pk=job_id)
    try:
        snapshot, info = purpose_get(catalogue_snapshot(), job.purpose)
        channel_check(snapshot, info, job.channel)
        if not info.rule.marketing:  # changed in the catalogue since the upload: no longer a send
            raise PurposeNotMarketingError(f"purpose '{job.purpose}' is no longer direct marketing")
    except DomainError as exc:
        send_job_fail(job_id=job_id, token=claim.token, error=f"{exc.code}: {exc.detail}")
        return RunResult()
    assert job.send_id is not None
    stream = job_path(job.upload_file).open("rb")
    reader, committer = _Lane("send-job-read"), _Lane("send-job-commit")
    try:
        stream.seek(job.checkpoint["input"])
        _gate_to_the_end(job, info, claim, stream, reader, committer)
        files_remove(job.upload_file)  # the references are not kept once gated (the result file has them)
    except LeaseLostError:
        logger.info("send job %s: lease lost to another worker", job_id)
    except UploadShortError:
        send_job_fail(job_id=job_id, token=claim.token, error="the upload is shorter than counted")
    except (OperationalError, InterfaceError, OSError):
        send_job_release(job_id=job_id, token=claim.token)  # the retry takes it at once, not after the lease
        raise
    except Exception as exc:  # a bug, not the weather: fail the job instead of retrying it forever
        logger.exception("send job %s failed", job_id)
        send_job_fail(job_id=job_id, token=claim.token, error=f"internal error: {type(exc).__name__}")
    finally:
        reader.close()  # the lanes end first: a read ahead may still use the stream
        committer.close()
        stream.close()
    return RunResult()


def _live_lease_left(job_id: uuid.UUID) -> float | None:
    until = SendJob.objects.filter(pk=job_id, status=SendJob.Status.RUNNING).values_list("claimed_until", flat=True)
    first = until.first()
    if first is None:
        return None
    return max(1.0, (first - timezone.now()).total_seconds() + 1)


@transaction.atomic(durable=True)
def send_job_fail(*, job_id: uuid.UUID, error: str, token: uuid.UUID | None = None) -> None:
    """The job cannot be gated: failed, with the reason (no personal data). Its lines committed so far stay logged."""
    query = SendJob.objects.filter(pk=job_id).exclude(status=SendJob.Status.COMPLETED)
    if token is not None:
        query = query.filter(lease_token=token)
    query.update(
        status=SendJob.Status.FAILED,
        error=error[:2000],
        finished_at=timezone.now(),
        lease_token=None,
        claimed_until=None,
    )


def send_job_release(*, job_id: uuid.UUID, token: uuid.UUID) -> None:
    """Give the job back at once after a transient error: the retry claims it without waiting for the lease."""
    with contextlib.suppress(Exception):  # the database is away: the lease runs out on its own
        SendJob.objects.filter(pk=job_id, lease_token=token, status=SendJob.Status.RUNNING).update(
            claimed_until=timezone.now() - timedelta(seconds=1)
        )


def send_jobs_stalled(*, older_than: timedelta = timedelta(minutes=2)) -> list[uuid.UUID]:
    """Jobs whose message was lost (queued long ago) or whose worker died (running, lease over): for the safety
    net to enqueue again. The broker may forget; the database is the source of truth."""
    now = timezone.now()
    ids = list(
        SendJob.objects.filter(
            Q(status=SendJob.Status.QUEUED, enqueued_at__lt=now - older_than)
            | Q(status=SendJob.Status.RUNNING, claimed_until__lt=now)
        )
        .order_by("created_at")
        .values_list("pk", flat=True)[:100]
    )
    if ids:
        SendJob.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


def send_jobs_purge(*, now: datetime | None = None) -> int:
    """The files of jobs that ended more than ASSENT_SEND_JOB_KEEP_DAYS ago are deleted: the result echoes each
    reference as sent (addresses), which must not outlive its use. The job and its send log stay (Art. 15(1)(c));
    the result is then gone (410). Upload temporaries a killed request left behind go after a day."""
    now = now or timezone.now()
    ended = list(
        SendJob.objects.filter(
            status__in=(SendJob.Status.COMPLETED, SendJob.Status.FAILED),
            finished_at__lt=now - timedelta(days=settings.ASSENT_SEND_JOB_KEEP_DAYS),
        )
        .exclude(result_file="")
        .values_list("pk", "upload_file", "result_file")
    )
    for job_id, upload, result in ended:
        SendJob.objects.filter(pk=job_id).update(upload_file="", result_file="")
        files_remove(upload, result)
    if job_dir().exists():
        for path in job_dir().glob("*.tmp"):
            if now.timestamp() - path.stat().st_mtime > 24 * 3600:
                path.unlink(missing_ok=True)
    return len(ended)
