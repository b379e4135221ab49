"""A rights request's result as the DPO reads it on the request's page: what the person got (an export), what was
deleted and what was kept where, why and until when (erasure), what changed (rectification, restriction,
objection). Built from the stored result (counts, names and dates only); the raw JSON stays on the page for
auditors."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from subjects.admin.stored_words import stored_text
from subjects.models import RightsRequest
from subjects.rights.exports import export_url

Kind = RightsRequest.Kind
EXPORTS = (Kind.ACCESS, Kind.PORTABILITY)


def moment(value: object) -> datetime | date | str | None:
    """An ISO date or time from the result as a value the template formats in the reader's language."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if len(value) == 10:
        return parsed.date()
    return parsed


def request_report(rights_request: RightsRequest) -> dict[str, Any] | None:
    """The readable report of a finished request, or None while it has no result."""
    result = rights_request.result or {}
    if not result:
        return None
    report: dict[str, Any] = {
        "message": stored_text(result.get("message", "")),
        "data_found": result.get("data_found"),
        "errors": result.get("errors", []),
        "rejected": rights_request.status == RightsRequest.Status.REJECTED,
        "reason": result.get("reason", ""),
        "right_to_complain": stored_text(result.get("right_to_complain", "")),
    }
    kind = rights_request.kind
    if kind in EXPORTS:
        report["export"] = _export(rights_request, result)
    elif kind == Kind.ERASURE and "sources" in result:
        report["erasure"] = _erasure(result)
    elif kind in (Kind.RECTIFICATION, Kind.RESTRICTION, Kind.OBJECTION):
        report["changes"] = _changes(kind, result)
        report["recipients"] = [_recipient(r) for r in result.get("recipients", [])]
    return report


def _export(rights_request: RightsRequest, result: dict[str, Any]) -> dict[str, Any] | None:
    export = result.get("export")
    if not export:
        return None
    expires_at = moment(export.get("expires_at"))
    live = isinstance(expires_at, datetime) and expires_at > timezone.now()
    summary = result.get("summary", {})
    return {
        "size": export.get("size"),
        "files": export.get("files", []),
        "expires_at": expires_at,
        "expired": not live,
        # The API's signed link: it still needs a Bearer key with requests:read or the person's portal session.
        "link": export_url(request_id=rights_request.pk) if live else "",
        "counts": [
            (_("records"), summary.get("records", 0)),
            (_("identifiers"), summary.get("identifiers", 0)),
            (_("consent events"), summary.get("consent_events", 0)),
            (_("recipients"), summary.get("recipients", 0)),
        ],
        "categories": summary.get("categories", []),
        "sources": summary.get("sources", []),
    }


def _kept(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "what": stored_text(item.get("category") or item.get("what", "")),
        "count": item.get("count"),
        "where": stored_text(item.get("where", "")),
        "why": stored_text(item.get("why", "")),
        "until": moment(item.get("until")),
        "instruction": stored_text(item.get("instruction", "")),
    }


def _erasure(result: dict[str, Any]) -> dict[str, Any]:
    profile = result.get("profile", {})
    consent = result.get("consent", {})
    return {
        "erased_at": moment(result.get("erased_at")),
        "sources": [
            {"name": s.get("name") or s.get("source"), "deleted": s.get("deleted", 0), "kept": len(s.get("kept", []))}
            for s in result.get("sources", [])
        ],
        "systems": [
            {
                "name": s.get("name") or s.get("source"),
                "asked": s.get("asked"),
                "erased": s.get("erased", []),
                "kept": [_kept(k) for k in s.get("kept", [])],
            }
            for s in result.get("systems", [])
        ],
        "kept": [_kept(k) for k in result.get("kept", [])],
        "counts": [
            (_("identifiers deleted"), profile.get("identifiers_deleted", 0)),
            (_("profile deleted"), _("yes") if profile.get("profile_deleted") else _("no")),
            (_("consent events moved to the evidence store"), consent.get("events_moved", 0)),
            (_("logs deleted"), consent.get("logs_deleted", 0)),
            (_("identifiers kept as suppressions"), result.get("suppressed_identifiers", 0)),
            (_("data key destroyed"), _("yes") if result.get("data_key_destroyed") else _("no")),
        ],
        "recipients": [_recipient(r) for r in result.get("recipients", [])],
        "recipients_note": stored_text(result.get("recipients_note", "")),
    }


def _changes(kind: str, result: dict[str, Any]) -> list[tuple[str, str]]:
    if kind == Kind.RECTIFICATION:
        rectified = result.get("rectified", {})
        return [
            (_("identifiers corrected"), ", ".join(rectified.get("identifiers", [])) or "-"),
            (_("profile fields corrected"), ", ".join(rectified.get("profile", [])) or "-"),
        ]
    if kind == Kind.RESTRICTION:
        return [
            (_("ground"), str(result.get("ground") or "-")),
            (_("processing restricted"), _("yes") if result.get("restricted") else _("no")),
        ]
    objection = result.get("objection") or {}
    what = objection.get("purpose") or objection.get("scope") or "-"
    return [
        (_("objection to"), str(what)),
        (_("in force"), _("yes") if result.get("in_force") else _("no")),
    ]


def _recipient(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": item.get("name", ""),
        "kind": item.get("kind", ""),
        "purposes": ", ".join(sorted(item.get("purposes", []))),
        "count": item.get("count", 0),
        "first_at": moment(item.get("first_at")),
        "last_at": moment(item.get("last_at")),
    }
