"""The portal's forms fuzzed with hypothesis through Django's test client, as a signed-in person: any subset of the
fields, any text, any bytes, megabytes. The answer is always a page the person can read (or a redirect), never a
500."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from hypothesis import given

from tests.factories import ingest
from tests.fuzz.budget import COUNTS, FORM_EXAMPLES, STATUSES, fuzz_settings
from tests.fuzz.forms import FORM, assert_readable, form_of, hostile_form
from tests.portal.conftest import known_person, sign_in

SIGNED_IN_FORMS = [
    "/portal/preferences",
    "/portal/rights",  # its form posts to /portal/rights/copy
    "/portal/rights/erasure",
    "/portal/rights/rectification",
    "/portal/rights/restriction",
    "/portal/rights/objection",
]


@pytest.fixture
def anna(catalogue: dict[str, Any]) -> Client:
    """Anna, known from the web shop and the store tills (with a profile to correct), signed in."""
    known_person("anna@example.de")
    ingest("pos", "R-1", {"email": "anna@example.de"}, category="contact", data={"first_name": "Anna"}, profile=True)
    client = sign_in("anna@example.de")
    client.handler.enforce_csrf_checks = False  # the fuzzer posts raw bodies; CSRF has its own tests
    return client


def fuzz_form(client: Client, page_path: str, counter: str) -> None:
    page = client.get(page_path)
    assert page.status_code == 200, (page_path, page.status_code)
    form = form_of(page.content.decode())
    path = form.action or page_path
    assert form.fields, f"{path} has no form to fuzz"

    @fuzz_settings(FORM_EXAMPLES)
    @given(body=hostile_form(form))
    def post(body: bytes) -> None:
        response = client.post(path, body, content_type=FORM)
        COUNTS[counter] += 1
        STATUSES[response.status_code] += 1
        assert_readable(response, f"POST {path} {body[:200]!r}")

    post()


@pytest.mark.parametrize("path", SIGNED_IN_FORMS)
def test_a_signed_in_persons_form_answers_any_input_with_a_readable_page(anna: Client, path: str) -> None:
    fuzz_form(anna, path, "portal")


def test_the_sign_in_form_answers_any_input_with_a_readable_page(catalogue: dict[str, Any]) -> None:
    fuzz_form(Client(), "/portal/", "portal")


def test_the_sms_code_form_answers_any_input_with_a_readable_page(anna: Client) -> None:
    # A new number asked for first, so that the code form is there to fuzz.
    response: Any = anna.post("/portal/rights/rectification", {"email": "anna@example.de", "phone": "+491719876543"})
    assert response.status_code in (200, 302)
    fuzz_form(anna, "/portal/rights/rectification/code", "portal")
