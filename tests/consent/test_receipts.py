"""Signed consent receipts (issue 16): a person or an auditor verifies a receipt with any JOSE library and the keys
at /.well-known/jwks.json, without trusting Assent's database. Verified here with PyJWT, not joserfc (which signs)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import jwt
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from config.env import new_signing_key_pem, retired_signing_keys
from consent.expiry import consents_expire
from consent.models import Notice
from tests.api import Api, assert_problem

ANNA = {"email": "anna.receipt@example.de"}


def grant(api: Api, **overrides: Any) -> dict[str, Any]:
    body = {
        "subject": ANNA,
        "purpose": "newsletter",
        "channel": "sms",
        "action": "grant",
        "notice_version": "2026-01",
        "source": "webshop",
        **overrides,
    }
    response = api.post("/api/v1/consents", {key: value for key, value in body.items() if value is not None})
    assert response.status_code == 201, response.content
    answer: dict[str, Any] = response.json()
    return answer


def history(api: Api, subject: str) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/subjects/{subject}/consents/history")
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def receipt(api: Api, event_id: str) -> str:
    response = api.get(f"/api/v1/consents/events/{event_id}/receipt")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/jose"
    return response.content.decode("ascii")


def published_keys() -> dict[str, jwt.PyJWK]:
    response = Client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    return {key["kid"]: jwt.PyJWK(key) for key in response.json()["keys"]}


def verify(token: str) -> dict[str, Any]:
    """What a verifier outside Assent does: the key by the header's kid from the JWKS, then PyJWT."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    key = published_keys()[header["kid"]]
    claims: dict[str, Any] = jwt.decode(token, key.key, algorithms=["EdDSA"], options={"require": ["iss", "sub"]})
    return claims


def public_x(pem: str) -> str:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_grant_s_receipt_verifies_with_an_independent_library_and_names_the_ledger_event(api: Api) -> None:
    # Given Anna's grant, as her history lists it
    anna = grant(api)["subject"]
    [event] = history(api, anna)

    # When her receipt is fetched and verified against the published keys
    claims = verify(receipt(api, event["id"]))

    # Then it is a Kantara v1.1 receipt of exactly that ledger event, for her and no one else
    assert claims["version"] == "KI-CR-v1.1.0"
    assert claims["sub"] == claims["piiPrincipalId"] == anna
    assert claims["consentReceiptID"] == claims["jti"] == event["id"]
    assert claims["services"][0]["purposes"][0]["purposeCategory"] == ["newsletter"]
    record = claims["record"]
    assert (record["event_type"], record["channel"], record["method"], record["actor"]) == (
        "grant",
        "sms",
        "webshop",
        "subject",
    )
    assert record["ledger"] == {"seq": event["seq"], "prev_hash": event["prev_hash"], "hash": event["hash"]}
    # the words she was shown, by their digest
    texts = Notice.objects.get(purpose__key="newsletter", version="2026-01").texts
    assert record["notice"] == {"version": "2026-01", "text_sha256": hashlib.sha256(rfc8785.dumps(texts)).hexdigest()}
    assert record["legal_basis"] == "consent"
    # no identifier of hers is in it
    assert "anna.receipt" not in json.dumps(claims)


def test_a_receipt_with_one_byte_changed_does_not_verify(api: Api) -> None:
    anna = grant(api)["subject"]
    token = receipt(api, history(api, anna)[0]["id"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    # the channel changed from sms to sma: one byte
    forged = json.dumps(claims).replace('"sms"', '"sma"', 1).encode()
    forged_payload = base64.urlsafe_b64encode(forged).decode().rstrip("=")

    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{forged_payload}.{signature}")
    # and a signature with one byte flipped
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    with pytest.raises(jwt.InvalidSignatureError):
        verify(f"{header}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).decode().rstrip('=')}")
    assert verify(token)["sub"] == anna  # the untouched receipt still does


def test_receipts_signed_before_a_key_rotation_still_verify(api: Api, settings: Any) -> None:
    # Given a receipt signed with the first key
    anna = grant(api)["subject"]
    first_pem = settings.ASSENT_SIGNING_KEY
    old = receipt(api, history(api, anna)[0]["id"])
    old_kid = jwt.get_unverified_header(old)["kid"]

    # When the key is rotated, the old one listed as retired
    settings.ASSENT_SIGNING_KEY = new_signing_key_pem()
    settings.ASSENT_SIGNING_KEYS_RETIRED = [public_x(first_pem)]
    grant(api, action="withdraw", notice_version=None)
    withdrawal = history(api, anna)[-1]
    new = receipt(api, withdrawal["id"])

    # Then both keys are published, the new receipt is signed with the new key, and both receipts verify
    assert set(published_keys()) == {old_kid, jwt.get_unverified_header(new)["kid"]}
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    assert verify(old)["record"]["event_type"] == "grant"
    assert verify(new)["record"]["event_type"] == "withdraw"

    # And had the old key not been kept, the old receipt would name a key nobody publishes
    settings.ASSENT_SIGNING_KEYS_RETIRED = []
    assert old_kid not in published_keys()


def test_an_objection_has_a_receipt(api: Api) -> None:
    anna = grant(api)["subject"]
    grant(api, purpose="offers", action="object", channel=None, notice_version=None)
    objection = history(api, anna)[-1]
    claims = verify(receipt(api, objection["id"]))
    assert (claims["record"]["event_type"], claims["record"]["purpose"]) == ("object", "offers")


@pytest.mark.django_db(transaction=True)
def test_an_expiry_is_nothing_the_person_decided_and_has_no_receipt(
    catalogue: dict[str, Any], make_client: Callable[..., str]
) -> None:
    # Given a grant 731 days old (the newsletter's consents are valid for 730) that the expiry task has expired
    api = Api(make_client())
    with freeze_time(timezone.now() - timedelta(days=731)):
        anna = grant(api)["subject"]
    consents_expire()
    granted, expired = history(api, anna)
    assert expired["action"] == "expire"

    # Then the grant has a receipt, the ledger's own expiry has none, and neither has an event nobody recorded
    assert verify(receipt(api, granted["id"]))["record"]["event_type"] == "grant"
    assert_problem(api.get(f"/api/v1/consents/events/{expired['id']}/receipt"), 404, "receipt_not_found")
    assert_problem(
        api.get("/api/v1/consents/events/00000000-0000-4000-8000-000000000000/receipt"), 404, "receipt_not_found"
    )


def test_a_client_limited_to_other_purposes_gets_no_receipt_of_this_one(api: Api, api_for: Callable[..., Api]) -> None:
    anna = grant(api)["subject"]
    event = history(api, anna)[0]
    offers_only = api_for("consent:read", purposes=("offers",))

    assert_problem(offers_only.get(f"/api/v1/consents/events/{event['id']}/receipt"), 404, "receipt_not_found")
    assert api_for("consent:read").get(f"/api/v1/consents/events/{event['id']}/receipt").status_code == 200


def test_without_a_signing_key_receipts_are_503_not_unsigned(api: Api, settings: Any) -> None:
    anna = grant(api)["subject"]
    settings.ASSENT_SIGNING_KEY = None
    assert_problem(
        api.get(f"/api/v1/consents/events/{history(api, anna)[0]['id']}/receipt"), 503, "receipts_unavailable"
    )


def test_a_retired_key_that_is_not_an_ed25519_public_key_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSENT_SIGNING_KEYS_RETIRED", "not-a-key")
    with pytest.raises(ImproperlyConfigured, match="ASSENT_SIGNING_KEYS_RETIRED"):
        retired_signing_keys("ASSENT_SIGNING_KEYS_RETIRED")
    monkeypatch.setenv("ASSENT_SIGNING_KEYS_RETIRED", public_x(new_signing_key_pem()))
    assert len(retired_signing_keys("ASSENT_SIGNING_KEYS_RETIRED")) == 1
