"""A send job's files: the upload streamed to disk (gzip undone on the way, never whole in memory, lines counted)
and the result file, written at the byte offsets the job's checkpoint records."""

from __future__ import annotations

import contextlib
import os
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from config.errors import InvalidInputError
from config.input import BodyTooLargeError, MalformedInputError

READ_BYTES = 256 * 1024  # the request body is read in pieces of this size
MAX_LINE_BYTES = 64 * 1024  # a longer line is malformed (a subject reference is a few hundred bytes at most)


class EmptyUploadError(InvalidInputError):
    code = "empty"
    title = "No recipients"


def job_dir() -> Path:
    return Path(settings.ASSENT_SEND_JOB_DIR)


def job_path(name: str) -> Path:
    return job_dir() / name


def upload_name(job_id: uuid.UUID) -> str:
    return f"{job_id}.in.ndjson"


def result_name(job_id: uuid.UUID) -> str:
    return f"{job_id}.out.ndjson"


@dataclass(frozen=True, slots=True)
class Upload:
    name: str  # relative to job_dir()
    lines: int
    size: int


def upload_store(*, job_id: uuid.UUID, read: Callable[[int], bytes], gzipped: bool) -> Upload:
    """Stream the request body to the job's upload file, `READ_BYTES` at a time (gzip undone on the way, with the
    decompressed size bounded as it grows: a small bomb stays small), and count its lines. Refused, with nothing left
    on disk: an empty body (400), more than ASSENT_SEND_JOB_MAX_LINES lines or ASSENT_SEND_JOB_MAX_BYTES bytes (413),
    a broken gzip stream (400). The file is fsynced and then renamed into place: a job never reads a half upload."""
    max_lines, max_bytes = settings.ASSENT_SEND_JOB_MAX_LINES, settings.ASSENT_SEND_JOB_MAX_BYTES
    name = upload_name(job_id)
    final = job_path(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f"{name}.{uuid.uuid4().hex}.tmp")
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if gzipped else None
    newlines = size = 0
    last = b"\n"
    content = False  # anything but white space seen
    try:
        with temporary.open("wb") as sink:

            def take(data: bytes) -> None:
                nonlocal newlines, size, last, content
                if not data:
                    return
                size += len(data)
                newlines += data.count(b"\n")
                last = data[-1:]
                content = content or bool(data.strip())
                if size > max_bytes:
                    raise BodyTooLargeError(f"the recipients are larger than {max_bytes:,} bytes")
                if newlines > max_lines:
                    raise BodyTooLargeError(f"more than {max_lines:,} lines")
                sink.write(data)

            while piece := read(READ_BYTES):
                if inflate is None:
                    take(piece)
                    continue
                try:
                    while piece:
                        take(inflate.decompress(piece, READ_BYTES))
                        while inflate.unconsumed_tail:
                            take(inflate.decompress(inflate.unconsumed_tail, READ_BYTES))
                        piece = b""
                        if inflate.eof and inflate.unused_data:  # `gzip a b > c`: members one after another
                            piece = inflate.unused_data
                            inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                except zlib.error:
                    raise MalformedInputError("the body is not a valid gzip stream", field="body") from None
            if inflate is not None and not inflate.eof:
                raise MalformedInputError("the gzip stream is cut short", field="body")
            lines = newlines + (0 if last == b"\n" else 1)
            if not content:
                raise EmptyUploadError("the body holds no subject reference: one per line", field="body")
            if lines > max_lines:
                raise BodyTooLargeError(f"more than {max_lines:,} lines")
            sink.flush()
            os.fsync(sink.fileno())
        temporary.rename(final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return Upload(name, lines, size)


def files_remove(*names: str) -> None:
    for name in names:
        if name:
            with contextlib.suppress(FileNotFoundError):
                job_path(name).unlink()


def result_write(*, name: str, offset: int, data: bytes) -> int:
    """Write a chunk's result lines at `offset` (the committed end of the file): whatever a dead worker wrote past it
    is cut first. fsynced before the chunk's commit names the new end. Returns the new end."""
    fd = os.open(job_path(name), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.ftruncate(fd, offset)
        written = 0
        while written < len(data):
            written += os.pwrite(fd, memoryview(data)[written:], offset + written)
        os.fsync(fd)
    finally:
        os.close(fd)
    return offset + len(data)
