"""The portal through Django's test client: a person signs in with the link taken from the mail they were sent."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from consent.services import ConsentRecorded
from tests.factories import ConsentFactory

LINK = re.compile(r"http://testserver(/portal/signin/[A-Za-z0-9_:\-]+)")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
UA = "Mozilla/5.0 (X11; Linux x86_64) PortalTest/1.0"


def browser() -> Client:
    """A browser as people have them: CSRF enforced, a user agent, an address."""
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT=UA, REMOTE_ADDR="203.0.113.77")


def csrf(page: Any) -> str:
    match = CSRF.search(page.content.decode())
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def ask_for_link(client: Client, email: str) -> Any:
    return client.post("/portal/", {"email": email, "csrfmiddlewaretoken": csrf(client.get("/portal/"))})


def link_from_mail(to: str) -> str:
    sent = [m for m in mail.outbox if to.lower() in [r.lower() for r in m.to]]
    assert sent, f"no mail to {to}"
    match = LINK.search(sent[-1].body)
    assert match, sent[-1].body
    return match.group(1)


def sign_in(email: str, client: Client | None = None) -> Client:
    client = client or browser()
    assert ask_for_link(client, email).status_code == 302
    response = client.get(link_from_mail(email))
    assert response.status_code == 302, response
    assert response["Location"] == "/portal/preferences"
    return client


def post_form(client: Client, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, {**data, "csrfmiddlewaretoken": csrf(client.get(path))})


def known_person(email: str, *, channel: str = "sms", source: str = "webshop") -> uuid.UUID:
    """A customer known from the web shop, with a newsletter consent on one channel."""
    done: ConsentRecorded = ConsentFactory(email=email, channel=channel, source=source)
    return done.subject_id


@pytest.fixture
def portal(catalogue: dict[str, Any]) -> None:
    """The catalogue of tests/conftest.py: newsletter (consent; e-mail with double opt-in, SMS, push), offers by
    post (legitimate interest), order updates (contract)."""
