"""The signing secret is sealed under the master keyring, bound to its subscription, and follows a master key
rotation (rotate_master_key reseals it), so the old key can be retired and deliveries still verify."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from consent.models import WebhookSubscription
from consent.webhooks.delivery import deliveries_run
from consent.webhooks.subscriptions import secret_open
from subjects import crypto, keys
from tests.factories import ConsentFactory
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def clear_keyring() -> Iterator[None]:
    keys.keyring.cache_clear()
    yield
    keys.keyring.cache_clear()


def test_a_sealed_secret_moved_to_another_subscription_does_not_open(subscribe: Callable[..., Any]) -> None:
    first, second = subscribe("/one"), subscribe("/two")
    WebhookSubscription.objects.filter(pk=second.pk).update(secret_sealed=first.secret_sealed)
    second.refresh_from_db()
    with pytest.raises(crypto.DecryptionError):
        secret_open(second)


def test_a_master_key_rotation_reseals_the_secret_and_the_old_key_can_go(
    subscribe: Callable[..., Any], receiver: Receiver, settings: Any, clear_keyring: None
) -> None:
    subscription = subscribe("/rotated")
    old_entry = settings.ASSENT_MASTER_KEYS[0]
    new_entry = ("k2027", os.urandom(32))
    with override_settings(ASSENT_MASTER_KEYS=[new_entry, old_entry]):
        keys.keyring.cache_clear()
        call_command("rotate_master_key", "--batch", "10")
    subscription.refresh_from_db()
    assert subscription.secret_kid == "k2027"
    with override_settings(ASSENT_MASTER_KEYS=[new_entry]):
        keys.keyring.cache_clear()
        ConsentFactory(email="vera@example.de")
        deliveries_run()
    (received,) = receiver.acknowledged("/rotated")
    assert received.payload is not None  # signed with the same secret the receiver holds
