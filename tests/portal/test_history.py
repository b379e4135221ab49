"""The history page: the person's consent events, newest first, with where they came from, the notice version and
the event's hash (the receipt link comes with the receipts issue)."""

from __future__ import annotations

import re

import pytest

from consent.models import ConsentEvent
from tests.portal.conftest import known_person, post_form, sign_in

pytestmark = pytest.mark.usefixtures("portal")


def test_history_lists_the_persons_events_newest_first_with_source_version_and_hash() -> None:
    subject_id = known_person("anna@example.de", channel="sms", source="webshop")
    client = sign_in("anna@example.de")
    post_form(client, "/portal/preferences", {"notice:newsletter": "2026-01"})  # withdraws sms

    html = client.get("/portal/history").content.decode()

    events = list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("-seq"))
    assert len(events) == 2
    rows = re.findall(r"<tr>\s*<td><time.*?</tr>", html, flags=re.S)
    assert len(rows) == 2
    assert "Einwilligung widerrufen" in rows[0]
    assert "Datenschutz-Center" in rows[0]
    assert "Einwilligung erteilt" in rows[1]
    assert "webshop" in rows[1]
    assert "2026-01" in rows[1]
    for row, event in zip(rows, events, strict=True):
        assert event.hash in row
    assert "2 Einträge" in html


def test_history_of_a_person_nobody_knows_is_empty() -> None:
    html = sign_in("new@example.de").get("/portal/history").content.decode()
    assert "noch keine Entscheidung" in html


def test_history_shows_no_one_elses_events() -> None:
    known_person("other@example.de", channel="push")
    known_person("anna@example.de", channel="sms")
    html = sign_in("anna@example.de").get("/portal/history").content.decode()
    other = ConsentEvent.objects.get(channel="push")
    assert other.hash not in html
    assert "1 Eintrag" in html
