"""Export files: where they live, their keys, the signed link, the download stream and the clean-up.

An export is a zip encrypted at rest in 64 KiB chunks (subjects.rights.chunked) under VAR_DIR/exports; the parts of
an access request write their pieces beside it (parts/<request>/), encrypted the same way, and the finish step
streams them into the zip. Keys: HKDF of the subject's data key and the blob's id (see vault.py), so erasing the
person crypto-shreds every copy. Links: signed, valid 7 days, issued afresh on every GET of the request; the
download also needs a Bearer key with requests:read. Exports are deleted after 30 days."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from subjects.keys import data_key
from subjects.models import RightsExport, RightsRequest, Subject
from subjects.rights import chunked, vault
from subjects.rights.errors import ExportUnavailableError

EXPORT_DAYS = 30
LINK_DAYS = 7
_SALT = "assent.rights.export"


def export_dir() -> Path:
    return Path(settings.VAR_DIR) / "exports"


def export_path(export_id: uuid.UUID) -> Path:
    return export_dir() / f"{export_id}.zip.enc"


def parts_dir(request_id: uuid.UUID) -> Path:
    return export_dir() / "parts" / str(request_id)


def piece_name(name: str, token: uuid.UUID) -> str:
    """A part's piece is named after the part and the lease that wrote it: a worker that lost its lease writes a
    file nobody reads (the finish reads the one the part's recorded outcome names)."""
    return f"{name.replace(':', '_').replace('/', '_')}.{token.hex}.jsonl.enc"


def part_path(request_id: uuid.UUID, piece: str) -> Path:
    return parts_dir(request_id) / piece


def blob_root(subject: Subject | None, kid: str = "") -> tuple[str, bytes]:
    """(kid, root key) of a blob: the subject's data key (kid ""), or a master key when nobody matched."""
    if subject is not None:
        return "", data_key(subject)
    return vault.master_key(kid or None)


def blob_aad(blob_id: uuid.UUID, label: str) -> bytes:
    return b"assent-export|" + label.encode() + b"|" + blob_id.bytes


@contextmanager
def sealed_writer(
    path: Path, *, root: bytes, blob_id: uuid.UUID, label: str, temp: str, durable: bool = False
) -> Iterator[chunked.ChunkWriter]:
    """Write a sealed blob to `path` atomically: a temporary file of this writer's own (`temp`: the part's lease
    token, so a worker that lost its lease never writes into its successor's file), renamed at the end. Only the
    export itself is fsynced (`durable`): a piece lost to a power cut fails the finish step, which runs again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{temp}.tmp")
    key = vault.export_key(root=root, blob_id=blob_id, label=label)
    try:
        with temporary.open("wb") as sink:
            writer = chunked.ChunkWriter(sink, key, blob_aad(blob_id, label))
            yield writer
            writer.close()
            if durable:
                sink.flush()
                os.fsync(sink.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def sealed_lines(path: Path, *, root: bytes, blob_id: uuid.UUID, label: str) -> Iterator[bytes]:
    key = vault.export_key(root=root, blob_id=blob_id, label=label)
    with path.open("rb") as source:
        yield from chunked.read_lines(source, key, blob_aad(blob_id, label))


def _chunks(source: BinaryIO, key: bytes, aad: bytes) -> Iterator[bytes]:
    with source:
        yield from chunked.read_chunks(source, key, aad)


# ---------------------------------------------------------------------------------------------------------
# Links and downloads
# ---------------------------------------------------------------------------------------------------------
def export_url(*, request_id: uuid.UUID) -> str:
    token = signing.TimestampSigner(salt=_SALT).sign(str(request_id))
    return f"{settings.ASSENT_BASE_URL}/api/v1/requests/{request_id}/export?token={token}"


def export_open(*, request_id: uuid.UUID, token: str) -> tuple[Iterator[bytes], int]:
    """The decrypted zip as a stream of chunks, for a valid link to this request's export."""
    try:
        named = signing.TimestampSigner(salt=_SALT).unsign(token, max_age=timedelta(days=LINK_DAYS))
    except signing.BadSignature:
        raise ExportUnavailableError("this export link is not valid or has expired") from None
    if named != str(request_id):
        raise ExportUnavailableError("this export link is for another request")
    export = RightsExport.objects.select_related("subject").filter(pk=request_id).first()
    path = export_path(request_id)
    if export is None or export.expires_at <= timezone.now() or not path.exists():
        raise ExportUnavailableError("this export was deleted")
    subject = export.subject
    if subject is not None and subject.wrapped_key is None:
        raise ExportUnavailableError("this export was deleted")
    _kid, root = blob_root(subject, export.key_kid)
    key = vault.export_key(root=root, blob_id=export.id, label="zip")
    return _chunks(path.open("rb"), key, blob_aad(export.id, "zip")), export.size


def export_record(
    *, request: RightsRequest, subject: Subject | None, kid: str, size: int, now: datetime
) -> RightsExport:
    """The export's row, in the finish step's transaction, which also completes the request (so it runs once; the
    file is in place already)."""
    return RightsExport.objects.create(
        pk=request.pk,
        request=request,
        subject=subject,
        key_kid=kid,
        size=size,
        created_at=now,
        expires_at=now + timedelta(days=EXPORT_DAYS),
    )


def files_remove_on_commit(*, export_ids: list[uuid.UUID], request_ids: list[uuid.UUID]) -> None:
    """Delete export files and part pieces once the transaction that dropped their rows has committed."""

    def remove() -> None:
        for export_id in export_ids:
            export_path(export_id).unlink(missing_ok=True)
        for request_id in request_ids:
            shutil.rmtree(parts_dir(request_id), ignore_errors=True)
            # The temporary zip of a worker killed while writing it (SIGKILL skips sealed_writer's clean-up).
            for temporary in export_dir().glob(f"{request_id}.zip.enc.*.tmp"):
                temporary.unlink(missing_ok=True)

    transaction.on_commit(remove)


def exports_purge(*, now: datetime | None = None) -> int:
    """Delete exports older than 30 days, and pieces left by requests that ended more than a day ago."""
    now = now or timezone.now()
    expired = list(RightsExport.objects.filter(expires_at__lte=now).values_list("pk", flat=True))
    with transaction.atomic(durable=True):
        RightsExport.objects.filter(pk__in=expired).delete()
        files_remove_on_commit(export_ids=expired, request_ids=[])
    base = export_dir() / "parts"
    if base.exists():
        names = {p.name for p in base.iterdir()}
        settled = RightsRequest.objects.filter(
            pk__in=[n for n in names if _is_uuid(n)], completed_at__lt=now - timedelta(days=1)
        ).values_list("pk", flat=True)
        for request_id in settled:
            shutil.rmtree(parts_dir(request_id), ignore_errors=True)
    known = set(RightsExport.objects.values_list("pk", flat=True))
    if export_dir().exists():
        for path in export_dir().glob("*.zip.enc"):
            stem = path.name.removesuffix(".zip.enc")
            if _is_uuid(stem) and uuid.UUID(stem) not in known and _stale(path, now):
                path.unlink(missing_ok=True)
        for path in export_dir().glob("*.zip.enc.*.tmp"):  # left by a worker killed mid-write
            if _stale(path, now):
                path.unlink(missing_ok=True)
    return len(expired)


def _stale(path: Path, now: datetime) -> bool:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=now.tzinfo) < now - timedelta(hours=1)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
