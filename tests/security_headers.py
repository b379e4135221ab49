"""The security headers every response of portal, admin and API must carry (config/security.py), checked on every
response any test receives through Django's test client (tests/conftest.py), and per area in
tests/config/test_deployment.py."""

from __future__ import annotations

from typing import Any

# Directives each area's policy must hold, whatever else it allows.
NEVER_FRAMED = ("frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'")
NO_SCRIPT = "default-src 'none'"


def csp_directives(response: Any) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    parts = (part.strip() for part in header.split(";"))
    return {part.split(" ", 1)[0]: part for part in parts if part}


def security_header_problems(path: str, response: Any) -> list[str]:
    """Every missing or weak header of one response, as readable lines (empty: all present)."""
    problems = []
    headers = response.headers
    directives = csp_directives(response)
    if not directives:
        problems.append("no Content-Security-Policy")
    for wanted in NEVER_FRAMED:
        name = wanted.split(" ", 1)[0]
        if directives and directives.get(name) != wanted:
            problems.append(f"CSP lacks {wanted!r}: {headers.get('Content-Security-Policy')!r}")
    script = directives.get("script-src") or directives.get("default-src", "")
    if "'unsafe-inline'" in script or "'unsafe-eval'" in script or "*" in script.split():
        problems.append(f"CSP allows inline or foreign scripts: {script!r}")
    if path.startswith(("/portal/", "/u/", "/confirm/", "/api/v1/")) and directives.get("default-src") != NO_SCRIPT:
        problems.append(f"CSP of a people's page or API answer is not {NO_SCRIPT!r}")
    if headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("X-Content-Type-Options is not nosniff")
    if headers.get("X-Frame-Options") != "DENY":
        problems.append("X-Frame-Options is not DENY")
    if headers.get("Referrer-Policy") not in ("same-origin", "no-referrer"):
        problems.append(f"Referrer-Policy is {headers.get('Referrer-Policy')!r}")
    return problems


def watch_policy_violations(page: Any, into: list[str]) -> None:
    """In a browser test: collect what the Content-Security-Policy refused (Chromium says so on the console), so
    the test can fail on a page that needs something its policy forbids."""

    def seen(message: Any) -> None:
        if "Content Security Policy" in message.text:
            into.append(f"{page.url}: {message.text}")

    page.on("console", seen)
