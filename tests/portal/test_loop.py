"""The loop closes in the portal (issue 14, item 4): a request's progress as steps with dates, a "completed on" entry
in the list, the completion mail in the page's language, and after an erasure a page that says what happened, with
the session over."""

from __future__ import annotations

import uuid

import pytest
from django.core import mail
from django.utils import timezone

from consent.double_opt_in import confirmation_token
from consent.models import Confirmation
from subjects.models import RightsRequest
from subjects.rights.mails import request_tell
from subjects.rights.requests import Actor, request_approve
from tests.api import Api
from tests.portal.conftest import known_person, post_form, sign_in
from tests.portal.test_language import reader, unsubscribe_path
from tests.portal.test_rights import customer, open_copy, request_id_of
from tests.rights.helpers import drain

pytestmark = pytest.mark.usefixtures("portal")
DPO = Actor(label="staff:dpo")


def test_an_open_copy_shows_its_steps_and_a_finished_one_its_completion_day() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    request_id = request_id_of(open_copy(client))

    # while it runs: received, verified and in progress are reached with their day, done is not yet
    html = client.get(f"/portal/rights/{request_id}").content.decode()
    assert '<ol class="steps"' in html
    assert html.count('class="reached"') == 3
    assert "Erledigt" in html
    assert "(noch nicht)" in html

    # when it is done: every step reached, and the list says on which day
    request = drain(request_id)
    assert request.completed_at is not None
    html = client.get(f"/portal/rights/{request_id}").content.decode()
    assert html.count('class="reached"') == 4
    listing = client.get("/portal/rights").content.decode()
    assert "Erledigt am" in listing
    assert timezone.localtime(request.completed_at).strftime("%d.%m.%Y") in listing


def test_a_request_from_the_english_portal_is_told_in_english() -> None:
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    client.get("/portal/rights?lang=en")
    request_id = request_id_of(open_copy(client))
    assert RightsRequest.objects.get(pk=request_id).language == "en"
    drain(request_id)
    mail.outbox.clear()

    assert request_tell(request_id=uuid.UUID(request_id), what="completion") is True

    (message,) = mail.outbox
    assert message.to == ["anna@example.de"]
    assert "your request is complete" in message.subject
    assert "My requests" in message.body
    assert "Anna Becker" not in message.body


def test_after_an_erasure_the_session_ends_with_a_page_that_says_what_happened() -> None:
    # given a till customer, signed in, whose erasure the DPO approved
    customer("anna@example.de")
    client = sign_in("anna@example.de")
    request_id = request_id_of(post_form(client, "/portal/rights/erasure", {"confirm": "on"}))
    request_approve(request_id=uuid.UUID(request_id), actor=DPO)

    # when it completes
    assert drain(request_id).status == "completed"

    # then the next page says it is done, what the law keeps and why, and the session is over
    page = client.get("/portal/preferences")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Ihre Daten sind gelöscht" in html
    assert "Sie sind abgemeldet" in html
    assert "§147 AO, §257 HGB" in html
    assert "Store tills (das liefernde System)" in html
    assert "anna@example.de" not in html
    # the page is shown once; after it the browser is simply signed out
    again = client.get("/portal/preferences")
    assert again.status_code == 302
    assert again["Location"] == "/portal/"


def test_the_unsubscribe_page_offers_fewer_mails_in_the_privacy_centre_instead(api: Api) -> None:
    path = unsubscribe_path(api)
    german = reader("de").get(path).content.decode()
    english = reader("en").get(path).content.decode()
    assert "Lieber weniger E-Mails? Wählen Sie im Datenschutz-Center" in german
    assert "Fewer mails instead? Choose in the privacy centre" in english
    assert 'href="/portal/"' in english
    # once unsubscribed, the offer is gone: the page says what happened
    done = reader("en").post(path)
    assert "Fewer mails instead?" not in done.content.decode()


def test_the_confirmation_page_offers_the_privacy_centre_for_fewer_mails_or_other_topics() -> None:
    html = reader("en").get("/confirm/forged").content.decode()
    assert 'href="/portal/"' in html
    known_person("anna@example.de", channel="email")  # a newsletter by e-mail: its double opt-in link waits
    page = reader("de").get("/confirm/" + confirmation_token(Confirmation.objects.get().id)).content.decode()
    assert "Lieber weniger E-Mails oder andere Themen?" in page
