"""The process's keys, built once from settings, and per-subject data keys."""

from __future__ import annotations

import functools
import uuid

from django.conf import settings

from subjects import crypto
from subjects.models import Subject


@functools.cache
def keyring() -> crypto.Keyring:
    return crypto.Keyring(tuple(settings.ASSENT_MASTER_KEYS))


@functools.cache
def blind_index() -> crypto.BlindIndex:
    return crypto.BlindIndex(settings.ASSENT_BLIND_INDEX_KEY)


def new_wrapped_key(subject_id: uuid.UUID) -> tuple[str, bytes, bytes]:
    """(kid, wrapped key, data key) for a new subject."""
    data_key = crypto.new_data_key()
    kid, wrapped = keyring().wrap(data_key, subject_id)
    return kid, wrapped, data_key


def data_key(subject: Subject) -> bytes:
    if subject.wrapped_key is None:
        raise crypto.DecryptionError("the subject's data key was destroyed")
    return keyring().unwrap(subject.key_kid, bytes(subject.wrapped_key), subject.id)


def encrypt_field(subject: Subject, key: bytes, column: str, value: str) -> bytes:
    return crypto.seal(key, value.encode(), crypto.field_aad(subject.id, column))


def decrypt_field(subject: Subject, key: bytes, column: str, blob: bytes) -> str:
    return crypto.open_sealed(key, bytes(blob), crypto.field_aad(subject.id, column)).decode()
