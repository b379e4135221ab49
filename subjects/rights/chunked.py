"""Large blobs (exports) encrypted at rest in 64 KiB chunks, so memory stays flat however big the blob.

File: magic || chunk*, each chunk = 4-byte big-endian length || field ciphertext (subjects.crypto.seal) of up to
64 KiB of plaintext. A chunk's associated data is the blob's own prefix (its id and purpose) || the chunk's index
(8 bytes) || a last-chunk flag: chunks cannot be reordered, moved to another blob, dropped from the middle, or cut
off at the end (the chunk that is last on disk must have been sealed as the last one). Pure: no Django."""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from typing import BinaryIO

from subjects.crypto import DecryptionError, open_sealed, seal

MAGIC = b"ASX1"
CHUNK = 64 * 1024
_LENGTH = struct.Struct(">I")
_MAX_SEALED = CHUNK + 64


def _aad(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


class ChunkWriter(io.RawIOBase):
    """A write-only stream that seals what is written to it chunk by chunk into `sink`. close() seals the last
    chunk (possibly empty), so a blob is complete only after close()."""

    def __init__(self, sink: BinaryIO, key: bytes, aad_prefix: bytes) -> None:
        super().__init__()
        self._sink = sink
        self._key = key
        self._prefix = aad_prefix
        self._buffer = bytearray()
        self._index = 0
        self.plain_size = 0
        sink.write(MAGIC)

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        size = len(view)
        self.plain_size += size
        offset = 0
        # Keep at least one byte back: the chunk that ends the blob must be sealed with the last flag.
        while len(self._buffer) + (size - offset) > CHUNK:
            take = CHUNK - len(self._buffer)
            self._buffer += view[offset : offset + take]
            offset += take
            self._emit(bytes(self._buffer), last=False)
            self._buffer.clear()
        self._buffer += view[offset:]
        return size

    def _emit(self, plain: bytes, *, last: bool) -> None:
        sealed = seal(self._key, plain, _aad(self._prefix, self._index, last))
        self._sink.write(_LENGTH.pack(len(sealed)))
        self._sink.write(sealed)
        self._index += 1

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._sink.flush()
        super().close()


def read_chunks(source: BinaryIO, key: bytes, aad_prefix: bytes) -> Iterator[bytes]:
    """The plaintext chunks of a sealed blob, one at a time. DecryptionError if anything was changed or cut."""
    if source.read(len(MAGIC)) != MAGIC:
        raise DecryptionError("not a chunked blob")
    index = 0
    current = _read_one(source)
    if current is None:
        raise DecryptionError("the blob has no chunks")
    while current is not None:
        following = _read_one(source)
        yield open_sealed(key, current, _aad(aad_prefix, index, following is None))
        index += 1
        current = following


def _read_one(source: BinaryIO) -> bytes | None:
    header = source.read(_LENGTH.size)
    if not header:
        return None
    if len(header) != _LENGTH.size:
        raise DecryptionError("the blob is cut off")
    (length,) = _LENGTH.unpack(header)
    if length > _MAX_SEALED:
        raise DecryptionError("a chunk is too long")
    blob = source.read(length)
    if len(blob) != length:
        raise DecryptionError("the blob is cut off")
    return blob


def read_lines(source: BinaryIO, key: bytes, aad_prefix: bytes) -> Iterator[bytes]:
    """The lines (without the newline) of a sealed blob that holds JSON lines."""
    carry = b""
    for chunk in read_chunks(source, key, aad_prefix):
        carry += chunk
        *lines, carry = carry.split(b"\n")
        yield from lines
    if carry:
        yield carry
