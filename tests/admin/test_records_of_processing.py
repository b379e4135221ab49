"""Art. 30 records of processing from the catalogue, as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from consent.admin.records_of_processing import records_of_processing
from consent.catalogue.apply import catalogue_apply
from consent.catalogue.reader import catalogue_load_file
from consent.catalogue.snapshot import catalogue_forget
from consent.clients import client_revoke
from consent.models import ApiClient, AuditEntry
from tests.admin.conftest import speaking
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue

# What the catalogue says for Art. 30(1) beyond purposes, data and retention (consent.catalogue.art30).
ART30_TOP: dict[str, Any] = {
    "controller": {
        "name": "Kaufhaus Linde GmbH",
        "address": {"de": "Lindenallee 1, Berlin, Deutschland", "en": "Lindenallee 1, Berlin, Germany"},
        "contact": "datenschutz@kaufhaus-linde.example",
    },
    "dpo": {
        "name": {"de": "Dr. Eva Kranz (externe Datenschutzbeauftragte)", "en": "Dr Eva Kranz (external DPO)"},
        "contact": "dsb@kaufhaus-linde.example",
    },
    "security_measures": [{"de": "Tägliche verschlüsselte Sicherungen", "en": "Daily encrypted backups"}],
}
NEWSLETTER_ART30: dict[str, Any] = {
    "data_subjects": [{"de": "Newsletter-Abonnenten", "en": "Newsletter subscribers"}],
    "recipients": [{"de": "E-Mail-Versanddienstleister", "en": "E-mail service provider"}],
    "transfers": [
        {
            "country": "US",
            "recipient": {"de": "Push-Dienste", "en": "Push services"},
            "safeguard": "standard_contractual_clauses",
            "details": {"de": "Modul 2", "en": "module 2"},
        }
    ],
}


@pytest.fixture
def art30_catalogue(catalogue: dict[str, Any]) -> dict[str, Any]:
    """The standard catalogue with the controller, the DPO, measures, and the newsletter's Art. 30 keys; the other
    purposes say there are no transfers and leave the rest out."""
    document = standard_catalogue()
    document.update(ART30_TOP)
    for item in document["purposes"]:
        item.update(NEWSLETTER_ART30 if item["key"] == "newsletter" else {"transfers": []})
    return apply_catalogue(document)


@pytest.mark.usefixtures("api")  # its client, client-0, is a recipient
def test_records_of_processing_as_json(dpo: Client, anna: str) -> None:
    response = dpo.get("/admin/records-of-processing.json")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    body = json.loads(response.content)
    records = {r["purpose"]: r for r in body["records"]}
    assert set(records) == {"newsletter", "offers", "order-updates"}
    newsletter = records["newsletter"]
    assert (newsletter["gdpr_article"], newsletter["dpv_legal_basis"]) == ("Art. 6(1)(a) GDPR", "dpv:Consent")
    assert records["offers"]["dpv_legal_basis"] == "dpv:LegitimateInterest"
    assert records["order-updates"]["gdpr_article"] == "Art. 6(1)(b) GDPR"
    assert [c["key"] for c in newsletter["data_categories"]] == ["contact"]
    assert [c["name"] for c in newsletter["api_clients"]] == ["client-0"]  # the `api` fixture's client
    assert [s["key"] for s in newsletter["connected_systems"]] == ["pos"]
    purchases = next(r for r in records["offers"]["retention"] if r["category"] == "purchases")
    assert purchases["delete_after_days"] == 3650
    assert purchases["legal_hold_years"] == 8
    assert "§147 AO" in purchases["description"]
    assert newsletter["notice_version"] == "2026-01"
    assert body["security_measures"]
    assert "anna" not in response.content.decode().lower()


@pytest.mark.usefixtures("api")  # its client, client-0, is a recipient
def test_records_of_processing_as_csv(dpo_en: Client, anna: str) -> None:
    response = dpo_en.get("/admin/records-of-processing.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_purpose = {r["purpose"]: r for r in rows}
    assert by_purpose["newsletter"]["legal_basis"] == "consent"
    assert by_purpose["newsletter"]["dpv_legal_basis"] == "dpv:Consent"
    assert by_purpose["newsletter"]["consent_valid_days"] == "730"
    assert "client-0" in by_purpose["newsletter"]["recipients_api_clients"]
    assert "Store tills (pos)" in by_purpose["offers"]["recipients_connected_systems"]
    assert "pos/purchases: 3650 days, legal hold 8 years from the end of the year" in by_purpose["offers"]["retention"]


def test_an_export_is_audited(dpo: Client, anna: str) -> None:
    dpo.get("/admin/records-of-processing.csv")

    assert AuditEntry.objects.filter(action="export", object_type="consent.records_of_processing").count() == 1


@pytest.mark.usefixtures("api")  # its client, client-0, is a recipient
def test_a_revoked_client_is_no_recipient(dpo: Client, anna: str) -> None:
    client_revoke(client=ApiClient.objects.get(name="client-0"))

    body = json.loads(dpo.get("/admin/records-of-processing.json").content)

    assert all(not r["api_clients"] for r in body["records"])


def test_an_unknown_format_is_not_found(dpo: Client) -> None:
    assert dpo.get("/admin/records-of-processing.xml").status_code == 404


def test_the_records_say_controller_dpo_subjects_recipients_transfers_and_measures(
    dpo_en: Client, art30_catalogue: dict[str, Any]
) -> None:
    body = json.loads(dpo_en.get("/admin/records-of-processing.json").content)

    assert body["language"] == "en"
    assert body["controller"] == {
        "name": "Kaufhaus Linde GmbH",
        "contact": "datenschutz@kaufhaus-linde.example",
        "address": "Lindenallee 1, Berlin, Germany",
    }
    assert body["dpo"]["name"] == "Dr Eva Kranz (external DPO)"
    assert "Daily encrypted backups" in body["security_measures"]
    assert any("TOTP" in m for m in body["security_measures"])  # Assent's own measures stay
    newsletter = next(r for r in body["records"] if r["purpose"] == "newsletter")
    assert newsletter["data_subjects"] == ["Newsletter subscribers"]
    assert newsletter["recipient_categories"] == ["E-mail service provider"]
    [transfer] = newsletter["transfers"]
    assert (transfer["country"], transfer["safeguard"], transfer["gdpr_article"]) == (
        "US",
        "standard_contractual_clauses",
        "Art. 46(2)(c) GDPR",
    )
    assert transfer["description"] == "Push services (US): standard contractual clauses, Art. 46(2)(c) GDPR; module 2"
    offers = next(r for r in body["records"] if r["purpose"] == "offers")
    assert (offers["transfers"], offers["data_subjects"]) == ([], None)
    assert body["missing"] == [
        "purposes[offers].data_subjects",
        "purposes[offers].recipients",
        "purposes[order-updates].data_subjects",
        "purposes[order-updates].recipients",
    ]


def test_the_csv_holds_the_art30_columns_in_the_staff_members_language(
    dpo: Client, art30_catalogue: dict[str, Any]
) -> None:
    rows = list(
        csv.DictReader(io.StringIO(speaking(dpo, "de").get("/admin/records-of-processing.csv").content.decode()))
    )
    newsletter = next(r for r in rows if r["purpose"] == "newsletter")
    offers = next(r for r in rows if r["purpose"] == "offers")

    assert newsletter["controller"].startswith("Kaufhaus Linde GmbH, Lindenallee 1, Berlin, Deutschland")
    assert newsletter["dpo"] == "Dr. Eva Kranz (externe Datenschutzbeauftragte), dsb@kaufhaus-linde.example"
    assert newsletter["data_subjects"] == "Newsletter-Abonnenten"
    assert newsletter["recipient_categories"] == "E-Mail-Versanddienstleister"
    assert (
        newsletter["third_country_transfers"]
        == "Push-Dienste (US): Standardvertragsklauseln, Art. 46(2)(c) GDPR; Modul 2"
    )
    assert "Tägliche verschlüsselte Sicherungen" in newsletter["security_measures"]
    assert offers["third_country_transfers"] == "keine"  # the catalogue says there are none
    assert offers["data_subjects"] == ""  # the catalogue does not say
    assert "Tage" in offers["retention"]


def test_the_records_page_reads_in_the_staff_members_language_and_names_what_is_missing(
    dpo: Client, dpo_en: Client, art30_catalogue: dict[str, Any]
) -> None:
    english = dpo_en.get("/admin/records-of-processing/")
    german = speaking(dpo, "de").get("/admin/records-of-processing/").content.decode()

    page = english.content.decode()
    assert english.status_code == 200
    assert "Controller and data protection officer (Art. 30(1)(a))" in page
    assert "Lindenallee 1, Berlin, Germany" in page
    assert "Newsletter subscribers" in page
    assert "Push services (US): standard contractual clauses, Art. 46(2)(c) GDPR; module 2" in page
    assert "<code>purposes[offers].data_subjects</code>" in page
    assert "Verantwortlicher und Datenschutzbeauftragte" in german
    assert "Newsletter-Abonnenten" in german
    assert "Standardvertragsklauseln" in german
    assert not AuditEntry.objects.filter(action="export").exists()  # reading the page exports nothing


def test_a_catalogue_without_art30_keys_shows_what_to_add(dpo_en: Client) -> None:
    page = dpo_en.get("/admin/records-of-processing/").content.decode()

    assert "What the catalogue does not say yet" in page
    assert "<code>controller</code>" in page
    assert "<code>dpo</code>" in page


def test_support_reads_the_records_page_but_not_a_stranger(support: Client, client: Client) -> None:
    assert support.get("/admin/records-of-processing/").status_code == 200
    assert client.get("/admin/records-of-processing/").status_code == 302


def test_the_demo_catalogue_says_everything_an_art30_record_needs_in_both_languages(db: None) -> None:
    demo = Path(__file__).resolve().parents[2] / "consent" / "demo" / "catalog.json"
    catalogue_apply(document=catalogue_load_file(str(demo)))
    catalogue_forget()

    german = records_of_processing(now=timezone.now(), language="de")
    english = records_of_processing(now=timezone.now(), language="en")

    assert german.missing == []
    assert german.controller is not None
    assert german.controller.address.endswith("Deutschland")
    assert english.controller is not None
    assert english.controller.address.endswith("Germany")
    assert german.dpo is not None
    push = {t.country for r in english.records for t in (r.transfers or ())}
    assert push == {"US", "IN"}
    assert all(r.data_subjects and r.recipient_categories for r in german.records)
    assert german.records[0].data_subjects != english.records[0].data_subjects
