"""A wrong key stops the process at start, naming the variable (API.md, Operating the service)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

GOOD = os.environ


def start_with(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={**GOOD, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ASSENT_MASTER_KEYS", "k1:c2hvcnQ", "ASSENT_MASTER_KEYS[0]: must decode to 32 bytes"),
        ("ASSENT_MASTER_KEYS", "", "ASSENT_MASTER_KEYS: must hold at least one"),
        ("ASSENT_BLIND_INDEX_KEY", "not base64 !!", "ASSENT_BLIND_INDEX_KEY"),
        ("ASSENT_LEDGER_KEY", "", "ASSENT_LEDGER_KEY: must be set"),
        ("ASSENT_SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "ASSENT_SIGNING_KEY"),
        ("ASSENT_LINK_KEY", "c2hvcnQ", "ASSENT_LINK_KEY: must decode to 32 bytes"),
        ("ASSENT_RATE_LIMIT", "lots", "ASSENT_RATE_LIMIT: 'lots' is not a whole number"),
        ("DEBUG", "maybe", "DEBUG: 'maybe' is not a boolean"),
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL"),
    ],
)
def test_a_bad_setting_stops_the_start_naming_the_variable(variable: str, value: str, message: str) -> None:
    result = start_with(**{variable: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_a_good_environment_starts() -> None:
    result = start_with()
    assert result.returncode == 0, result.stderr


def test_the_demo_generates_its_keys_once_and_reuses_them(tmp_path: object) -> None:
    env = {k: v for k, v in GOOD.items() if not k.startswith("ASSENT_") and k not in ("SECRET_KEY", "DATABASE_URL")}
    env.update(ASSENT_DEMO="1", ASSENT_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    code = "import django; django.setup(); from django.conf import settings as s; print(s.ASSENT_LEDGER_KEY.hex())"
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    assert (tmp_path / "demo.env").stat().st_mode & 0o777 == 0o600  # type: ignore[operator]
