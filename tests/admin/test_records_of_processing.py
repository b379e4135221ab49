"""Art. 30 records of processing from the catalogue, as CSV and JSON."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.test import Client

from consent.clients import client_revoke
from consent.models import ApiClient, AuditEntry


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
def test_records_of_processing_as_csv(dpo: Client, anna: str) -> None:
    response = dpo.get("/admin/records-of-processing.csv")

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
