"""`/u/<token>`: one-click unsubscribe from a marketing send (Art. 7(3), RFC 8058). GET shows a page and changes
nothing (mail scanners prefetch links); a POST without cookies or CSRF token withdraws, idempotently; the page's
second button objects to all direct marketing (Art. 21(2)-(3)); a forged link is a 404 page that writes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import uuid
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from consent.gates import unsubscribe
from consent.gates.unsubscribe import unsubscribe_token, unsubscribe_token_parse, unsubscribe_url
from consent.ledger.chain import event_evidence
from consent.models import ConsentEvent, Objection, Send
from subjects.keys import data_key
from subjects.models import Subject
from tests.api import Api
from tests.factories import grant

CONSENTS = "/api/v1/consents"
CHECK = "/api/v1/consents/check"
ONE_CLICK = "List-Unsubscribe=One-Click"
ANNA = {"email": "anna@example.de"}
FORM = "application/x-www-form-urlencoded"


def send_link(api: Api, subject: str, purpose: str = "newsletter", channel: str = "sms") -> str:
    """The path of the unsubscribe link a send hands out for this subject."""
    response = api.post(
        "/api/v1/sends",
        {"campaign": "Frühjahr", "purpose": purpose, "channel": channel, "recipients": [{"id": subject}]},
    )
    assert response.status_code == 201, response.content
    url: str = response.json()["allowed"][0]["unsubscribe_url"]
    assert url.startswith(settings.ASSENT_BASE_URL)
    return url[len(settings.ASSENT_BASE_URL) :]


def check(api: Api, subject: str, purpose: str = "newsletter", channel: str = "sms") -> tuple[bool, str]:
    answer = api.post(CHECK, {"subject": {"id": subject}, "purpose": purpose, "channel": channel}).json()
    return answer["allowed"], answer["reason"]


def browser() -> Client:
    # No cookies and CSRF enforced, as for a mail provider's POST or a fresh browser.
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT="Mozilla/5.0 (Test)", REMOTE_ADDR="203.0.113.77")


def last_event(subject: str) -> ConsentEvent:
    return ConsentEvent.objects.filter(subject_id=subject).order_by("-seq").first()  # type: ignore[return-value]


def evidence_of(event: ConsentEvent) -> dict[str, Any]:
    return event_evidence(event, data_key(Subject.objects.get(pk=event.subject_id)))


def page(response: Any) -> str:
    text: str = response.content.decode()
    return text


# ---------------------------------------------------------------------------------------------------------
# GET changes nothing
# ---------------------------------------------------------------------------------------------------------
def test_get_shows_a_confirmation_page_and_changes_nothing(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)
    events = ConsentEvent.objects.count()

    response = browser().get(path)

    assert response.status_code == 200
    html = page(response)
    assert "Newsletter" in html
    assert "SMS" in html
    assert "<h1>Abbestellen</h1>" in html  # unsubscribe is "abbestellen"; "abmelden" is signing out (glossary)
    assert "Überhaupt keine Werbung" in html
    assert "Unsubscribe" not in html  # one language per page
    assert 'method="post"' in html
    assert "csrfmiddlewaretoken" not in html
    assert response["Cache-Control"].startswith("max-age=0")
    assert ConsentEvent.objects.count() == events
    assert check(api, anna) == (True, "granted")


def test_head_changes_nothing_either(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)
    events = ConsentEvent.objects.count()

    assert browser().head(path).status_code == 200
    assert ConsentEvent.objects.count() == events


def test_get_of_a_link_already_used_says_so(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)
    browser().post(path, ONE_CLICK, content_type=FORM)

    assert "Bereits abbestellt" in page(browser().get(path))


# ---------------------------------------------------------------------------------------------------------
# One-click POST (RFC 8058) and the page's button
# ---------------------------------------------------------------------------------------------------------
def test_one_click_post_withdraws_the_sends_purpose_on_the_sends_channel(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)

    response = browser().post(path, ONE_CLICK, content_type=FORM)

    assert response.status_code == 200
    assert "<h1>Abbestellt</h1>" in page(response)
    assert check(api, anna) == (False, "withdrawn")
    event = last_event(anna)
    assert (event.action, event.purpose, event.channel, event.source, event.actor) == (
        "withdraw",
        "newsletter",
        "sms",
        "unsubscribe-link",
        "subject",
    )
    evidence = evidence_of(event)
    assert evidence["form"] == "one-click"
    assert evidence["ip"] == "203.0.113.0"  # truncated
    assert evidence["user_agent"] == "Mozilla/5.0 (Test)"
    assert evidence["send"] == str(Send.objects.get().pk)


def test_one_click_post_as_multipart_form_data_works_too(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)

    response = browser().post(path, {"List-Unsubscribe": "One-Click"})  # the test client's default: multipart

    assert response.status_code == 200
    assert check(api, anna) == (False, "withdrawn")
    assert evidence_of(last_event(anna))["form"] == "one-click"


def test_a_second_post_records_nothing_new_and_still_shows_success(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)
    browser().post(path, ONE_CLICK, content_type=FORM)
    events = ConsentEvent.objects.count()

    response = browser().post(path, ONE_CLICK, content_type=FORM)

    assert response.status_code == 200
    assert "<h1>Abbestellt</h1>" in page(response)
    assert ConsentEvent.objects.count() == events


def test_the_pages_button_withdraws(api: Api) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)

    response = browser().post(path, "", content_type=FORM)

    assert response.status_code == 200
    assert check(api, anna) == (False, "withdrawn")
    assert evidence_of(last_event(anna))["form"] == "unsubscribe-page"


def test_unsubscribing_leaves_the_other_channels_as_they_are(api: Api) -> None:
    anna = grant(ANNA)
    grant(ANNA, channel="push")
    path = send_link(api, anna)

    browser().post(path, ONE_CLICK, content_type=FORM)

    assert check(api, anna, channel="sms") == (False, "withdrawn")
    assert check(api, anna, channel="push") == (True, "granted")


def test_unsubscribing_from_a_legitimate_interest_purpose_objects_to_it(api: Api) -> None:
    # A legitimate-interest purpose cannot be withdrawn, only objected to (Art. 21(2)); the objection is the opt-out
    # every such message must offer (UWG §7(3) Nr. 4).
    anna = grant(ANNA)
    path = send_link(api, anna, purpose="offers", channel="post")

    browser().post(path, ONE_CLICK, content_type=FORM)

    assert check(api, anna, "offers", "post") == (False, "objected")
    assert check(api, anna, "newsletter", "sms") == (True, "granted")
    event = last_event(anna)
    assert (event.action, event.purpose, event.channel, event.source) == ("object", "offers", "", "unsubscribe-link")
    events = ConsentEvent.objects.count()
    browser().post(path, ONE_CLICK, content_type=FORM)
    assert ConsentEvent.objects.count() == events


# ---------------------------------------------------------------------------------------------------------
# No marketing at all
# ---------------------------------------------------------------------------------------------------------
def test_no_marketing_at_all_objects_to_every_marketing_purpose_on_every_channel(api: Api) -> None:
    anna = grant(ANNA)
    grant(ANNA, channel="push")
    path = send_link(api, anna)

    response = browser().post(path, "choice=no-marketing", content_type=FORM)

    assert response.status_code == 200
    assert "keine Werbung mehr" in page(response)
    assert check(api, anna, "newsletter", "sms") == (False, "objected")
    assert check(api, anna, "newsletter", "push") == (False, "objected")
    assert check(api, anna, "offers", "post") == (False, "objected")
    assert check(api, anna, "order-updates", "sms") == (True, "contract")  # service messages go on
    assert Objection.objects.filter(subject_id=anna, purpose="").exists()
    event = last_event(anna)
    assert (event.action, event.purpose, event.channel, event.source, event.actor) == (
        "object",
        "",
        "",
        "unsubscribe-link",
        "subject",
    )
    assert evidence_of(event)["form"] == "unsubscribe-page"

    events = ConsentEvent.objects.count()
    assert browser().post(path, "choice=no-marketing", content_type=FORM).status_code == 200
    assert ConsentEvent.objects.count() == events


# ---------------------------------------------------------------------------------------------------------
# Forged links
# ---------------------------------------------------------------------------------------------------------
def _forged_paths(path: str) -> list[str]:
    token = path.rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(token)
    other_key = hmac.new(b"another key" * 3, raw[:32], hashlib.sha256).digest()[:16]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    return [
        "/u/" + flipped,
        "/u/" + token[:-1],
        "/u/" + token + "A",
        "/u/" + base64.urlsafe_b64encode(raw[:32] + other_key).decode(),
        "/u/" + token.replace("-", "+").replace("_", "/"),
        "/u/" + unsubscribe_token(subject_id=uuid.uuid4(), send_id=uuid.uuid4()),  # genuine, but names no send
        "/u/not-a-token",
    ]


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_or_foreign_link_is_a_404_page_and_writes_nothing(api: Api, method: str) -> None:
    anna = grant(ANNA)
    path = send_link(api, anna)
    events, objections = ConsentEvent.objects.count(), Objection.objects.count()

    for forged in _forged_paths(path):
        if forged == path:
            continue
        client = browser()
        response = client.get(forged) if method == "get" else client.post(forged, ONE_CLICK, content_type=FORM)
        assert response.status_code == 404, forged
        assert "nicht gültig" in page(response)
    response = browser().post(_forged_paths(path)[0], "choice=no-marketing", content_type=FORM)
    assert response.status_code == 404

    assert (ConsentEvent.objects.count(), Objection.objects.count()) == (events, objections)
    assert check(api, anna) == (True, "granted")


# ---------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------
def test_token_round_trips_and_is_compact() -> None:
    subject, send = uuid.uuid4(), uuid.uuid4()

    token = unsubscribe_token(subject_id=subject, send_id=send)

    assert len(token) == 64
    assert "=" not in token
    assert unsubscribe_token_parse(token) == (subject, send)
    assert unsubscribe_url(token) == f"{settings.ASSENT_BASE_URL}/u/{token}"


def test_token_is_keyed_with_the_link_key_not_the_secret_key(settings: Any) -> None:
    # Links in old mails must survive a SECRET_KEY rotation, and only ASSENT_LINK_KEY signs them.
    subject, send = uuid.uuid4(), uuid.uuid4()
    token = unsubscribe_token(subject_id=subject, send_id=send)

    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    assert unsubscribe_token_parse(token) == (subject, send)

    settings.ASSENT_LINK_KEY = b"\x01" * 32
    assert unsubscribe_token_parse(token) is None


def test_links_mailed_before_keep_working_the_token_is_the_documented_hmac(settings: Any) -> None:
    # The module's docstring: base64url(subject id || send id || HMAC-SHA256(ASSENT_LINK_KEY, tag || ids)[:16]).
    subject, send = uuid.uuid4(), uuid.uuid4()
    payload = subject.bytes + send.bytes
    mac = hmac.new(settings.ASSENT_LINK_KEY, b"assent/unsubscribe/v1|" + payload, hashlib.sha256).digest()[:16]
    mailed = base64.urlsafe_b64encode(payload + mac).decode("ascii")

    assert unsubscribe_token(subject_id=subject, send_id=send) == mailed
    assert unsubscribe_token_parse(mailed) == (subject, send)


# ---------------------------------------------------------------------------------------------------------
# Races
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_providers_one_click_and_the_persons_click_at_once_record_one_withdrawal(
    catalogue: dict[str, Any], make_client: Any
) -> None:
    # given a link, and both POSTs held until each has read the link, so they meet at the subject's lock
    api = Api(make_client())
    anna = grant(ANNA)
    token = send_link(api, anna).rsplit("/", 1)[1]
    both_read = threading.Barrier(2)
    real_lock = unsubscribe.lock_subject

    def lock_after_both_read(subject_id: uuid.UUID) -> Subject:
        both_read.wait(timeout=10)
        return real_lock(subject_id)

    results: list[bool] = []
    failures: list[BaseException] = []

    def click(form: str) -> None:
        try:
            results.append(unsubscribe.unsubscribe_confirm(token=token, form=form, evidence={}).recorded)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    # when the mail provider's one-click POST and the person's button arrive together
    with mock.patch.object(unsubscribe, "lock_subject", lock_after_both_read):
        threads = [threading.Thread(target=click, args=(form,)) for form in ("one-click", "unsubscribe-page")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # then exactly one withdrawal is recorded, and both answered success
    assert not failures, failures
    assert sorted(results) == [False, True]
    assert ConsentEvent.objects.filter(subject_id=anna, action="withdraw").count() == 1
    assert check(api, anna) == (False, "withdrawn")
