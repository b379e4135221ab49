"""The details of a rights request: what each kind may carry, validated (400 with the field on anything
malformed), and the encrypted part (rectification values and evidence) read back for the workflow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from subjects import ports
from subjects.columns import REQUEST_DETAILS
from subjects.identity import KINDS, normalise
from subjects.keys import data_key, decrypt_field
from subjects.models import RightsRequest
from subjects.rights.errors import RequestDetailsError, RequestKindError

Kind = RightsRequest.Kind
RESTRICTION_GROUNDS = ("18(1)(a)", "18(1)(b)", "18(1)(c)", "18(1)(d)")
MAX_DETAILS_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Details:
    public: dict[str, Any]  # no personal data: stored in clear (objection scope or purpose, restriction ground)
    private: dict[str, Any] | None = None  # rectification values and evidence: stored under the subject's key


def _only(raw: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            raise RequestDetailsError(f"'{key}' is not a detail of this kind of request", field=f"details.{key}")


def details_parse(*, kind: str, raw: object) -> Details:
    """Validate a request's `details` for its kind (400 with the field on anything malformed)."""
    if kind not in Kind.values:
        raise RequestKindError(f"'{kind}' is not one of {', '.join(Kind.values)}", field="kind")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RequestDetailsError("must be an object", field="details")
    if len(json.dumps(raw)) > MAX_DETAILS_BYTES:
        raise RequestDetailsError(f"larger than {MAX_DETAILS_BYTES} bytes", field="details")
    if kind == Kind.OBJECTION:
        return Details(_objection(raw))
    if kind == Kind.RESTRICTION:
        _only(raw, ("ground",))
        ground = raw.get("ground")
        if ground not in RESTRICTION_GROUNDS:
            raise RequestDetailsError(f"must be one of {', '.join(RESTRICTION_GROUNDS)}", field="details.ground")
        return Details({"ground": ground})
    if kind == Kind.RECTIFICATION:
        return _rectification(raw)
    _only(raw, ())
    return Details({})


def _objection(raw: Mapping[str, Any]) -> dict[str, Any]:
    _only(raw, ("scope", "purpose"))
    if ("scope" in raw) == ("purpose" in raw):
        raise RequestDetailsError(
            'needs either {"scope": "direct_marketing"} or {"purpose": KEY}, not both and not neither', field="details"
        )
    if "scope" in raw:
        if raw["scope"] != "direct_marketing":
            raise RequestDetailsError("the only scope is 'direct_marketing'", field="details.scope")
        return {"scope": "direct_marketing"}
    purpose = raw["purpose"]
    if not isinstance(purpose, str) or purpose not in ports.consent_rights.catalogue().purposes:
        raise RequestDetailsError("is not a purpose of the catalogue", field="details.purpose")
    return {"purpose": purpose}


def _rectification(raw: Mapping[str, Any]) -> Details:
    _only(raw, ("identifiers", "profile", "evidence"))
    identifiers = raw.get("identifiers", {})
    profile = raw.get("profile", {})
    evidence = raw.get("evidence", {})
    for name, value in (("identifiers", identifiers), ("profile", profile), ("evidence", evidence)):
        if not isinstance(value, dict):
            raise RequestDetailsError("must be an object", field=f"details.{name}")
    if not identifiers and not profile:
        raise RequestDetailsError("names no corrected identifiers and no corrected profile", field="details")
    corrected: dict[str, str] = {}
    for kind, value in identifiers.items():
        if kind not in KINDS:
            raise RequestDetailsError(f"'{kind}' is not an identifier kind", field=f"details.identifiers.{kind}")
        corrected[kind] = normalise(kind, value, field=f"details.identifiers.{kind}")
    for name in profile:
        if not name or len(name) > 64:
            raise RequestDetailsError("a profile field name has 1 to 64 characters", field="details.profile")
    return Details(
        {"identifiers": sorted(corrected), "profile": sorted(profile)},
        {"identifiers": corrected, "profile": dict(profile), "evidence": dict(evidence)},
    )


def request_details_private(request: RightsRequest) -> dict[str, Any]:
    """The encrypted details (rectification values and evidence), for the workflow."""
    if not request.details_enc or request.subject is None:
        return {}
    subject = request.subject
    loaded: dict[str, Any] = json.loads(
        decrypt_field(subject, data_key(subject), REQUEST_DETAILS, bytes(request.details_enc), row_id=request.pk)
    )
    return loaded
