"""API clients: `create_api_client` hands out a key once and stores only its SHA-256; revoked keys stop working."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from consent.clients import client_revoke, clients_forget_cache
from consent.models import ApiClient
from tests.api import Api

CHECK = "/api/v1/consents/check"
CHECK_BODY = {"subject": {"email": "anna@example.de"}, "purpose": "newsletter", "channel": "sms"}


def create(*args: str) -> tuple[ApiClient, str, str]:
    """Run the command as an operator would; (the new client, the key from the last line, the whole output)."""
    out = io.StringIO()
    call_command("create_api_client", *args, stdout=out)
    text = out.getvalue()
    key = text.rstrip("\n").splitlines()[-1]
    return ApiClient.objects.get(name=args[0]), key, text


def test_create_api_client_prints_a_working_key_as_the_last_line(catalogue: dict[str, Any]) -> None:
    client, key, output = create("crm", "--scope", "consent:check", "--scope", "consent:read")

    assert key.startswith("ast_")
    assert len(key) >= 40
    assert "consent:check" in output
    assert client.scopes == ["consent:check", "consent:read"]
    assert client.purposes == []
    assert Api(key).post(CHECK, CHECK_BODY).status_code == 200


def test_only_the_sha256_of_the_key_is_stored(catalogue: dict[str, Any]) -> None:
    client, key, _ = create("crm", "--scope", "consent:check")

    assert client.key_digest == hashlib.sha256(key.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM consent_apiclient c WHERE id = %s", [client.pk])
        (stored_row,) = cursor.fetchone()
    secret = key.removeprefix(client.prefix)
    assert key not in stored_row
    assert secret not in stored_row
    assert secret[:12] not in stored_row


def test_two_clients_get_different_keys(catalogue: dict[str, Any]) -> None:
    _, first, _ = create("crm", "--scope", "consent:check")
    _, second, _ = create("shop", "--scope", "consent:check")

    assert first != second


def test_a_client_created_for_some_purposes_may_act_only_for_those(catalogue: dict[str, Any]) -> None:
    client, key, output = create("till", "--scope", "consent:check", "--purpose", "order-updates")

    assert client.purposes == ["order-updates"]
    assert "order-updates" in output
    assert Api(key).post(CHECK, CHECK_BODY).status_code == 403
    assert Api(key).post(CHECK, {**CHECK_BODY, "purpose": "order-updates"}).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("crm", "--scope", "consent:everything"), "consent:everything"),
        (("crm",), "scope"),
        (("crm", "--scope", "consent:check", "--purpose", "lottery"), "lottery"),
        (("  ", "--scope", "consent:check"), "name"),
    ],
    ids=["unknown scope", "no scope", "unknown purpose", "blank name"],
)
def test_create_api_client_refuses_bad_input_with_a_message_and_creates_nothing(
    catalogue: dict[str, Any], args: tuple[str, ...], message: str
) -> None:
    out = io.StringIO()

    with pytest.raises(CommandError, match=message):
        call_command("create_api_client", *args, stdout=out)

    assert ApiClient.objects.count() == 0
    assert out.getvalue() == ""


def test_create_api_client_refuses_a_name_that_exists(catalogue: dict[str, Any]) -> None:
    create("crm", "--scope", "consent:check")

    with pytest.raises(CommandError, match="exists already"):
        call_command("create_api_client", "crm", "--scope", "consent:read", stdout=io.StringIO())

    assert ApiClient.objects.count() == 1


def test_a_revoked_key_is_401(catalogue: dict[str, Any]) -> None:
    # given a client whose key works
    client, key, _ = create("crm", "--scope", "consent:check")
    assert Api(key).post(CHECK, CHECK_BODY).status_code == 200

    # when it is revoked
    client_revoke(client=client)
    clients_forget_cache()

    # then its key no longer opens the API
    response = Api(key).post(CHECK, CHECK_BODY)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    client.refresh_from_db()
    assert client.revoked_at is not None
