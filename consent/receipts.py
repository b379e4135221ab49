"""Signed consent receipts: a proof of one ledger event that a person or an auditor can check without trusting
Assent's database (DESIGN.md, "Signed consent receipts").

A receipt is a compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037) by `ASSENT_SIGNING_KEY`; its header
names the key by `kid`, the key's RFC 7638 thumbprint. The payload holds the Kantara Consent Receipt v1.1 fields,
and under `record` the ISO/IEC TS 27560 fields of the event: its type, time, method, actor, notice version and the
SHA-256 of the notice text, legal basis, and the ledger's `seq`, `prev_hash` and `hash`, which tie the receipt to the
hash chain. Ed25519 signatures are deterministic, so a receipt is rendered on demand and is the same every time.

`/.well-known/jwks.json` publishes the signing key and every key retired by rotation (`ASSENT_SIGNING_KEYS_RETIRED`),
so that receipts signed before a rotation still verify."""

from __future__ import annotations

import functools
import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import rfc8785
from django.conf import settings
from joserfc import jws
from joserfc.jwk import OKPKey

from config.errors import NotFoundError, UnavailableError
from consent.catalogue.snapshot import catalogue_snapshot
from consent.models import ConsentEvent, Notice

MEDIA_TYPE = "application/jose"  # RFC 7515 section 9.2.1: the compact serialization
RECEIPT_VERSION = "KI-CR-v1.1.0"
ALGORITHM = "EdDSA"  # API.md; RFC 9864's fully specified "Ed25519" names the same signature
# The events a person decided (or that decided for them): a receipt proves what they agreed to or refused.
RECEIPT_ACTIONS = frozenset(
    {
        ConsentEvent.Action.GRANT,
        ConsentEvent.Action.WITHDRAW,
        ConsentEvent.Action.CONFIRM,
        ConsentEvent.Action.OBJECT,
    }
)


class ReceiptNotFoundError(NotFoundError):
    code = "receipt_not_found"
    title = "No consent receipt for this event"


class ReceiptsUnavailableError(UnavailableError):
    code = "receipts_unavailable"
    title = "Consent receipts cannot be signed: no signing key is configured"


@dataclass(frozen=True, slots=True)
class SigningKeys:
    current: OKPKey
    kid: str
    published: tuple[dict[str, str], ...]  # public JWKs: the current key first, then every retired one


def signing_keys() -> SigningKeys:
    return _signing_keys(settings.ASSENT_SIGNING_KEY, tuple(settings.ASSENT_SIGNING_KEYS_RETIRED))


@functools.lru_cache(maxsize=4)
def _signing_keys(pem: str | None, retired: tuple[str, ...]) -> SigningKeys:
    if not pem:
        raise ReceiptsUnavailableError("set ASSENT_SIGNING_KEY (an Ed25519 private key, PKCS#8 PEM)")
    current = OKPKey.import_key(pem)
    published = [_public_jwk(current)]
    for x in retired:
        key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": x})
        if key.thumbprint() != published[0]["kid"]:
            published.append(_public_jwk(key))
    return SigningKeys(current=current, kid=current.thumbprint(), published=tuple(published))


def _public_jwk(key: OKPKey) -> dict[str, str]:
    public = key.as_dict(private=False)
    return {
        "kty": "OKP",
        "crv": str(public["crv"]),
        "x": str(public["x"]),
        "kid": key.thumbprint(),
        "use": "sig",
        "alg": ALGORITHM,
    }


def jwks() -> dict[str, Any]:
    """The JSON Web Key Set of `/.well-known/jwks.json`."""
    return {"keys": list(signing_keys().published)}


def receipt_for_event(*, event_id: Any, purposes: frozenset[str] = frozenset()) -> str:
    """The compact JWS of one ledger event a person decided; ReceiptNotFoundError for an event that is not one (a
    merge, an expiry, an erasure), that no longer exists (an erased person's events left the ledger), or whose
    purpose is not among `purposes` (an API client limited to some purposes; empty: every purpose)."""
    event = ConsentEvent.objects.filter(pk=event_id, action__in=RECEIPT_ACTIONS).first()
    if event is None or (purposes and event.purpose and event.purpose not in purposes):
        raise ReceiptNotFoundError("no receipt: unknown event, or not a grant, withdrawal, objection or confirmation")
    return receipt_sign(event)


def receipts_for_subject(*, subject_id: Any) -> list[tuple[ConsentEvent, str]]:
    """Every receipt of a person, in chain order (the portal's history, the Art. 15 export)."""
    events = ConsentEvent.objects.filter(subject_id=subject_id, action__in=RECEIPT_ACTIONS).order_by("seq")
    return [(event, receipt_sign(event)) for event in events]


def receipt_sign(event: ConsentEvent) -> str:
    keys = signing_keys()
    payload = rfc8785.dumps(receipt_claims(event))
    with warnings.catch_warnings():
        # joserfc warns that RFC 9864 deprecates "EdDSA" for the fully specified "Ed25519"; API.md fixes "EdDSA",
        # which every JOSE library verifies today.
        warnings.simplefilter("ignore")
        return jws.serialize_compact(
            {"alg": ALGORITHM, "kid": keys.kid, "typ": "JWT", "cty": "consent-receipt+json"},
            payload,
            keys.current,
            algorithms=[ALGORITHM],
        )


def receipt_claims(event: ConsentEvent) -> dict[str, Any]:
    """The receipt's payload: Kantara Consent Receipt v1.1, the ISO/IEC TS 27560 record of the event under `record`,
    and the JWT claims that let any JOSE library read it. Holds the person's subject id, never an identifier."""
    info = catalogue_snapshot().purposes.get(event.purpose) if event.purpose else None
    purpose_name = info.display_name() if info else event.purpose or "direct marketing"
    legal_basis = info.rule.legal_basis.value if info else None
    categories = list(info.data_categories) if info else []
    notice_digest = _notice_digest(event.purpose, event.notice_version)
    controller = settings.ASSENT_CONTROLLER_NAME
    return {
        # JWT (RFC 7519)
        "iss": settings.ASSENT_BASE_URL,
        "sub": str(event.subject_id),
        "jti": str(event.id),
        "iat": int(event.recorded_at.timestamp()),
        # Kantara Consent Receipt Specification v1.1
        "version": RECEIPT_VERSION,
        "jurisdiction": "DE",
        "consentTimestamp": int(event.occurred_at.timestamp()),
        "collectionMethod": event.source,
        "consentReceiptID": str(event.id),
        "language": settings.LANGUAGE_CODE,
        "piiPrincipalId": str(event.subject_id),
        "piiControllers": [{"piiController": controller, "piiControllerUrl": settings.ASSENT_BASE_URL}],
        "policyUrl": f"{settings.ASSENT_BASE_URL}/privacy",
        "services": [
            {
                "service": purpose_name,
                "purposes": [
                    {
                        "purpose": purpose_name,
                        "purposeCategory": [event.purpose or "direct-marketing"],
                        "consentType": "EXPLICIT" if legal_basis in (None, "consent") else "IMPLICIT",
                        "purposeTermination": "withdrawal at any time (Art. 7(3) GDPR)",
                        "piiCategory": categories,
                        "primaryPurpose": True,
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        # ISO/IEC TS 27560: the consent record's event
        "record": {
            "event_id": str(event.id),
            "event_type": event.action,
            "event_time": event.occurred_at.isoformat(),
            "recorded_time": event.recorded_at.isoformat(),
            "method": event.source,
            "actor": event.actor,
            "purpose": event.purpose or None,
            "channel": event.channel or None,
            "legal_basis": legal_basis,
            "notice": {"version": event.notice_version or None, "text_sha256": notice_digest},
            "ledger": {"seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash},
        },
    }


def _notice_digest(purpose: str, version: str) -> str | None:
    """SHA-256 of the notice's texts as RFC 8785 JSON ({"de": ..., "en": ...}): the words the person was shown."""
    if not purpose or not version:
        return None
    texts = Notice.objects.filter(purpose__key=purpose, version=version).values_list("texts", flat=True).first()
    return None if texts is None else hashlib.sha256(rfc8785.dumps(texts)).hexdigest()
