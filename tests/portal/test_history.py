"""The history page: the person's consent events, newest first, with where they came from; the notice version and
the event's hash sit in a "proof" disclosure per row, not in a column of their own, so the page reads on a phone."""

from __future__ import annotations

import re

import jwt
import pytest

from consent.models import ConsentEvent
from tests.portal.conftest import known_person, post_form, sign_in

pytestmark = pytest.mark.usefixtures("portal")


def rows_of(html: str) -> list[str]:
    return re.findall(r"<tr>\s*<td data-label=[^>]*><time.*?</tr>", html, flags=re.S)


def test_history_lists_the_persons_events_newest_first_with_source_version_and_hash() -> None:
    subject_id = known_person("anna@example.de", channel="sms", source="webshop")
    client = sign_in("anna@example.de")
    post_form(client, "/portal/preferences", {"notice:newsletter": "2026-01"})  # withdraws sms

    html = client.get("/portal/history").content.decode()

    events = list(ConsentEvent.objects.filter(subject_id=subject_id).order_by("-seq"))
    assert len(events) == 2
    rows = rows_of(html)
    assert len(rows) == 2
    assert "Einwilligung widerrufen" in rows[0]
    assert "Datenschutz-Center" in rows[0]
    assert "Einwilligung erteilt" in rows[1]
    assert "webshop" in rows[1]
    assert "2026-01" in rows[1]
    for row, event in zip(rows, events, strict=True):
        proof = re.search(r'<details class="proof">(.*?)</details>', row, flags=re.S)
        assert proof is not None, "every row has its proof behind a disclosure"
        assert event.hash in proof.group(1)
        assert "Nachweis anzeigen" in proof.group(1)
        assert event.hash not in row.replace(proof.group(0), "")  # the hash is nowhere else in the row
    assert "2 Einträge" in html


def test_the_history_table_has_no_hash_column_and_labels_every_cell_for_a_phone() -> None:
    known_person("anna@example.de", channel="sms")
    html = sign_in("anna@example.de").get("/portal/history").content.decode()

    head = re.search(r"<thead>(.*?)</thead>", html, flags=re.S)
    assert head is not None
    columns = re.findall(r"<th scope=\"col\">([^<]*)</th>", head.group(1))
    assert columns == ["Wann", "Was", "Zweck", "Kanal", "Wo", "Nachweis"]
    assert "Hashwert" not in head.group(1)
    # each cell names its column, so on a 390 px screen a row is a card that needs no sideways scrolling
    for row in rows_of(html):
        cells = re.findall(r"<td([^>]*)>", row)
        assert len(cells) == len(columns)
        assert all('data-label="' in attributes for attributes in cells)


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


def test_each_choice_s_signed_receipt_downloads_from_its_proof_and_only_for_its_person() -> None:
    # Given Anna's grant and Ben's
    anna = known_person("anna@example.de", channel="sms")
    known_person("ben@example.de", channel="sms")
    grant = ConsentEvent.objects.get(subject_id=anna)
    bens = ConsentEvent.objects.exclude(subject_id=anna).get()
    client = sign_in("anna@example.de")

    # Then her history offers the receipt inside the row's proof, and it downloads as a signed JWS of that event
    html = client.get("/portal/history").content.decode()
    link = f"/portal/history/{grant.pk}/receipt"
    proof = re.search(r'<details class="proof">(.*?)</details>', html, flags=re.S)
    assert proof is not None
    assert link in proof.group(1)
    assert "Signierte Quittung herunterladen" in proof.group(1)
    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jose"
    assert f'filename="consent-receipt-{grant.seq}.jws"' in response["Content-Disposition"]
    claims = jwt.decode(response.content.decode(), options={"verify_signature": False})
    assert (claims["jti"], claims["record"]["ledger"]["hash"]) == (str(grant.pk), grant.hash)

    # And Ben's receipt is not hers to fetch: the same page as for an unknown one
    assert client.get(f"/portal/history/{bens.pk}/receipt").status_code == 404
