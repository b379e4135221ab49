"""Access (Art. 15) and portability (Art. 20): the export's contents, the report, the link, at-rest encryption,
and never another person's data."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
from django.core.management import call_command
from django.utils import timezone
from freezegun import freeze_time

from consent.models import ConsentEvent
from subjects.models import RightsExport
from subjects.rights import texts
from subjects.rights.exports import export_path, exports_purge
from tests.api import Api
from tests.catalogue import FIVE_SOURCES
from tests.factories import ingest
from tests.rights.helpers import drain, phone_of, recorded_at, seed_person

REQUESTS = "/api/v1/requests"
pytestmark = pytest.mark.django_db


def run(api: Api, kind: str, subject: dict[str, Any]) -> dict[str, Any]:
    body = api.post(REQUESTS, {"kind": kind, "subject": subject, "channel": "portal", "verified": True}).json()
    drain(body["id"])
    result: dict[str, Any] = api.get(f"{REQUESTS}/{body['id']}").json()
    assert result["status"] == "completed", result
    return result


def download(api: Api, url: str) -> zipfile.ZipFile:
    parts = urlsplit(url)
    response = api.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def activity(api: Api, email: str, subject_id: str) -> None:
    """Consents, a profile read and a send: what the report must name."""
    for body in (
        {"purpose": "newsletter", "channel": "push", "action": "grant", "notice_version": "2026-01"},
        {"purpose": "phone-offers", "channel": "phone", "action": "grant", "notice_version": "1"},
    ):
        response = api.post(
            "/api/v1/consents",
            {"subject": {"email": email}, "source": "webshop", "evidence": {"form": "signup"}, **body},
        )
        assert response.status_code == 201, response.content
    assert api.get(f"/api/v1/subjects/{subject_id}/profile?purpose=order-updates").status_code == 200
    send = api.post(
        "/api/v1/sends",
        {"campaign": "spring", "purpose": "newsletter", "channel": "push", "recipients": [{"email": email}]},
    )
    assert send.status_code == 201, send.content


def test_an_access_export_holds_the_data_the_consent_history_and_the_art_15_report(rapi: Api) -> None:
    # given a person with records in five sources, a profile, consents, a read and a send
    person = seed_person("acc1", records_per_source=2)
    activity(rapi, person.email, str(person.subject_id))

    # when they ask for access
    result = run(rapi, "access", {"email": person.email})["result"]

    # then the result says what was found and links the export
    assert result["data_found"] is True
    assert result["message"] == texts.ACCESS_DONE
    assert result["summary"]["records"] == 11  # two per source, and the shop's contact record
    assert result["export_url"].startswith("http://testserver/api/v1/requests/")
    archive = download(rapi, result["export_url"])
    names = set(archive.namelist())
    assert names == {
        "data.json",
        "identifiers.csv",
        "profile.csv",
        "contact.csv",
        "purchases.csv",
        "orders.csv",
        "app_usage.csv",
        "calls.csv",
        "sessions.csv",
        "consent_history.json",
        "report.json",
        "report.de.html",
        "report.en.html",
    }

    # one JSON file with everything
    data = json.loads(archive.read("data.json"))
    assert {i["value"] for i in data["identifiers"]} == {person.email, "C-acc1", phone_of("acc1")}
    assert data["profile"] == {"name": "Name-acc1", "street": "Street-acc1 1"}
    assert len(data["records"]) == 11
    assert {r["source"] for r in data["records"]} == set(FIVE_SOURCES)

    # one CSV per data category
    rows = list(csv.DictReader(io.StringIO(archive.read("purchases.csv").decode())))
    assert [r["external_id"] for r in rows] == ["pos-acc1-0", "pos-acc1-1"]
    assert rows[0]["item"] == "item-acc1-pos-0"

    # the consent history with each event's hash, as the ledger has it
    history = json.loads(archive.read("consent_history.json"))
    ledger = {(e.seq, e.hash) for e in ConsentEvent.objects.filter(subject_id=person.subject_id)}
    assert {(e["seq"], e["hash"]) for e in history["events"]} == ledger
    assert history["events"][0]["evidence"] == {"form": "signup"}
    assert {s["purpose"] for s in history["states"]} == {"newsletter", "phone-offers"}
    # each grant carries its signed receipt, verifiable offline with the keys the history names
    grants = [e for e in history["events"] if e["action"] == "grant"]
    assert grants
    for event in grants:
        claims = jwt.decode(event["receipt"], options={"verify_signature": False})
        assert (claims["record"]["ledger"]["seq"], claims["record"]["ledger"]["hash"]) == (event["seq"], event["hash"])
    assert history["receipt_keys"].endswith("/.well-known/jwks.json")

    # the report, computed from this person's own records and logs (Art. 15(1)(a)-(h))
    report = json.loads(archive.read("report.json"))
    assert {p["key"] for p in report["purposes"]} >= {
        "newsletter",
        "phone-offers",
        "offers",
        "order-updates",
        "recommendations",
    }
    assert {c["key"] for c in report["categories"]} == {
        "contact",
        "purchases",
        "orders",
        "app_usage",
        "calls",
        "sessions",
    }
    recipients = {(r["name"], r["kind"]) for r in report["recipients"]}
    assert recipients == {("client-0", "profile_read"), ("client-0", "send")}
    pos = next(s for s in report["storage"] if s["source"] == "pos")
    assert pos["legal_hold"] == {"years": 8, "from": "end_of_year", "law": "§147 AO, §257 HGB"}
    assert pos["delete_after_days"] == 3650
    assert {s["name"] for s in report["sources"]} == {"Store tills", "Web shop", "App", "Call centre", "Website"}
    assert report["right_to_complain"] == texts.COMPLAINT
    assert len(report["rights"]) == 7
    assert report["automated_decisions"] == [
        {"purpose": "recommendations", "text": "Product suggestions are ranked by an algorithm from your app use."}
    ]
    html_de = archive.read("report.de.html").decode()
    html_en = archive.read("report.en.html").decode()
    assert "Beschwerderecht" in html_de
    assert 'lang="de"' in html_de
    assert "Right to lodge a complaint" in html_en
    assert "client-0" in html_en
    # as its reader reads it: dates in their format, names instead of keys, every storage period as a sentence
    generated = timezone.localtime(timezone.now())
    assert f"Erstellt: {texts.date_format(generated, 'de')}" in html_de
    assert f"Generated: {texts.date_format(generated, 'en')}" in html_en
    for html in (html_de, html_en):
        assert not re.search(r"\d{4}-\d{2}-\d{2}", html), "an ISO date in the report"
        assert "<td>orders</td>" not in html
        assert "<td>Orders</td>" in html
        assert "phone-offers" not in html
    assert "Woran wir Sie erkennen: Kundennummer, E-Mail-Adresse, Telefonnummer" in html_de
    assert "Jahre ab Ende des Kalenderjahres (§147 AO, §257 HGB)" in html_de
    assert "years from the end of the calendar year (§147 AO, §257 HGB)" in html_en
    assert "<td></td>" not in html_de


def test_the_report_counts_in_the_readers_plural_forms(rapi: Api) -> None:
    person = seed_person("acc-one", records_per_source=1)
    result = run(rapi, "access", {"email": person.email})["result"]
    archive = download(rapi, result["export_url"])
    html_de = archive.read("report.de.html").decode()
    html_en = archive.read("report.en.html").decode()

    assert re.search(r": 1 Datensatz<", html_de)
    assert re.search(r": 1 record<", html_en)
    assert not re.search(r"\b1 (Datensätze|records|Ereignisse|events|Tage|days|Jahre|years)\b", html_de + html_en)
    assert texts.period_text({"delete_after_days": 1}, "de") == "1 Tag nach Erhebung"
    assert texts.period_text({"delete_after_days": 30}, "de") == "30 Tage nach Erhebung"
    hold = {"legal_hold": {"years": 1, "from": "record", "law": "§ 1"}}
    assert texts.period_text(hold, "de") == "1 Jahr ab dem Datum des Datensatzes (§ 1)"
    assert texts.period_text(hold, "en") == "1 year from the record's date (§ 1)"


def test_portability_holds_only_what_the_person_provided_or_generated(rapi: Api) -> None:
    person = seed_person("port1", records_per_source=1)
    activity(rapi, person.email, str(person.subject_id))
    result = run(rapi, "portability", {"email": person.email})["result"]
    assert result["message"] == texts.PORTABILITY_DONE
    archive = download(rapi, result["export_url"])
    names = set(archive.namelist())
    assert "report.json" not in names
    assert "consent_history.json" not in names
    assert {"data.json", "consent.json", "orders.csv"} <= names
    declarations = json.loads(archive.read("consent.json"))["declarations"]
    assert {(d["purpose"], d["action"]) for d in declarations} == {("newsletter", "grant"), ("phone-offers", "grant")}
    assert all("hash" not in d for d in declarations)


def test_an_export_never_holds_another_persons_data(rapi: Api) -> None:
    anna = seed_person("anna2", records_per_source=2)
    bert = seed_person("bert2", records_per_source=2)
    activity(rapi, bert.email, str(bert.subject_id))
    archive = download(rapi, run(rapi, "access", {"email": anna.email})["result"]["export_url"])
    everything = b"".join(archive.read(name) for name in archive.namelist()).decode()
    assert anna.email in everything
    for secret in bert.secrets:
        assert secret not in everything
    assert str(bert.subject_id) not in everything


def test_the_export_is_encrypted_at_rest(rapi: Api) -> None:
    person = seed_person("rest1", records_per_source=3)
    body = run(rapi, "access", {"email": person.email})
    raw = export_path(body["id"]).read_bytes()
    assert raw.startswith(b"ASX1")
    for secret in person.secrets:
        assert secret.encode() not in raw
    assert b"PK\x03\x04" not in raw


def test_the_export_link_is_signed_needs_a_key_with_requests_read_and_is_reissued(rapi: Api, rapi_for: Any) -> None:
    person = seed_person("link1", records_per_source=1)
    body = run(rapi, "access", {"email": person.email})
    url = urlsplit(body["result"]["export_url"])
    path = f"{url.path}?{url.query}"
    assert Api(None).get(path).status_code == 401
    assert rapi_for("requests:write").get(path).status_code == 403
    assert rapi_for("requests:read").get(path).status_code == 200
    forged = rapi.get(path[:-3] + "abc")
    assert forged.status_code == 404
    assert forged.json()["code"] == "export_unavailable"
    with freeze_time(timezone.now() + timedelta(seconds=5)):
        again = rapi.get(f"{REQUESTS}/{body['id']}").json()["result"]["export_url"]
    assert again != body["result"]["export_url"]  # a fresh signature on every GET
    with freeze_time(timezone.now() + timedelta(days=7, minutes=1)):
        assert rapi.get(path).status_code == 404  # the link lives 7 days


def test_exports_are_deleted_after_30_days(rapi: Api) -> None:
    person = seed_person("purge1", records_per_source=1)
    body = run(rapi, "access", {"email": person.email})
    path = export_path(body["id"])
    assert path.exists()
    assert exports_purge(now=timezone.now() + timedelta(days=29)) == 0
    assert exports_purge(now=timezone.now() + timedelta(days=30, minutes=1)) == 1
    assert not path.exists()
    assert not RightsExport.objects.exists()
    assert "export_url" not in rapi.get(f"{REQUESTS}/{body['id']}").json()["result"]


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(rapi: Api) -> None:
    evil = {"item": '=HYPERLINK("x")', "amount": -3}
    ingest("app", "evil-1", {"email": "evil@example.de"}, category="app_usage", data=evil, occurred_at=recorded_at())
    archive = download(rapi, run(rapi, "access", {"email": "evil@example.de"})["result"]["export_url"])
    row = next(csv.DictReader(io.StringIO(archive.read("app_usage.csv").decode())))
    assert row["item"].startswith("'=")
    assert row["amount"] == "-3"


def test_a_demo_customers_export_shows_her_records_from_several_systems(make_client: Callable[..., str]) -> None:
    # given the demo as `make demo` loads it
    call_command("load_demo", stdout=StringIO())
    api = Api(make_client())

    # when the customer the demo banner names first asks for her data
    result = run(api, "access", {"email": "anna.becker@example.org"})["result"]
    archive = download(api, result["export_url"])

    # then every category she has is filled, from four of the shop's systems, and the report names them
    report = json.loads(archive.read("report.json"))
    assert {s["key"] for s in report["sources"]} == {"webshop", "pos", "callcenter", "app"}
    assert {c["key"]: c["records"] for c in report["categories"]} == {
        "app_usage": 1,
        "browsing": 1,
        "contact": 1,
        "loyalty": 1,
        "purchases": 2,
        "service_contacts": 1,
    }
    assert report["purposes"]
    html = archive.read("report.de.html").decode()
    assert "Onlineshop" in html
    assert "Jahre ab Ende des Kalenderjahres (§147 AO, §257 HGB)" in html
