"""The mail server refusing (issue 11): a double opt-in link the worker cannot mail, and a portal sign-in link
gunicorn cannot mail, against a mail server of the test's own (tests/integration/processes.py: SmtpServer) that is
first not there (connection refused), then refuses every recipient (550), then defers every message (451), and at
last takes mail again.

- A double opt-in confirmation is retried by its task with growing pauses; a sign-in is retried by the person, whose
  page says it failed (its link lives ASSENT_SIGNIN_MINUTES and would travel through the broker as a task's
  argument; the person at the page knows at once and asks again).
- Until delivered, the mail is on the DPO's dashboard (kind, attempts, last error, times, the person's admin page
  where one is known) and nowhere reported as sent; no address is stored or logged in plain text.
- When the server takes mail again, the retry delivers it exactly once.

FAULT_ROUNDS (default 1) repeats the refusals for the full form; REFUSALS counts them."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client

from config.celery import app
from consent.double_opt_in import ConfirmationBusyError, confirmation_send
from consent.models import Confirmation
from subjects.models import UndeliveredMail
from tests.admin.conftest import dpo, make_staff, speaking, staff_groups
from tests.api import Api
from tests.catalogue import NEWSLETTER_NOTICE
from tests.integration.processes import Gunicorn, SmtpServer, Worker, wait_for

__all__ = ["dpo", "make_staff", "staff_groups"]  # the DPO's signed-in admin client

ROUNDS = max(1, int(os.environ.get("FAULT_ROUNDS", "1")))
ANNA = "anna@example.de"
DASHBOARD = "/admin/dashboard/"
FAULTS: Counter[str] = Counter()

pytestmark = [pytest.mark.worker, pytest.mark.faults, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def _report_faults() -> Iterator[None]:
    yield
    print(f"\nmail faults injected: {dict(FAULTS)}")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()  # not started: its port refuses connections
    yield server
    FAULTS["refusals (550/451)"] += server.refusals
    server.stop()


def smtp_env(server: SmtpServer) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(server.port),
        "EMAIL_TIMEOUT": "30",
    }


def grant_by_email(api: Api) -> str:
    """A double opt-in grant for Anna's newsletter by e-mail through the API; the subject's id."""
    response = api.post(
        "/api/v1/consents",
        {
            "subject": {"email": ANNA},
            "purpose": "newsletter",
            "channel": "email",
            "action": "grant",
            "notice_version": NEWSLETTER_NOTICE,
            "source": "webshop",
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    subject: str = response.json()["subject"]
    return subject


def use_smtp(settings: Any, server: SmtpServer) -> None:
    """This test process sends through the test's mail server too, as a second worker would."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 5


def open_mail(kind: str) -> UndeliveredMail | None:
    return UndeliveredMail.objects.filter(kind=kind, delivered_at=None).first()


def failed_with(kind: str, error: str, attempts: int) -> UndeliveredMail | None:
    """The open undelivered mail once it has failed at least `attempts` times, the last with `error`."""
    row = open_mail(kind)
    return row if row is not None and row.attempts >= attempts and row.last_error.startswith(error) else None


def assert_no_address_stored(address: str) -> None:
    for row in UndeliveredMail.objects.values():
        assert address not in repr(row), row


def dashboard(client: Client) -> str:
    response = speaking(client, "en").get(DASHBOARD)
    assert response.status_code == 200
    return response.content.decode()


def undelivered_section(page: str) -> str:
    match = re.search(r'<div class="assent-card[^"]*" id="undelivered-mails">(.*?)</div>', page, re.S)
    assert match, "the dashboard has no undelivered-mails section"
    return match.group(1)


# ---------------------------------------------------------------------------------------------------------
# Double opt-in confirmation, mailed by the worker
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def smtp_worker(transactional_db: None, tmp_path: Path, smtp: SmtpServer) -> Iterator[Worker]:
    app.control.purge()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    worker = Worker(mail_dir, tmp_path / "worker.log", env=smtp_env(smtp), loglevel="info")
    worker.start()
    yield worker
    worker.stop()


def test_a_confirmation_the_mail_server_refuses_is_retried_shown_to_the_dpo_never_called_sent_and_delivered_once(
    api: Api, smtp: SmtpServer, smtp_worker: Worker, dpo: Client, settings: Any
) -> None:
    # given a double opt-in grant by e-mail, while the mail server is not there
    subject = grant_by_email(api)
    confirmation = Confirmation.objects.get()

    # when the worker tries to mail the link: connection refused, then every recipient refused (550), then every
    # message deferred (451)
    wait_for(lambda: failed_with("confirmation", "ConnectionRefusedError", 1), what="a refused connection")
    attempts = 1
    for _ in range(min(ROUNDS, 2)):  # the task's pauses double each time: more rounds would wait minutes
        for mode, error in (("refuse", "SMTPRecipientsRefused 550"), ("defer", "SMTPDataError 451")):
            smtp.start(mode)
            row = wait_for(lambda e=error, a=attempts: failed_with("confirmation", e, a + 1), what=error)
            attempts = row.attempts

    # then it was retried, and nothing says it was sent
    confirmation.refresh_from_db()
    assert confirmation.mailed_at is None
    assert smtp.messages == []
    state = api.get(f"/api/v1/subjects/{subject}/consents").json()["states"]
    assert [(s["channel"], s["state"]) for s in state] == [("email", "pending_confirmation")]

    # and the DPO sees it on the dashboard: kind, attempts, last error, times and the person's page, no address
    before = open_mail("confirmation")
    assert before is not None
    assert (before.reference, str(before.subject_id)) == (str(confirmation.pk), subject)
    section = undelivered_section(dashboard(dpo))
    # The worker goes on retrying while the page renders: it shows the attempts of some moment in between.
    row = open_mail("confirmation")
    assert row is not None
    assert re.search(r"assent-figure[^>]*>\s*1\s*<", section), section
    assert "confirmation" in section
    assert any(f"<td>{n}</td>" in section for n in range(before.attempts, row.attempts + 1)), section
    assert before.last_error in section or row.last_error in section
    assert f"/admin/subjects/subject/{subject}/change/" in section
    assert ANNA not in section
    assert_no_address_stored(ANNA)
    # and the worker's log holds no address either (the server's refusal repeated it)
    assert ANNA not in smtp_worker.log()

    # when the mail server takes mail again
    smtp.start("accept")
    wait_for(lambda: Confirmation.objects.filter(pk=confirmation.pk, mailed_at__isnull=False).exists(), what="mail")

    # then the link was delivered exactly once, and it leaves the DPO's list
    assert len(smtp.to(ANNA)) == 1
    assert "/confirm/" in smtp.to(ANNA)[0]
    assert open_mail("confirmation") is None
    assert UndeliveredMail.objects.get().delivered_at is not None
    assert "Every mail to a person was taken" in undelivered_section(dashboard(dpo))
    # and a late duplicate of the task (or beat's resend) sends nothing more
    use_smtp(settings, smtp)
    assert confirmation_send(confirmation_id=confirmation.pk) is False
    assert len(smtp.to(ANNA)) == 1
    FAULTS["confirmation attempts failed"] += attempts


def test_a_confirmation_is_handed_to_the_mail_server_by_one_task_at_a_time(
    api: Api, smtp: SmtpServer, smtp_worker: Worker, settings: Any
) -> None:
    # given a mail server that takes the worker's mail but is slow to say so
    smtp.start("stall")
    grant_by_email(api)
    confirmation = Confirmation.objects.get()
    wait_for(smtp.stalled.is_set, what="the worker's mail waiting for the server's answer")

    # when a second task (a retry, beat's resend or a redelivery) mails the same link meanwhile
    use_smtp(settings, smtp)
    with pytest.raises(ConfirmationBusyError):
        confirmation_send(confirmation_id=confirmation.pk)

    # then it hands nothing to the server, and says so by an error its task retries later
    assert len(smtp.to(ANNA)) == 1
    # and once the server answers, the link was mailed exactly once, and a later task sends nothing
    smtp.release()
    wait_for(lambda: Confirmation.objects.filter(pk=confirmation.pk, mailed_at__isnull=False).exists(), what="mail")
    assert confirmation_send(confirmation_id=confirmation.pk) is False
    assert len(smtp.to(ANNA)) == 1


# ---------------------------------------------------------------------------------------------------------
# Portal sign-in, mailed by gunicorn while the person waits
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def smtp_gunicorn(transactional_db: None, tmp_path: Path, smtp: SmtpServer) -> Iterator[Gunicorn]:
    server = Gunicorn(tmp_path / "gunicorn.log", workers=1, env=smtp_env(smtp))
    server.start()
    yield server
    server.stop()


class Browser:
    """A person's browser on the portal over HTTP: cookies kept, the form's CSRF token sent back."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)

    def ask_for_link(self, email: str) -> httpx.Response:
        form = self.http.get("/portal/")
        assert form.status_code == 200, form.text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, "the sign-in page has no CSRF token"
        return self.http.post("/portal/", data={"email": email, "csrfmiddlewaretoken": token.group(1)})


def test_a_signin_mail_the_server_refuses_says_so_to_the_person_and_the_dpo_and_their_retry_delivers_once(
    catalogue: dict[str, Any], smtp: SmtpServer, smtp_gunicorn: Gunicorn, dpo: Client
) -> None:
    browser = Browser(smtp_gunicorn.base)
    sent_page = browser.http.get("/portal/sent").text
    sent_heading = re.search(r"<h1>(.*?)</h1>", sent_page, re.S)
    assert sent_heading

    # when a person asks for a sign-in link while the mail server is not there, refuses (550), defers (451)
    failures = [("ConnectionRefusedError", None)]
    for _ in range(ROUNDS):
        failures += [("SMTPRecipientsRefused 550", "refuse"), ("SMTPDataError 451", "defer")]
    for attempt, (error, mode) in enumerate(failures, start=1):
        if mode:
            smtp.start(mode)
        response = browser.ask_for_link(ANNA)

        # then the page says it could not send, never that a link is on its way
        assert response.status_code == 503, response.text
        assert "Location" not in response.headers
        assert sent_heading.group(1) not in response.text
        # and the DPO's list holds it, without the address or a person (a sign-in never looks the address up)
        row = failed_with("signin", error, attempt)
        assert row is not None, list(UndeliveredMail.objects.values())
        assert (row.attempts, row.subject_id) == (attempt, None)
    FAULTS["sign-in attempts failed"] += len(failures)
    section = undelivered_section(dashboard(dpo))
    assert "sign" in section.lower()
    assert f"<td>{len(failures)}</td>" in section
    assert "unknown" in section
    assert ANNA not in section
    assert_no_address_stored(ANNA)
    assert ANNA not in smtp_gunicorn.log()
    assert smtp.messages == []

    # when the server takes mail again and the person asks again
    smtp.start("accept")
    response = browser.ask_for_link(ANNA)

    # then the link is on its way, delivered exactly once, and it leaves the DPO's list
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/portal/sent")
    assert len(smtp.to(ANNA)) == 1
    assert "/portal/signin/" in smtp.to(ANNA)[0]
    assert open_mail("signin") is None
    # and asking again at once sends nothing more (the link just mailed still works)
    assert browser.ask_for_link(ANNA).status_code == 302
    assert len(smtp.to(ANNA)) == 1
