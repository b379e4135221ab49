"""Rotating the master key re-wraps data keys only; data written before and after still decrypts."""

from __future__ import annotations

import base64
import os

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from subjects import keys
from subjects.columns import IDENTIFIER_VALUE
from subjects.identity import parse_reference
from subjects.keys import data_key, decrypt_field
from subjects.models import Identifier, Subject
from subjects.services import subject_create


def _identifier_value(subject: Subject) -> str:
    identifier = Identifier.objects.get(subject=subject)
    return decrypt_field(
        subject, data_key(subject), IDENTIFIER_VALUE, bytes(identifier.value_enc), row_id=identifier.pk
    )


@pytest.fixture
def clear_keyring() -> None:
    keys.keyring.cache_clear()
    yield
    keys.keyring.cache_clear()


def test_rotation_rewraps_every_data_key_and_all_data_still_decrypts(db: None, settings, clear_keyring) -> None:
    # Given a subject written under the old master key
    from django.utils import timezone

    before = subject_create(reference=parse_reference({"email": "before@example.org"}), now=timezone.now())
    old_entry = settings.ASSENT_MASTER_KEYS[0]
    new_entry = ("k2027", os.urandom(32))
    # When a new master key is put first and the rotation runs
    with override_settings(ASSENT_MASTER_KEYS=[new_entry, old_entry]):
        keys.keyring.cache_clear()
        after = subject_create(reference=parse_reference({"email": "after@example.org"}), now=timezone.now())
        call_command("rotate_master_key", "--batch", "1")
        # Then every data key is under the new key and both subjects' data decrypts
        assert set(Subject.objects.values_list("key_kid", flat=True)) == {"k2027"}
        before.refresh_from_db()
        after.refresh_from_db()
        assert _identifier_value(before) == "before@example.org"
        assert _identifier_value(after) == "after@example.org"
    # And the old master key can be retired: only the new one is needed now
    with override_settings(ASSENT_MASTER_KEYS=[new_entry]):
        keys.keyring.cache_clear()
        assert _identifier_value(before) == "before@example.org"


def test_rotation_without_the_old_key_fails_clearly_and_changes_nothing(db: None, settings, clear_keyring) -> None:
    from django.utils import timezone

    subject_create(reference=parse_reference({"email": "kim@example.org"}), now=timezone.now())
    with override_settings(ASSENT_MASTER_KEYS=[("lonely", os.urandom(32))]):
        keys.keyring.cache_clear()
        with pytest.raises(CommandError, match="old master key"):
            call_command("rotate_master_key")
    assert Subject.objects.get().key_kid == settings.ASSENT_MASTER_KEYS[0][0]


def test_a_bare_master_key_gets_the_kid_of_its_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.env import master_keys

    raw = os.urandom(32)
    monkeypatch.setenv("ASSENT_MASTER_KEYS", base64.urlsafe_b64encode(raw).decode().rstrip("="))
    [(kid, key)] = master_keys("ASSENT_MASTER_KEYS")
    import hashlib

    assert kid == hashlib.sha256(raw).hexdigest()[:8]
    assert key == raw
