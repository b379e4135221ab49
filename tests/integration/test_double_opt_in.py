"""Double opt-in (UWG §7(2) Nr. 2) end to end: the API records a pending grant, a real Celery worker mails the
link, the person's own click on the page's button confirms it, and only then does the check allow e-mail marketing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone
from prometheus_client.metrics import MetricWrapperBase

from consent.double_opt_in import confirmation_url
from consent.models import Confirmation, ConsentEvent, ConsentState
from subjects.models import Subject
from tests.api import Api
from tests.integration.conftest import Worker, wait_for

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
LINK = re.compile(r"http://testserver(/confirm/[A-Za-z0-9_:.\-]+)")
ANNA = {"email": "anna@example.de"}


def grant_by_email(api: Api, subject: dict[str, Any] = ANNA, **overrides: Any) -> Any:
    payload = {
        "subject": subject,
        "purpose": "newsletter",
        "channel": "email",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
        **overrides,
    }
    return api.post(CONSENTS, {k: v for k, v in payload.items() if v is not None})


def check_email(api: Api, subject: dict[str, Any] = ANNA) -> dict[str, Any]:
    response = api.post(CHECK, {"subject": subject, "purpose": "newsletter", "channel": "email"})
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def ledger() -> tuple[int, list[tuple[str, str]], int]:
    """(events, [(channel, status)], used confirmations): what a click could change."""
    states = list(ConsentState.objects.order_by("channel").values_list("channel", "status"))
    return ConsentEvent.objects.count(), states, Confirmation.objects.filter(used_at__isnull=False).count()


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "the confirmation page has no form with a CSRF token"
    return match.group(1)


@pytest.mark.worker
def test_a_double_opt_in_grant_is_allowed_only_after_the_person_confirms_the_mailed_link(
    worker: Worker, api: Api
) -> None:
    # given a newsletter grant by e-mail through the API
    response = grant_by_email(api)
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "pending_confirmation"
    subject = response.json()["subject"]

    # then the check denies until the person confirms
    assert check_email(api)["reason"] == "pending_confirmation"
    assert check_email(api)["allowed"] is False

    # when the worker mails the confirmation link to the address of the grant
    mails = wait_for(lambda: worker.mails() if LINK.search(worker.mails()) else "", what="the confirmation mail")
    assert "To: anna@example.de" in mails
    assert "Newsletter" in mails
    link = LINK.search(mails)
    assert link is not None
    path = link.group(1)
    wait_for(lambda: Confirmation.objects.filter(mailed_at__isnull=False).exists(), what="mailed_at")

    # and the person's browser (or a mail scanner) opens it
    browser = Client(enforce_csrf_checks=True)
    before = ledger()
    page = browser.get(path)

    # then the page shows what is confirmed and a button, and nothing changed yet
    assert page.status_code == 200
    html = page.content.decode()
    assert "Newsletter" in html
    assert "Wir senden Ihnen unseren Newsletter." in html
    assert '<form method="post">' in html
    assert ledger() == before
    assert check_email(api)["reason"] == "pending_confirmation"

    # when the person presses the button
    confirmed = browser.post(path, {"csrfmiddlewaretoken": csrf_token(html)}, REMOTE_ADDR="203.0.113.77")

    # then the consent is granted, and the ledger holds the person's own act with its evidence
    assert confirmed.status_code == 200
    assert "bestätigt" in confirmed.content.decode()
    assert check_email(api) == {
        "allowed": True,
        "reason": "granted",
        "legal_basis": "consent",
        "subject": subject,
        "purpose": "newsletter",
        "channel": "email",
    }
    confirm = ConsentEvent.objects.get(action="confirm")
    assert (confirm.source, confirm.actor, confirm.seq, confirm.notice_version) == (
        "double-opt-in",
        "subject",
        2,
        "2026-01",
    )
    history = api.get(f"/api/v1/subjects/{subject}/consents/history").json()["results"]
    assert [(e["action"], e["source"]) for e in history] == [("grant", "webshop"), ("confirm", "double-opt-in")]

    # when the link is used a second time
    after = ledger()
    again = browser.post(path, {"csrfmiddlewaretoken": csrf_token(html)})

    # then a clear page says it was used, and nothing is written
    assert again.status_code == 200
    # in one language, the reader's (German here: the browser asked for none)
    assert "bereits verwendet" in again.content.decode()
    assert "already" not in again.content.decode()
    assert ledger() == after
    assert browser.get(path).status_code == 200


def test_a_post_without_the_pages_csrf_token_confirms_nothing(api: Api) -> None:
    grant_by_email(api)
    path = confirmation_url(Confirmation.objects.get().id).removeprefix("http://testserver")
    before = ledger()

    response = Client(enforce_csrf_checks=True).post(path)

    assert response.status_code == 403
    assert ledger() == before


def test_a_tampered_confirmation_link_is_a_404_page(api: Api) -> None:
    grant_by_email(api)
    path = confirmation_url(Confirmation.objects.get().id).removeprefix("http://testserver")
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    before = ledger()

    for method in ("get", "post"):
        response = getattr(Client(), method)(tampered)

        assert response.status_code == 404
        assert "nicht gültig" in response.content.decode()
    assert Client().get("/confirm/not-a-token").status_code == 404
    assert ledger() == before
    assert check_email(api)["reason"] == "pending_confirmation"


def test_an_expired_confirmation_link_confirms_nothing(api: Api) -> None:
    grant_by_email(api)
    row = Confirmation.objects.get()
    Confirmation.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    path = confirmation_url(row.id).removeprefix("http://testserver")
    before = ledger()

    shown = Client().get(path)
    pressed = Client().post(path)

    assert "abgelaufen" in shown.content.decode()
    assert "<form" not in shown.content.decode()
    assert pressed.status_code == 200
    assert "abgelaufen" in pressed.content.decode()
    assert ledger() == before
    assert check_email(api)["reason"] == "pending_confirmation"


def test_a_link_whose_grant_was_withdrawn_meanwhile_confirms_nothing(api: Api) -> None:
    # given a pending grant, withdrawn before the person clicked
    grant_by_email(api)
    api.post(
        CONSENTS,
        {"subject": ANNA, "purpose": "newsletter", "channel": "email", "action": "withdraw", "source": "webshop"},
    )
    path = confirmation_url(Confirmation.objects.get().id).removeprefix("http://testserver")
    before = ledger()

    # when the old link is pressed
    response = Client().post(path)

    # then the withdrawal stands
    assert response.status_code == 404
    assert ledger() == before
    assert check_email(api)["reason"] == "withdrawn"


def test_a_double_opt_in_grant_without_an_email_address_is_400_and_writes_nothing(api: Api) -> None:
    before = (Subject.objects.count(), ConsentEvent.objects.count(), Confirmation.objects.count())

    response = grant_by_email(api, {"phone": "+49 171 1234567", "customer_number": "C-1"})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == "email_required"
    assert "subject.email" in response.json()["errors"]
    assert (Subject.objects.count(), ConsentEvent.objects.count(), Confirmation.objects.count()) == before
    assert mail.outbox == []


def test_a_clients_own_form_confirmation_grants_directly(
    api: Api, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given a web shop whose own form already ran the double opt-in
    # when it posts the confirmation with the notice the person saw and the evidence of the click
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = grant_by_email(
            api,
            action="confirm",
            evidence={
                "form": "shop-doi",
                "confirmed_ip": "203.0.113.0",
                "confirmed_at": "2026-01-02T10:00:00+00:00",
                "method": "shop-double-opt-in",
            },
        )

    # then the consent is granted at once, and Assent sends no mail of its own
    assert response.status_code == 201, response.content
    assert response.json()["state"] == "granted"
    assert check_email(api)["reason"] == "granted"
    assert Confirmation.objects.count() == 0
    # no task queued: the one callback on commit counts the event for /metrics
    assert [c for c in callbacks if not isinstance(getattr(c, "__self__", None), MetricWrapperBase)] == []
    assert mail.outbox == []
    event = ConsentEvent.objects.get()
    assert (event.action, event.source, event.notice_version) == ("confirm", "webshop", "2026-01")
