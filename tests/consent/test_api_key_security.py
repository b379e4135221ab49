"""API keys (issue 9 item 10): a revocation takes effect at once in every process; failed authentications are
limited per client address, through Redis, and still when Redis is down."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from config import ratelimit
from consent.models import ApiClient
from subjects.crypto import api_key_digest
from tests.api import Api

CHECK = "/api/v1/consents/check"
CHECK_BODY = {"subject": {"email": "anna@example.de"}, "purpose": "newsletter", "channel": "sms"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_local_counters() -> Any:
    ratelimit.forget_local()
    yield
    ratelimit.forget_local()


def check_from(address: str, key: str) -> Any:
    return APIClient().post(CHECK, CHECK_BODY, format="json", REMOTE_ADDR=address, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_by_another_process_is_refused_at_once_here(catalogue: dict[str, Any], make_client: Any) -> None:
    key = make_client("consent:check")
    api = Api(key)
    assert api.post(CHECK, CHECK_BODY).status_code == 200  # this process has now seen the key as valid

    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"}
    script = (
        "from consent.clients import client_revoke; from consent.models import ApiClient; "
        f"client_revoke(client=ApiClient.objects.get(key_digest={api_key_digest(key)!r}))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert ApiClient.objects.get(key_digest=api_key_digest(key)).revoked_at is not None

    response = api.post(CHECK, CHECK_BODY)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


@override_settings(ASSENT_AUTH_FAILURES=3)
def test_failed_authentications_from_one_address_are_429_with_retry_after(
    catalogue: dict[str, Any], make_client: Any
) -> None:
    good = make_client("consent:check")
    for _ in range(3):
        assert check_from("198.51.100.7", "ast_wrong").status_code == 401
    blocked = check_from("198.51.100.7", "ast_wrong")
    assert blocked.status_code == 429
    assert blocked["Content-Type"].startswith("application/problem+json")
    assert blocked.json()["code"] == "rate_limited"
    assert 1 <= int(blocked["Retry-After"]) <= 60
    # Once blocked, even the right key is not confirmed from that address; another address is unaffected.
    assert check_from("198.51.100.7", good).status_code == 429
    assert check_from("198.51.100.8", good).status_code == 200
    assert check_from("198.51.100.8", "ast_wrong").status_code == 401


@override_settings(ASSENT_AUTH_FAILURES=3, ASSENT_RATELIMIT_REDIS_URL="redis://127.0.0.1:1/0")
def test_with_redis_unreachable_the_limit_still_holds_and_one_warning_is_logged(
    catalogue: dict[str, Any], make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = make_client("consent:check")
    with caplog.at_level(logging.WARNING, logger="config.ratelimit"):
        for _ in range(3):
            assert check_from("198.51.100.9", "ast_wrong").status_code == 401
        assert check_from("198.51.100.9", "ast_wrong").status_code == 429
        assert check_from("198.51.100.9", good).status_code == 429
        assert check_from("198.51.100.10", good).status_code == 200
    warnings = [r for r in caplog.records if r.name == "config.ratelimit" and "unreachable" in r.getMessage()]
    assert len(warnings) == 1
