"""Field encryption, key wrapping and the blind index, with the real AES-GCM and HMAC."""

from __future__ import annotations

import hmac
import os
import uuid

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from subjects import crypto
from subjects.columns import IDENTIFIER_VALUE


@pytest.fixture
def keyring() -> crypto.Keyring:
    return crypto.Keyring((("new", os.urandom(32)), ("old", os.urandom(32))))


def test_a_field_decrypts_only_in_its_own_row_and_column() -> None:
    key = crypto.new_data_key()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    blob = crypto.seal(key, b"kim@example.org", crypto.field_aad(alice, IDENTIFIER_VALUE))
    assert crypto.open_sealed(key, blob, crypto.field_aad(alice, IDENTIFIER_VALUE)) == b"kim@example.org"
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(key, blob, crypto.field_aad(bob, IDENTIFIER_VALUE))
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(key, blob, crypto.field_aad(alice, "profile.name"))


def test_a_ciphertext_has_the_version_byte_and_a_fresh_nonce() -> None:
    key = crypto.new_data_key()
    aad = crypto.field_aad(uuid.uuid4(), "x.y")
    one, two = crypto.seal(key, b"same", aad), crypto.seal(key, b"same", aad)
    assert one[:1] == crypto.VERSION
    assert len(one) == 1 + 12 + len(b"same") + 16
    assert one[1:13] != two[1:13]


def test_a_tampered_ciphertext_is_rejected() -> None:
    key = crypto.new_data_key()
    aad = crypto.field_aad(uuid.uuid4(), "x.y")
    blob = bytearray(crypto.seal(key, b"secret", aad))
    blob[-1] ^= 1
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(key, bytes(blob), aad)


def test_data_keys_wrapped_by_an_old_master_key_still_unwrap(keyring: crypto.Keyring) -> None:
    subject = uuid.uuid4()
    old_only = crypto.Keyring((keyring.keys[1],))
    kid, wrapped = old_only.wrap(b"k" * 32, subject)
    assert kid == "old"
    assert keyring.unwrap(kid, wrapped, subject) == b"k" * 32
    assert keyring.wrap(b"k" * 32, subject)[0] == "new"


def test_a_wrapped_key_is_bound_to_its_subject(keyring: crypto.Keyring) -> None:
    kid, wrapped = keyring.wrap(b"k" * 32, uuid.uuid4())
    with pytest.raises(crypto.DecryptionError):
        keyring.unwrap(kid, wrapped, uuid.uuid4())


def test_an_unknown_master_key_id_is_an_error(keyring: crypto.Keyring) -> None:
    subject = uuid.uuid4()
    _, wrapped = keyring.wrap(b"k" * 32, subject)
    with pytest.raises(crypto.DecryptionError, match="not configured"):
        keyring.unwrap("gone", wrapped, subject)


def test_the_blind_index_separates_kinds_and_the_suppression_list() -> None:
    index = crypto.BlindIndex(os.urandom(32))
    assert index.lookup("email", "a@b.de") == index.lookup("email", "a@b.de")
    assert index.lookup("email", "a@b.de") != index.lookup("crm_id", "a@b.de")
    assert index.lookup("email", "a@b.de") != index.suppression("email", "a@b.de")
    assert crypto.BlindIndex(os.urandom(32)).lookup("email", "a@b.de") != index.lookup("email", "a@b.de")


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_the_precomputed_hmac_gives_the_standard_library_s_bytes(key_length: int) -> None:
    key = os.urandom(key_length)
    keyed = crypto.HmacSha256(key)
    for message in (b"", b"email\x00a@b.de", os.urandom(1), os.urandom(64), os.urandom(1000)):
        assert keyed.digest(message) == hmac.digest(key, message, "sha256")
    # The states are copied, never consumed: the same message twice gives the same digest.
    assert keyed.digest(b"x") == keyed.digest(b"x")


def test_blind_indexes_stored_before_the_precomputed_hmac_still_match() -> None:
    # DESIGN.md: HMAC-SHA256 over kind || 0x00 || normalised value, keyed with an HKDF sub-key of the root key.
    root = os.urandom(32)
    sub_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"assent/blind-index/lookup/v1").derive(root)
    assert crypto.BlindIndex(root).lookup("email", "a@b.de") == hmac.digest(sub_key, b"email\x00a@b.de", "sha256")
