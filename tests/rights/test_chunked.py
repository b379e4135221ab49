"""Chunked encryption of large blobs: round trips at chunk edges, and every tampering is noticed."""

from __future__ import annotations

import io
import os

import pytest

from subjects.crypto import DecryptionError, new_data_key
from subjects.rights.chunked import CHUNK, ChunkWriter, read_chunks, read_lines

KEY = new_data_key()
AAD = b"blob-1"


def sealed(data: bytes, *, writes: int = 1) -> bytes:
    sink = io.BytesIO()
    writer = ChunkWriter(sink, KEY, AAD)
    step = max(1, len(data) // writes)
    for offset in range(0, len(data), step):
        writer.write(data[offset : offset + step])
    writer.close()
    return sink.getvalue()


def opened(blob: bytes, key: bytes = KEY, aad: bytes = AAD) -> bytes:
    return b"".join(read_chunks(io.BytesIO(blob), key, aad))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * CHUNK + 17])
@pytest.mark.parametrize("writes", [1, 7])
def test_a_blob_round_trips_at_every_chunk_edge(size: int, writes: int) -> None:
    data = os.urandom(size)
    assert opened(sealed(data, writes=writes)) == data


def test_every_chunk_holds_at_most_64_kib() -> None:
    chunks = list(read_chunks(io.BytesIO(sealed(os.urandom(3 * CHUNK + 5))), KEY, AAD))
    assert [len(c) for c in chunks] == [CHUNK, CHUNK, CHUNK, 5]


def _chunk_spans(blob: bytes) -> list[tuple[int, int]]:
    spans, offset = [], 4
    while offset < len(blob):
        length = int.from_bytes(blob[offset : offset + 4], "big")
        spans.append((offset, offset + 4 + length))
        offset += 4 + length
    return spans


def test_a_blob_cut_at_a_chunk_boundary_is_noticed() -> None:
    blob = sealed(os.urandom(3 * CHUNK))
    spans = _chunk_spans(blob)
    with pytest.raises(DecryptionError):
        opened(blob[: spans[-1][0]])


def test_swapped_chunks_are_noticed() -> None:
    blob = sealed(os.urandom(3 * CHUNK))
    (a0, a1), (b0, b1), _ = _chunk_spans(blob)
    swapped = blob[:a0] + blob[b0:b1] + blob[a0:a1] + blob[b1:]
    with pytest.raises(DecryptionError):
        opened(swapped)


def test_a_flipped_bit_another_key_or_another_blob_id_is_noticed() -> None:
    blob = bytearray(sealed(b"hello world"))
    with pytest.raises(DecryptionError):
        opened(bytes(blob), key=new_data_key())
    with pytest.raises(DecryptionError):
        opened(bytes(blob), aad=b"blob-2")
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        opened(bytes(blob))


def test_lines_are_read_across_chunk_boundaries() -> None:
    lines = [f"line {i} ".encode() * 50 for i in range(2000)]
    blob = sealed(b"\n".join(lines) + b"\n")
    assert list(read_lines(io.BytesIO(blob), KEY, AAD)) == lines
