"""W3C DPV (issue 16): a purpose's `dpv` code is checked against the DPV list shipped with the code, the access report
shows the codes, and a person's consent record comes as JSON-LD in the DPV profile of ISO/IEC TS 27560 from the API
and the admin."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from consent.catalogue.dpv import dpv
from consent.catalogue.spec import CatalogueError
from consent.models import ConsentEvent, Purpose
from tests.api import Api
from tests.catalogue import CatalogueBuilder
from tests.factories import apply_catalogue

ANNA = {"email": "anna.dpv@example.de"}


def catalogue_with(code: str) -> dict[str, Any]:
    return CatalogueBuilder().purpose("newsletter", dpv=code).build()


@pytest.mark.django_db
def test_a_dpv_purpose_concept_is_accepted_and_stored() -> None:
    apply_catalogue(catalogue_with("dpv:DirectMarketing"))
    assert Purpose.objects.get(key="newsletter").dpv == "dpv:DirectMarketing"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "dpv:DirektMarketing",
            "'dpv:DirektMarketing' is not a purpose concept of DPV 2.1 "
            "(did you mean dpv:DirectMarketing or dpv:Marketing?)",
        ),
        ("dpv:Consent", "'dpv:Consent' is not a purpose concept of DPV 2.1"),  # a legal basis, not a purpose
        ("DirectMarketing", "'DirectMarketing' is not a DPV code: write it as dpv:Term, e.g. dpv:DirectMarketing"),
    ],
)
def test_a_code_dpv_does_not_have_is_an_error_naming_its_place(code: str, expected: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        apply_catalogue(catalogue_with(code))
    assert caught.value.errors == [f"purposes[0].dpv: {expected}"]


def test_the_shipped_list_says_what_it_is_and_holds_the_demo_s_codes() -> None:
    vocabulary = dpv()
    assert vocabulary.version == "2.1"
    assert vocabulary.namespace == "https://w3id.org/dpv#"
    with open("consent/demo/catalog.json", encoding="utf-8") as demo:
        codes = {p["dpv"] for p in json.load(demo)["purposes"] if "dpv" in p}
    assert codes
    assert codes <= set(vocabulary.purposes)
    bases = {"dpv:Consent", "dpv:Contract", "dpv:LegalObligation", "dpv:LegitimateInterest"}
    assert bases <= set(vocabulary.legal_bases)


@pytest.fixture
def api(db: None, make_client: Callable[..., str]) -> Api:
    apply_catalogue(catalogue_with("dpv:DirectMarketing"))
    return Api(make_client())


def jsonld(api: Api, subject: str) -> dict[str, Any]:
    response = api.http.get(
        f"/api/v1/subjects/{subject}/consents",
        HTTP_ACCEPT="application/ld+json",
        HTTP_AUTHORIZATION=f"Bearer {api.key}",
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/ld+json")
    document: dict[str, Any] = json.loads(response.content)
    return document


def test_a_person_s_consent_record_as_json_ld_in_the_dpv_profile(api: Api) -> None:
    # Given Anna's SMS newsletter grant and her withdrawal of push
    body = {"subject": ANNA, "purpose": "newsletter", "action": "grant", "notice_version": "2026-01", "source": "web"}
    anna = api.post("/api/v1/consents", {**body, "channel": "sms"}).json()["subject"]
    api.post("/api/v1/consents", {**body, "channel": "push"})
    api.post("/api/v1/consents", {**body, "channel": "push", "action": "withdraw", "notice_version": None})

    document = jsonld(api, anna)

    assert document["@context"]["dpv"] == "https://w3id.org/dpv#"
    consents = {c["assent:channel"]: c for c in document["@graph"] if c.get("@type") == "dpv:Consent"}
    assert set(consents) == {"sms", "push"}
    sms = consents["sms"]
    assert sms["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentGiven"}
    assert consents["push"]["dpv:hasConsentStatus"] == {"@id": "dpv:ConsentWithdrawn"}
    assert sms["dpv:hasPurpose"]["@type"] == ["dpv:DirectMarketing"]
    assert sms["dpv:hasLegalBasis"] == {"@id": "dpv:Consent"}
    assert sms["dpv:hasDataSubject"] == {"@id": f"urn:uuid:{anna}"}
    assert sms["dpv:hasNotice"] == {"dct:identifier": "newsletter/2026-01"}
    grant = ConsentEvent.objects.get(subject_id=anna, channel="sms")
    assert sms["assent:ledgerEvent"]["assent:hash"] == grant.hash
    assert "anna.dpv" not in json.dumps(document)  # the record names the person by id only
    # The plain JSON answer is unchanged
    assert {s["channel"] for s in api.get(f"/api/v1/subjects/{anna}/consents").json()["states"]} == {"sms", "push"}


def test_the_access_report_names_each_purpose_s_dpv_codes(api: Api) -> None:
    # The report (subjects.rights.access.report) reads the purposes' facts through the consent port.
    from subjects import ports

    facts = ports.consent_rights.catalogue().purposes["newsletter"]
    assert (facts.dpv, facts.dpv_legal_basis) == ("dpv:DirectMarketing", "dpv:Consent")
    offers = ports.consent_rights.catalogue().purposes["offers"]
    assert (offers.dpv, offers.dpv_legal_basis) == ("", "dpv:LegitimateInterest")
