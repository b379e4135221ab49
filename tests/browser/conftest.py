"""Browser tests: Playwright (sync API) driving Debian's headless Chromium against pytest-django's live server,
with the real Celery worker of tests/integration for the mail and export work. Screenshots of every page (German)
go to artifacts/screenshots/ (git-ignored), kept as the run's artefacts, or to ASSENT_SCREENSHOTS_DIR when set
(`make screenshots` sets var/screenshots/).

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`; its path can be moved
with ASSENT_CHROMIUM."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.integration.conftest import (
    Worker,
    wait_for,
    worker,  # noqa: F401  (the real worker fixture, reused here)
)
from tests.security_headers import watch_policy_violations

CHROMIUM = os.environ.get("ASSENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(
    os.environ.get("ASSENT_SCREENSHOTS_DIR") or Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
)
SIGNIN_LINK = re.compile(r"https?://[^/\s]+(/portal/signin/[A-Za-z0-9_:\-]+)")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser per module. Playwright's sync API keeps an event loop running on this thread while it lives,
    which Django's async-safety check would take for async code calling the ORM; the tests' own ORM calls are
    plain synchronous code, so the check is switched off for exactly that time, and everything stops with the
    module (later modules run as usual)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package (apt-get install -y chromium "
            "fonts-liberation fonts-dejavu-core); `playwright install` is never used"
        )
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    engine: Playwright = sync_playwright().start()
    browser = engine.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()
        engine.stop()
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="session")
def screenshots() -> Path:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


class Site:
    """The live server as a person's browser sees it, German first."""

    def __init__(self, browser: Browser, base: str, screenshots: Path) -> None:
        self.browser = browser
        self.base = base
        self.screenshots = screenshots
        self.contexts: list[BrowserContext] = []
        self.blocked: list[str] = []  # what the Content-Security-Policy refused: a page that needs it is broken

    def new_page(
        self, locale: str = "de-DE", width: int = 1000, height: int = 800, headers: dict[str, str] | None = None
    ) -> Page:
        """A page in a fresh browser context; width=390, height=844 is a phone; `headers` go with every request
        (a browser's privacy settings, e.g. Global Privacy Control's Sec-GPC)."""
        context = self.browser.new_context(
            locale=locale, viewport={"width": width, "height": height}, extra_http_headers=headers or {}
        )
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        watch_policy_violations(page, self.blocked)
        return page

    def url(self, path: str) -> str:
        return self.base + path

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)

    def sign_in(self, page: Page, email: str, *, shots: tuple[str, str] | None = None) -> None:
        """Ask for a link on the start page, take it from the sent mail, open it in the same browser."""
        page.goto(self.url("/portal/"))
        if shots:
            self.shot(page, shots[0])
        page.get_by_label("Ihre E-Mail-Adresse").fill(email)
        page.get_by_role("button", name="Anmeldelink senden").click()
        page.wait_for_url("**/portal/sent")
        if shots:
            self.shot(page, shots[1])
        page.goto(self.url(self.link_for(email)))
        page.wait_for_url("**/portal/preferences")

    def link_for(self, email: str) -> str:
        sent = [m for m in mail.outbox if email in m.to]
        assert sent, f"no sign-in mail to {email}"
        match = SIGNIN_LINK.search(sent[-1].body)
        assert match, sent[-1].body
        return match.group(1)

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def site(
    transactional_db: None,
    live_server: Any,
    chromium: Browser,
    screenshots: Path,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    catalogue: dict[str, Any],
) -> Iterator[Site]:
    # Every link Assent hands out (sign-in, confirmation, unsubscribe, export) points at the live server; a worker
    # started after this inherits it through the environment.
    settings.ASSENT_BASE_URL = live_server.url
    monkeypatch.setenv("ASSENT_BASE_URL", live_server.url)
    site = Site(chromium, live_server.url, screenshots)
    yield site
    site.close()
    assert site.blocked == [], "the Content-Security-Policy refused parts of a page:\n" + "\n".join(site.blocked)


@pytest.fixture
def mail_worker(site: Site, request: pytest.FixtureRequest) -> Worker:
    """The real worker (tests/integration), started after the site so that its links point at the live server."""
    started: Worker = request.getfixturevalue("worker")
    return started


__all__ = ["Site", "Worker", "wait_for"]
