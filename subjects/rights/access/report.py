"""The Art. 15 report: computed from this subject's own records and logs and the catalogue, as JSON and as HTML in
German and English."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.template.loader import render_to_string
from django.utils import translation

from subjects import ports
from subjects.models import RightsRequest
from subjects.rights import texts


def report_build(
    *,
    catalogue: ports.RightsCatalogue,
    request: RightsRequest,
    now: datetime,
    data_found: bool,
    categories: dict[str, dict[str, Any]],
    profile_fields: list[str],
    identifier_kinds: list[str],
    consent: dict[str, list[dict[str, Any]]],
    events: int,
    event_sources: list[str],
    notices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Art. 15(1)(a)-(h), computed from this subject's own records and logs and the catalogue."""
    purposes = _purposes(catalogue, categories, profile_fields, consent)
    storage = _storage(catalogue, categories)
    sources: dict[str, int] = {}
    for entry in categories.values():
        for source, count in entry["sources"].items():
            sources[source] = sources.get(source, 0) + count
    return {
        "request": str(request.id),
        "generated_at": now.isoformat(),
        "data_found": data_found,
        "message": texts.NO_DATA_FOUND if not data_found else texts.ACCESS_DONE,
        "purposes": purposes,
        "categories": [
            {"key": k, "name": catalogue.categories.get(k, k), "records": v["count"], "sources": sorted(v["sources"])}
            for k, v in sorted(categories.items())
        ],
        "identifiers": identifier_kinds,
        "profile_fields": profile_fields,
        "recipients": [
            {
                k: r.get(k)
                for k in ("name", "kind", "purposes", "categories", "channels", "count", "first_at", "last_at")
            }
            for r in consent["recipient"]
        ],
        "notices": [
            {k: n.get(k) for k in ("event", "recipient", "told_at", "acknowledged_at", "status")} for n in notices or []
        ],
        "storage": storage,
        "sources": [
            {"key": k, "name": catalogue.sources[k].name if k in catalogue.sources else k, "records": n}
            for k, n in sorted(sources.items())
        ],
        "consent_sources": event_sources,
        "rights": texts.RIGHTS["en"],
        "right_to_complain": texts.COMPLAINT,
        "automated_decisions": [
            {"purpose": p["key"], "text": catalogue.purposes[p["key"]].automated_decision}
            for p in purposes
            if catalogue.purposes[p["key"]].automated_decision
        ],
        "consent_history": {"events": events, "file": "consent_history.json"},
    }


def _purposes(
    catalogue: ports.RightsCatalogue,
    categories: dict[str, dict[str, Any]],
    profile_fields: list[str],
    consent: dict[str, list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Art. 15(1)(a), (c): the purposes that use a category held of the person, or that they consented or objected
    to, with the consent state per channel."""
    held = set(categories)
    if profile_fields:
        held |= set(catalogue.profile_categories)
    states: dict[str, list[dict[str, Any]]] = {}
    for state in consent["state"]:
        states.setdefault(state["purpose"], []).append({"channel": state["channel"], "state": state["status"]})
    objected = {o["purpose"] for o in consent["objection"]}
    consent_purposes = set(states) | {p for p in objected if p}
    purposes: list[dict[str, Any]] = []
    for key, purpose in sorted(catalogue.purposes.items()):
        used = sorted(held & set(purpose.categories))
        if not used and key not in consent_purposes:
            continue
        purposes.append(
            {
                "key": key,
                "name": purpose.name,
                "legal_basis": purpose.legal_basis,
                "dpv": purpose.dpv or None,
                "dpv_legal_basis": purpose.dpv_legal_basis or None,
                "marketing": purpose.marketing,
                "categories": used,
                "consent": states.get(key, []),
                "objected": key in objected or ("" in objected and purpose.marketing),
            }
        )
    return purposes


def _storage(catalogue: ports.RightsCatalogue, categories: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Art. 15(1)(d): how long each category of each source is stored, and any legal hold."""
    storage = []
    for category, entry in sorted(categories.items()):
        for source in sorted(entry["sources"]):
            facts = catalogue.sources.get(source)
            holding = facts.holdings.get(category) if facts else None
            storage.append(
                {
                    "source": source,
                    "source_name": facts.name if facts else source,
                    "category": category,
                    "delete_after_days": holding.delete_after_days if holding else None,
                    "legal_hold": (
                        {"years": holding.hold_years, "from": holding.hold_from, "law": holding.hold_law}
                        if holding and holding.hold_years
                        else None
                    ),
                }
            )
    return storage


def report_html(report: dict[str, Any], lang: str, catalogue: ports.RightsCatalogue) -> str:
    # The counts ("1 Datensatz", "3 Datensätze") are the catalogue's plural forms, in the report's language.
    with translation.override(lang):
        return _report_html(report, lang, catalogue)


def _report_html(report: dict[str, Any], lang: str, catalogue: ports.RightsCatalogue) -> str:
    return render_to_string(
        "subjects/access_report.html",
        {
            "lang": lang,
            "L": texts.LABELS[lang],
            "report": report,
            "view": report_view(report, lang, catalogue),
            "rights": texts.RIGHTS[lang],
            "complaint": texts.COMPLAINT_TEXT[lang],
            "bases": texts.LEGAL_BASES[lang],
        },
    )


def report_view(report: dict[str, Any], lang: str, catalogue: ports.RightsCatalogue) -> dict[str, Any]:
    """The report as its reader reads it: names instead of keys, dates in the reader's format (29.11.2026), every
    storage period as a sentence. report.json keeps the keys and ISO dates, for machines."""
    categories = dict(catalogue.categories)
    purposes = {key: p.name for key, p in catalogue.purposes.items()}
    identifiers = texts.IDENTIFIER_NAMES[lang]

    def names(keys: list[str] | None, known: dict[str, str]) -> str:
        return ", ".join(known.get(k, k) for k in keys or [])

    def day(value: Any) -> str:
        return texts.date_format(value, lang) if value else "—"

    return {
        "generated": day(report.get("generated_at")),
        "purposes": [dict(p, category_names=names(p["categories"], categories)) for p in report["purposes"]],
        "identifiers": names(report["identifiers"], identifiers),
        "profile_fields": ", ".join(report.get("profile_fields", [])),
        "recipients": [
            dict(
                r,
                purpose_names=names(r.get("purposes"), purposes),
                what=names(r.get("categories"), categories) or ", ".join(r.get("channels") or []),
                last=day(r.get("last_at")),
            )
            for r in report["recipients"]
        ],
        "notices": [
            dict(n, told=day(n.get("told_at")), acknowledged=day(n.get("acknowledged_at"))) for n in report["notices"]
        ],
        "storage": [
            dict(s, category_name=categories.get(s["category"], s["category"]), period=texts.period_text(s, lang))
            for s in report["storage"]
        ],
        "automated": [
            {"purpose": purposes.get(a["purpose"], a["purpose"]), "text": a["text"]}
            for a in report["automated_decisions"]
        ],
    }
