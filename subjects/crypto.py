"""Field encryption, key wrapping and the blind index. Pure: no Django, no database.

Formats (DESIGN.md, Cryptography):
- field ciphertext: version byte || 96-bit nonce || AES-256-GCM ciphertext || tag. Version 2 (FIELD_VERSION) binds
  the value by associated data to subject id || column || 0x00 || row id, so a ciphertext copied into another row,
  column or subject fails to decrypt (CiphertextIntegrityError). Version 1 bound subject and column only (two rows
  of one person could be swapped unnoticed); it is still read until `reencrypt_fields` has converted every row;
- a subject's data key is wrapped the same way by a master key, with the subject id as associated data;
- blind index: HMAC-SHA256(HKDF sub-key, kind || 0x00 || normalised value).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.errors import UnavailableError

VERSION = b"\x01"  # key wrapping, vaults, chunks, and fields written before row binding
FIELD_VERSION = b"\x02"  # fields bound to their row
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A ciphertext that is damaged, moved to another row or column, or under an unknown key."""


class CiphertextIntegrityError(DecryptionError, UnavailableError):
    """A stored value does not authenticate for the row, column and person it is read from: it was moved or
    changed in the database. Never shown as data; a 503 because only an operator can repair it."""

    code = "integrity_error"
    title = "Stored data failed its integrity check"

    def __init__(self, detail: str = "a stored value does not belong where it was found") -> None:
        super().__init__(detail)


RowId = uuid.UUID | int | str


def field_aad(subject_id: uuid.UUID, column: str) -> bytes:
    """Version 1 associated data (subject and column only). Kept to read old values."""
    return subject_id.bytes + column.encode()


def row_aad(subject_id: uuid.UUID, column: str, row_id: RowId) -> bytes:
    # 0x00 ends the column name, so no column/row-id pair can be read as another (column names have no NUL).
    return subject_id.bytes + column.encode() + b"\x00" + str(row_id).encode()


def seal_field(key: bytes, plaintext: bytes, subject_id: uuid.UUID, column: str, row_id: RowId) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return FIELD_VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, row_aad(subject_id, column, row_id))


def seal_fields(key: bytes, subject_id: uuid.UUID, fields: Sequence[tuple[str, RowId, bytes]]) -> list[bytes]:
    """seal_field for several (column, row id, plaintext) of one subject under one AESGCM object: building the
    object costs about as much as sealing a short value, and a batch seals thousands."""
    aead = AESGCM(key)
    sealed = []
    for column, row_id, plaintext in fields:
        nonce = os.urandom(NONCE_BYTES)
        sealed.append(FIELD_VERSION + nonce + aead.encrypt(nonce, plaintext, row_aad(subject_id, column, row_id)))
    return sealed


def open_field(
    key: bytes, blob: bytes, subject_id: uuid.UUID, column: str, row_id: RowId, *, read_unbound: bool = True
) -> bytes:
    """The plaintext of a field of either version (version 1 only while `read_unbound`); CiphertextIntegrityError
    if it is not this row's value."""
    version = blob[:1]
    if version == FIELD_VERSION:
        aad = row_aad(subject_id, column, row_id)
    elif version == VERSION and read_unbound:
        aad = field_aad(subject_id, column)
    elif version == VERSION:
        raise CiphertextIntegrityError("a stored value is not bound to its row (run reencrypt_fields)")
    else:
        raise CiphertextIntegrityError("a stored value has an unknown format")
    if len(blob) < 1 + NONCE_BYTES + 16:
        raise CiphertextIntegrityError("a stored value is cut off")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise CiphertextIntegrityError() from None


def is_row_bound(blob: bytes) -> bool:
    return bytes(blob[:1]) == FIELD_VERSION


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != VERSION:
        raise DecryptionError("unknown ciphertext format")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad)
    except InvalidTag:
        raise DecryptionError("ciphertext does not authenticate") from None


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@dataclass(frozen=True)
class Keyring:
    """The master keys: the first wraps, every one unwraps (so rotation is re-wrapping only)."""

    keys: Sequence[tuple[str, bytes]]

    @property
    def current_kid(self) -> str:
        return self.keys[0][0]

    def wrap(self, data_key: bytes, subject_id: uuid.UUID) -> tuple[str, bytes]:
        kid, master = self.keys[0]
        return kid, seal(master, data_key, b"data-key|" + subject_id.bytes)

    def wrap_many(self, items: Sequence[tuple[bytes, uuid.UUID]]) -> tuple[str, list[bytes]]:
        """wrap() for many (data key, subject id) under one AESGCM object of the master key."""
        kid, master = self.keys[0]
        aead = AESGCM(master)
        wrapped = []
        for data_key, subject_id in items:
            nonce = os.urandom(NONCE_BYTES)
            wrapped.append(VERSION + nonce + aead.encrypt(nonce, data_key, b"data-key|" + subject_id.bytes))
        return kid, wrapped

    def unwrap_many(self, items: Sequence[tuple[str, bytes, uuid.UUID]]) -> list[bytes]:
        """unwrap() for many (kid, wrapped key, subject id), one AESGCM object per master key."""
        aeads = {kid: AESGCM(master) for kid, master in self.keys}
        keys = []
        for kid, blob, subject_id in items:
            aead = aeads.get(kid)
            if aead is None:
                raise DecryptionError(f"master key {kid!r} is not configured")
            if len(blob) < 1 + NONCE_BYTES + 16 or blob[:1] != VERSION:
                raise DecryptionError("unknown ciphertext format")
            aad = b"data-key|" + subject_id.bytes
            try:
                keys.append(aead.decrypt(blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad))
            except InvalidTag:
                raise DecryptionError("ciphertext does not authenticate") from None
        return keys

    def unwrap(self, kid: str, wrapped: bytes, subject_id: uuid.UUID) -> bytes:
        for known_kid, master in self.keys:
            if known_kid == kid:
                return open_sealed(master, wrapped, b"data-key|" + subject_id.bytes)
        raise DecryptionError(f"master key {kid!r} is not configured")


class HmacSha256:
    """HMAC-SHA256 (RFC 2104) under one key, from SHA-256 states precomputed over the padded key: the same bytes as
    `hmac.digest(key, message, "sha256")` (tested), about three times faster per message, because OpenSSL 3 looks
    its HMAC algorithm up again on every one-shot call and every copy. A bulk check or a send computes 10,000."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class BlindIndex:
    """Keyed hashes for equality lookups of encrypted identifiers. Two HKDF sub-keys: one for lookups,
    one for the suppression list, which is never rotated (its hashes must match forever)."""

    def __init__(self, root_key: bytes) -> None:
        self._lookup = HmacSha256(_hkdf(root_key, b"assent/blind-index/lookup/v1"))
        self._suppression = HmacSha256(_hkdf(root_key, b"assent/blind-index/suppression/v1"))

    def lookup(self, kind: str, normalised: str) -> bytes:
        return self._lookup.digest(kind.encode() + b"\x00" + normalised.encode())

    def suppression(self, kind: str, normalised: str) -> bytes:
        return self._suppression.digest(kind.encode() + b"\x00" + normalised.encode())


def connector_hash_key(root: bytes) -> bytes:
    """The key of the keyed hashes a connector writes over erased values in an external system (`hash`): its own
    HKDF sub-key of the blind-index key, so those hashes match neither a lookup nor the suppression list."""
    return _hkdf(root, b"assent/connectors/erase-hash/v1")


def _hkdf(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def api_key_digest(key: str) -> str:
    # A fast hash on purpose: the key is 32 random bytes, so a slow password hash would only cost every request.
    return hashlib.sha256(key.encode()).hexdigest()
