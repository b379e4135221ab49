"""Deployment hygiene: production settings pass Django's deployment checklist, https is enforced (also behind a
TLS-ending proxy), every area answers with its security headers, and no secret lives in the repository."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from config.env import new_signing_key_pem
from tests.security_headers import csp_directives, security_header_problems

PROJECT = Path(__file__).resolve().parents[2]


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def production_env(**extra: str) -> dict[str, str]:
    """What an operator sets (README, "Running in production"), and nothing from the test run's environment."""
    keep = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return {
        **keep,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "SECRET_KEY": base64.urlsafe_b64encode(os.urandom(48)).decode(),
        "ALLOWED_HOSTS": "privacy.example.com",
        "ASSENT_BASE_URL": "https://privacy.example.com",
        "ASSENT_MASTER_KEYS": f"k1:{_key()}",
        "ASSENT_BLIND_INDEX_KEY": _key(),
        "ASSENT_LEDGER_KEY": _key(),
        "ASSENT_SIGNING_KEY": new_signing_key_pem(),
        "ASSENT_VAR_DIR": str(PROJECT / "var" / "deploy-check"),
        **extra,
    }


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_deployment_checklist_is_clean_with_production_settings() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=PROJECT,
        env=production_env(ASSENT_PROXY_SSL_HEADER="X-Forwarded-Proto"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_bad_proxy_header_name_stops_the_process_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=production_env(ASSENT_PROXY_SSL_HEADER="X-Forwarded-Proto: https"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ASSENT_PROXY_SSL_HEADER" in result.stderr


# A request in a process of its own with production settings: plain http is redirected to https; behind a proxy
# that says https, the answer comes with HSTS and Secure cookies.
PROBE = """
import json, django
django.setup()
from django.test import Client
c = Client(HTTP_HOST="privacy.example.com")
plain = c.get("/portal/")
proxied = c.get("/portal/", HTTP_X_FORWARDED_PROTO="https")
direct_https = c.get("/portal/", secure=True)
print(json.dumps({
    "plain": [plain.status_code, plain.headers.get("Location", "")],
    "proxied": [proxied.status_code, proxied.headers.get("Strict-Transport-Security", "")],
    "https": [direct_https.status_code, direct_https.headers.get("Strict-Transport-Security", "")],
    "cookies": {name: bool(morsel["secure"]) for name, morsel in direct_https.cookies.items()},
}))
"""


def _probe(**extra: str) -> dict[str, Any]:
    result = run_python(PROBE, production_env(**extra))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_production_redirects_http_and_sends_hsts_behind_a_proxy(db: None) -> None:
    seen = _probe(ASSENT_PROXY_SSL_HEADER="X-Forwarded-Proto")
    assert seen["plain"] == [301, "https://privacy.example.com/portal/"]
    status, hsts = seen["proxied"]
    assert status == 200
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert seen["https"][0] == 200
    assert seen["cookies"], "the portal's sign-in page sets its CSRF cookie"
    assert all(seen["cookies"].values()), f"a cookie without Secure: {seen['cookies']}"


def test_without_the_proxy_setting_a_forwarded_proto_is_not_believed(db: None) -> None:
    seen = _probe()
    assert seen["proxied"][0] == 301  # a client cannot claim https by sending the header itself


def test_hsts_and_the_redirect_can_be_switched_off_for_an_operator_who_terminates_elsewhere(db: None) -> None:
    seen = _probe(ASSENT_SSL_REDIRECT="0", ASSENT_HSTS_SECONDS="0")
    assert seen["plain"][0] == 200
    assert seen["https"][1] == ""


# -- security headers, per area ------------------------------------------------------------------------------


AREA_PAGES = [
    ("portal", "/portal/", "default-src 'none'"),
    ("portal error page", "/portal/nowhere/", "default-src 'none'"),
    ("unsubscribe", "/u/not-a-token/", "default-src 'none'"),
    ("confirmation", "/confirm/not-a-token/", "default-src 'none'"),
    ("admin sign-in", "/admin/login/", "default-src 'self'"),
    ("API answer", "/api/v1/consents/check", "default-src 'none'"),
    ("API schema", "/api/schema/", "default-src 'none'"),
    ("API docs", "/api/docs/", "default-src 'self'"),
    ("static file", "/static/portal/portal.css", "default-src 'none'"),
    ("unknown page", "/nowhere/", "default-src 'none'"),
]


@pytest.mark.parametrize(("area", "path", "default"), AREA_PAGES, ids=[a for a, _, _ in AREA_PAGES])
def test_every_area_answers_with_its_security_headers(
    db: None, client: Client, area: str, path: str, default: str
) -> None:
    response = client.get(path)
    assert security_header_problems(path, response) == []
    assert csp_directives(response)["default-src"] == default
    assert response.headers["Permissions-Policy"].startswith("camera=()")


def test_the_pages_from_e_mails_run_no_script_and_the_portal_and_admin_only_their_own(db: None, client: Client) -> None:
    portal = csp_directives(client.get("/portal/"))
    unsubscribe = csp_directives(client.get("/u/not-a-token/"))
    confirmation = csp_directives(client.get("/confirm/not-a-token/"))
    admin = csp_directives(client.get("/admin/login/"))
    assert "script-src" not in unsubscribe  # falls back to default-src 'none': no script at all
    assert "script-src" not in confirmation
    assert portal["script-src"] == "script-src 'self'"  # its own files only, never inline
    assert admin["script-src"] == "script-src 'self'"


def test_the_api_docs_load_their_start_up_script_from_this_origin(db: None, client: Client) -> None:
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page.replace(" ", "").lower()  # no inline script: the CSP would block it
    assert re.search(r'<script src="[^"]*\?script="', page), "Swagger UI's start-up script is a file of its own"


# -- no secret in the repository -----------------------------------------------------------------------------

# Key-shaped strings: PEM private keys, API keys of Assent's own shape, 32-byte keys in base64url, other services'
# well-known key formats. Test fixtures may hold throw-away keys only under FIXTURE_DIRS.
KEY_SHAPES = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}"),
    "Assent API key": re.compile(r"\bast_[A-Za-z0-9_-]{40,}"),
    "32-byte key (base64url)": re.compile(r"(?<![A-Za-z0-9_+/-])[A-Za-z0-9_-]{43}=?(?![A-Za-z0-9_+/=-])"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Slack or GitHub token": re.compile(r"\b(xox[abpr]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{36,})\b"),
}
FIXTURE_DIRS = ("tests/fixtures/",)


def _looks_random(text: str) -> bool:
    """A real key is random: high entropy and a mix of cases and digits (a long identifier is not)."""
    counts = Counter(text)
    entropy = -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
    classes = sum(bool(re.search(pattern, text)) for pattern in ("[a-z]", "[A-Z]", "[0-9]"))
    return entropy > 4.0 and classes == 3


def key_shaped_strings(text: str) -> list[tuple[str, str]]:
    found = []
    for shape, pattern in KEY_SHAPES.items():
        for match in pattern.finditer(text):
            value = match.group(0)
            if shape == "32-byte key (base64url)" and not _looks_random(value):
                continue
            found.append((shape, value[:12] + "…"))
    return found


def test_the_secret_finder_finds_what_it_looks_for() -> None:
    key = _key()
    assert key_shaped_strings(f"ASSENT_LEDGER_KEY={key}") == [("32-byte key (base64url)", key[:12] + "…")]
    assert key_shaped_strings(new_signing_key_pem())[0][0] == "PEM private key"
    assert key_shaped_strings("Authorization: Bearer ast_" + "Ab3_" * 11)[0][0] == "Assent API key"
    assert key_shaped_strings("test_a_person_who_withdraws_is_never_mailed_again") == []
    assert key_shaped_strings("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----") == []  # no key in it


def test_no_secret_is_committed() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    findings = []
    for name in filter(None, (f.decode() for f in files)):
        if name.startswith(FIXTURE_DIRS) or not (PROJECT / name).is_file():
            continue
        text = (PROJECT / name).read_bytes().decode("utf-8", errors="replace")
        findings += [f"{name}: {shape} {value}" for shape, value in key_shaped_strings(text)]
    assert findings == [], "key-shaped strings in the repository:\n" + "\n".join(findings)
