"""Art. 30 records of processing, computed from the catalogue: purposes, legal bases (with W3C DPV codes),
data categories, recipients (API clients allowed the purpose, and the connected systems that hold its data),
retention per source category. Rendered as JSON and as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from config.names import as_given, localised
from consent.models import ApiClient, CatalogueRevision, DataCategory, Notice, Purpose, Source, SourceCategory

# The legal bases of Art. 6(1) the catalogue knows, with their W3C Data Privacy Vocabulary (DPV) concepts.
LEGAL_BASES: dict[str, tuple[str, str]] = {
    Purpose.LegalBasis.CONSENT: ("Art. 6(1)(a) GDPR", "dpv:Consent"),
    Purpose.LegalBasis.CONTRACT: ("Art. 6(1)(b) GDPR", "dpv:Contract"),
    Purpose.LegalBasis.LEGAL_OBLIGATION: ("Art. 6(1)(c) GDPR", "dpv:LegalObligation"),
    Purpose.LegalBasis.LEGITIMATE_INTEREST: ("Art. 6(1)(f) GDPR", "dpv:LegitimateInterest"),
}
# Art. 30(1)(g): a general description of the technical and organisational security measures.
SECURITY_MEASURES = (
    "personal data encrypted at rest per person (AES-256-GCM data keys wrapped by rotating master keys)",
    "identifiers found only through a keyed blind index (HMAC-SHA256), never by scanning decrypted data",
    "API clients authenticate with keys stored only as SHA-256 digests, limited to scopes and purposes",
    "every consent change in a per-person HMAC-chained, append-only ledger",
    "staff sign in with a password and a TOTP second factor; every staff action and every view of "
    "decrypted personal data is written to an append-only audit log",
)


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    name: str


@dataclass(frozen=True, slots=True)
class ApiRecipient:
    name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConnectedSystem:
    key: str
    name: str
    system_of_record: bool


@dataclass(frozen=True, slots=True)
class Retention:
    source: str
    category: str
    delete_after_days: int
    legal_hold_years: int | None
    legal_hold_from: str
    legal_hold_law: str

    def describe(self) -> str:
        text = f"{self.source}/{self.category}: {self.delete_after_days} days"
        if self.legal_hold_years is not None:
            start = "from the end of the year" if self.legal_hold_from == "end_of_year" else "from the record"
            text += f", legal hold {self.legal_hold_years} years {start} ({self.legal_hold_law})"
        return text


@dataclass(frozen=True, slots=True)
class ProcessingRecord:
    purpose: str
    name: str
    legal_basis: str
    gdpr_article: str
    dpv_legal_basis: str
    dpv_purpose: str
    marketing: bool
    channels: tuple[str, ...]
    data_categories: tuple[Category, ...]
    api_clients: tuple[ApiRecipient, ...]
    connected_systems: tuple[ConnectedSystem, ...]
    retention: tuple[Retention, ...]
    consent_valid_days: int | None
    automated_decision: str
    notice_version: str


@dataclass(frozen=True, slots=True)
class RecordsOfProcessing:
    generated_at: datetime
    catalogue_revision: int
    records: tuple[ProcessingRecord, ...]
    security_measures: tuple[str, ...] = SECURITY_MEASURES


def _name(row: DataCategory | Purpose | Source) -> str:
    """The record of processing is kept in German, the catalogue's fallback language."""
    return localised(as_given(row.name, row.names))


def records_of_processing(*, now: datetime) -> RecordsOfProcessing:
    """Every purpose of the catalogue as an Art. 30(1) record, in a fixed number of queries."""
    revision = CatalogueRevision.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    newest: dict[int, str] = {}
    for purpose_id, version in Notice.objects.order_by("created_at", "pk").values_list("purpose_id", "version"):
        newest[purpose_id] = version
    holdings: dict[str, list[SourceCategory]] = {}
    for holding in SourceCategory.objects.select_related("source", "category").order_by("source__key"):
        holdings.setdefault(holding.category.key, []).append(holding)
    clients = list(
        ApiClient.objects.filter(revoked_at__isnull=True).order_by("name").values_list("name", "scopes", "purposes")
    )
    records = []
    for purpose in Purpose.objects.prefetch_related("channels", "data_categories").order_by("key"):
        categories = sorted(purpose.data_categories.all(), key=lambda c: c.key)
        held = [h for c in categories for h in holdings.get(c.key, [])]
        article, dpv_basis = LEGAL_BASES.get(purpose.legal_basis, ("", ""))
        systems = {
            h.source.key: ConnectedSystem(h.source.key, _name(h.source), h.source.system_of_record) for h in held
        }
        records.append(
            ProcessingRecord(
                purpose=purpose.key,
                name=_name(purpose),
                legal_basis=purpose.legal_basis,
                gdpr_article=article,
                dpv_legal_basis=dpv_basis,
                dpv_purpose=purpose.dpv,
                marketing=purpose.marketing,
                channels=tuple(sorted(c.key for c in purpose.channels.all())),
                data_categories=tuple(Category(c.key, _name(c)) for c in categories),
                api_clients=tuple(
                    ApiRecipient(name, tuple(scopes))
                    for name, scopes, allowed in clients
                    if not allowed or purpose.key in allowed
                ),
                connected_systems=tuple(systems[key] for key in sorted(systems)),
                retention=tuple(
                    Retention(
                        h.source.key,
                        h.category.key,
                        h.delete_after_days,
                        h.legal_hold_years,
                        h.legal_hold_from,
                        h.legal_hold_law,
                    )
                    for h in sorted(held, key=lambda h: (h.source.key, h.category.key))
                ),
                consent_valid_days=purpose.consent_valid_days,
                automated_decision=localised(as_given(purpose.automated_decision, purpose.automated_decision_texts)),
                notice_version=newest.get(purpose.pk, ""),
            )
        )
    return RecordsOfProcessing(generated_at=now, catalogue_revision=revision, records=tuple(records))


def records_as_json(records: RecordsOfProcessing) -> dict[str, Any]:
    return {
        "generated_at": records.generated_at.isoformat(),
        "catalogue_revision": records.catalogue_revision,
        "security_measures": list(records.security_measures),
        "records": [_record_json(r) for r in records.records],
    }


def _record_json(record: ProcessingRecord) -> dict[str, Any]:
    body = asdict(record)
    body["channels"] = list(record.channels)
    body["retention"] = [{**asdict(r), "description": r.describe()} for r in record.retention]
    return body


CSV_COLUMNS = (
    "purpose",
    "name",
    "legal_basis",
    "gdpr_article",
    "dpv_legal_basis",
    "dpv_purpose",
    "marketing",
    "channels",
    "data_categories",
    "recipients_api_clients",
    "recipients_connected_systems",
    "retention",
    "consent_valid_days",
    "automated_decision",
    "notice_version",
)


def records_as_csv(records: RecordsOfProcessing) -> str:
    """One row per purpose; lists joined with '; '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in records.records:
        writer.writerow(
            [
                _cell(value)
                for value in (
                    r.purpose,
                    r.name,
                    r.legal_basis,
                    r.gdpr_article,
                    r.dpv_legal_basis,
                    r.dpv_purpose,
                    "yes" if r.marketing else "no",
                    "; ".join(r.channels),
                    "; ".join(f"{c.key} ({c.name})" for c in r.data_categories),
                    "; ".join(f"{c.name} [{', '.join(c.scopes)}]" for c in r.api_clients),
                    "; ".join(
                        f"{s.name} ({s.key}{', system of record' if s.system_of_record else ''})"
                        for s in r.connected_systems
                    ),
                    "; ".join(h.describe() for h in r.retention),
                    "" if r.consent_valid_days is None else str(r.consent_valid_days),
                    r.automated_decision,
                    r.notice_version,
                )
            ]
        )
    return out.getvalue()


def _cell(value: str) -> str:
    # A cell that starts like a formula would run as one when the DPO opens the file in a spreadsheet.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
