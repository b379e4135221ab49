"""Keys of the rights machinery that are not a subject's data key.

- Vault keys (retention store, consent evidence store): random, wrapped by the first master key like a data key
  (associated data names the purpose and the vault id), so master-key rotation is re-wrapping only; destroyed when
  their store is purged.
- Export keys: HKDF of the subject's data key and the export's id, so an erasure (which destroys the data key)
  crypto-shreds every copy of an export, including those in file backups. A request about nobody has no data key:
  its export (a "no data found" report) derives from the current master key, whose kid is stored.
- The request fingerprint key: HKDF of the blind-index key, so identical open requests are found without
  storing who or what they are about.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import uuid
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from subjects import crypto
from subjects.keys import keyring
from subjects.models import VaultKey


def _derive(root: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(root)


def _vault_aad(purpose: str, vault_id: uuid.UUID) -> bytes:
    return b"vault-key|" + purpose.encode() + b"|" + vault_id.bytes


def vault_key_get_or_create(*, purpose: str, subject_id: uuid.UUID, now: datetime) -> tuple[VaultKey, bytes]:
    """The store key for one erased person, created once. The caller holds the subject's row lock."""
    vault = VaultKey.objects.filter(purpose=purpose, subject_id=subject_id).first()
    if vault is not None and vault.wrapped_key is not None:
        return vault, vault_key_open(vault)
    key = crypto.new_data_key()
    vault_id = vault.id if vault is not None else uuid.uuid4()
    kid, master = keyring().keys[0]
    wrapped = crypto.seal(master, key, _vault_aad(purpose, vault_id))
    if vault is None:
        vault = VaultKey.objects.create(
            id=vault_id, purpose=purpose, subject_id=subject_id, key_kid=kid, wrapped_key=wrapped, created_at=now
        )
    else:  # destroyed by a purge, needed again (a replayed erasure after a backup restore)
        VaultKey.objects.filter(pk=vault.pk).update(key_kid=kid, wrapped_key=wrapped, destroyed_at=None)
    return vault, key


def vault_key_open(vault: VaultKey) -> bytes:
    if vault.wrapped_key is None:
        raise crypto.DecryptionError("this store's key was destroyed")
    for kid, master in keyring().keys:
        if kid == vault.key_kid:
            return crypto.open_sealed(master, bytes(vault.wrapped_key), _vault_aad(vault.purpose, vault.id))
    raise crypto.DecryptionError(f"master key {vault.key_kid!r} is not configured")


def vault_key_destroy(*, vault_id: uuid.UUID, now: datetime) -> None:
    VaultKey.objects.filter(pk=vault_id).update(wrapped_key=None, destroyed_at=now)


def vault_keys_rewrap() -> int:
    """Re-wrap every live vault key under the first master key (run with rotate_master_key)."""
    current, master = keyring().keys[0]
    done = 0
    for vault in VaultKey.objects.filter(wrapped_key__isnull=False).exclude(key_kid=current):
        key = vault_key_open(vault)
        done += VaultKey.objects.filter(pk=vault.pk, key_kid=vault.key_kid).update(
            key_kid=current, wrapped_key=crypto.seal(master, key, _vault_aad(vault.purpose, vault.id))
        )
    return done


def export_key(*, root: bytes, blob_id: uuid.UUID, label: str) -> bytes:
    return _derive(root, b"assent/rights/export/v1|" + label.encode() + b"|" + blob_id.bytes)


def master_key(kid: str | None = None) -> tuple[str, bytes]:
    for known, key in keyring().keys:
        if kid is None or known == kid:
            return known, key
    raise crypto.DecryptionError(f"master key {kid!r} is not configured")


@functools.cache
def _fingerprint_key() -> bytes:
    return _derive(settings.ASSENT_BLIND_INDEX_KEY, b"assent/rights/fingerprint/v1")


def fingerprint(parts: list[bytes]) -> str:
    message = b"\x00".join(hashlib.sha256(p).digest() for p in parts)
    return hmac.new(_fingerprint_key(), message, "sha256").hexdigest()
