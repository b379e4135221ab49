"""The DPO's morning in a real browser: sign in with a TOTP code, open the request queue, a request, a subject and
the dashboard in headless Chromium (Debian's), with screenshots under artifacts/screenshots/."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractUser
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from consent.admin.staff import DPO
from consent.ledger.recording import ConsentCommand
from consent.services import consent_record
from subjects.identity import parse_reference
from subjects.models import RightsRequest
from tests.admin.conftest import PASSWORD, totp_token
from tests.security_headers import watch_policy_violations

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"headless Chromium is not installed ({CHROMIUM}); apt-get install chromium"
)


@dataclass(frozen=True)
class Morning:
    username: str
    token: str
    subject: str


def _command(reference: Any, action: str, channel: str, when: datetime) -> ConsentCommand:
    return ConsentCommand(
        reference=reference,
        purpose="newsletter",
        action=action,
        source="webshop",
        channel=channel,
        notice_version="2026-01" if action == "grant" else None,
        occurred_at=when,
    )


@pytest.fixture
def morning(transactional_db: None, make_staff: Callable[[str], tuple[AbstractUser, TOTPDevice]], anna: str) -> Morning:
    """Everything the database must hold, written before the browser starts: Playwright's sync API runs an event
    loop, and ORM calls made while it runs would open connections of their own that outlive the test."""
    now = timezone.now()
    for index, (kind, status, due_in) in enumerate(
        [("erasure", "awaiting_approval", -2), ("access", "processing", 4), ("objection", "received", 20)]
    ):
        RightsRequest.objects.create(
            kind=kind,
            status=status,
            subject_id=anna,
            fingerprint=f"browser-{index}",
            channel="phone",
            opened_by="staff:support",
            received_at=now - timedelta(days=30 - due_in),
            due_at=now + timedelta(days=due_in),
        )
    # Some weeks of newsletter history, so that the dashboard draws lines.
    for index in range(12):
        for channel, withdraws in (("sms", index % 3 == 0 and index < 10), ("push", index % 2 == 0 and index < 10)):
            reference = parse_reference({"email": f"customer{index}@example.org"})
            when = now - timedelta(weeks=11 - index, hours=1)
            consent_record(command=_command(reference, "grant", channel, when))
            if withdraws:
                consent_record(command=_command(reference, "withdraw", channel, when + timedelta(days=8)))
    user, device = make_staff(DPO)
    return Morning(user.get_username(), totp_token(device), anna)


@pytest.fixture
def page(live_server: Any, morning: Morning) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # This machine's network is closed: no background or component traffic (it is refused, and slow).
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-GB")
        blocked: list[str] = []
        opened = context.new_page()
        watch_policy_violations(opened, blocked)
        yield opened
        context.close()
        browser.close()
        assert blocked == [], "the Content-Security-Policy refused parts of an admin page:\n" + "\n".join(blocked)


def test_the_dpo_opens_the_queue_a_subject_and_the_dashboard(live_server: Any, morning: Morning, page: Any) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", morning.username)
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", morning.token)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    page.screenshot(path=str(SCREENSHOTS / "admin-index.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/subjects/rightsrequest/?open=yes")
    assert page.locator(".assent-due-overdue").count() == 1
    assert page.locator(".assent-due-soon").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "request-queue.png"), full_page=True)

    page.locator("#result_list a", has_text="Erasure").first.click()
    page.wait_for_selector("#request-steps")
    assert page.locator("input[name=approve]").count() == 1
    page.screenshot(path=str(SCREENSHOTS / "request-detail.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/subjects/subject/")
    page.fill("#searchbar", "anna.becker@example.org")
    page.click("#changelist-search input[type=submit]")
    page.wait_for_url(re.compile(r".*/admin/subjects/subject/\?qt=.*"))
    assert "anna.becker" not in page.url
    page.locator("#result_list a", has_text=morning.subject).first.click()
    page.wait_for_selector("#identifiers")
    assert "anna.becker@example.org" in page.inner_text("#identifiers")
    page.screenshot(path=str(SCREENSHOTS / "subject.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/dashboard/")
    page.wait_for_selector("#consent-charts svg")
    assert page.locator("#consent-charts svg").count() >= 1
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

    for name in ("admin-index", "request-queue", "request-detail", "subject", "dashboard"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
