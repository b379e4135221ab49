"""Art. 30(1) records of processing, computed from the catalogue: the controller and the DPO (a), purposes (b),
legal bases (with W3C DPV codes), categories of data subjects (c) and of data, recipients (d: the catalogue's
categories, the API clients allowed the purpose, and the connected systems that hold its data), third-country
transfers with their safeguards (e), retention per source category (f), and the technical and organisational
measures (g). In the staff member's language; rendered as a page, as JSON and as CSV."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.names import Name, as_given, localised
from consent.catalogue.art30 import SAFEGUARDS, Contact, PurposeFacts, art30_facts
from consent.models import ApiClient, CatalogueRevision, DataCategory, Notice, Purpose, Source, SourceCategory

# The legal bases of Art. 6(1) the catalogue knows, with their W3C Data Privacy Vocabulary (DPV) concepts.
LEGAL_BASES: dict[str, tuple[str, str]] = {
    Purpose.LegalBasis.CONSENT: ("Art. 6(1)(a) GDPR", "dpv:Consent"),
    Purpose.LegalBasis.CONTRACT: ("Art. 6(1)(b) GDPR", "dpv:Contract"),
    Purpose.LegalBasis.LEGAL_OBLIGATION: ("Art. 6(1)(c) GDPR", "dpv:LegalObligation"),
    Purpose.LegalBasis.LEGITIMATE_INTEREST: ("Art. 6(1)(f) GDPR", "dpv:LegitimateInterest"),
}
# Art. 30(1)(g): a general description of the technical and organisational security measures Assent itself takes;
# the catalogue's `security_measures` add the organisation's own.
SECURITY_MEASURES: tuple[Promise, ...] = (
    _("personal data encrypted at rest per person (AES-256-GCM data keys wrapped by rotating master keys)"),
    _("identifiers found only through a keyed blind index (HMAC-SHA256), never by scanning decrypted data"),
    _("API clients authenticate with keys stored only as SHA-256 digests, limited to scopes and purposes"),
    _("every consent change in a per-person HMAC-chained, append-only ledger"),
    _(
        "staff sign in with a password and a TOTP second factor; every staff action and every view of "
        "decrypted personal data is written to an append-only audit log"
    ),
)
SAFEGUARD_NAMES: dict[str, Promise] = {
    "adequacy_decision": _("adequacy decision"),
    "standard_contractual_clauses": _("standard contractual clauses"),
    "binding_corporate_rules": _("binding corporate rules"),
    "code_of_conduct": _("approved code of conduct"),
    "certification": _("approved certification"),
    "derogation": _("derogation for a specific situation"),
}


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
        text = gettext("%(where)s: %(days)s days") % {
            "where": f"{self.source}/{self.category}",
            "days": self.delete_after_days,
        }
        if self.legal_hold_years is not None:
            hold = (
                gettext("legal hold %(years)s years from the end of the year")
                if self.legal_hold_from == "end_of_year"
                else gettext("legal hold %(years)s years from the record")
            )
            text += ", " + hold % {"years": self.legal_hold_years} + f" ({self.legal_hold_law})"
        return text


@dataclass(frozen=True, slots=True)
class ContactText:
    name: str
    contact: str
    address: str = ""


@dataclass(frozen=True, slots=True)
class TransferText:
    country: str
    recipient: str
    safeguard: str  # the catalogue's code
    safeguard_name: str
    gdpr_article: str
    details: str

    def describe(self) -> str:
        text = f"{self.recipient} ({self.country}): {self.safeguard_name}, {self.gdpr_article}"
        return f"{text}; {self.details}" if self.details else text


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
    # None: the catalogue does not say (an Art. 30 record must; the page asks for it). Empty: it says "none".
    data_subjects: tuple[str, ...] | None = None
    recipient_categories: tuple[str, ...] | None = None
    transfers: tuple[TransferText, ...] | None = None


@dataclass(frozen=True, slots=True)
class RecordsOfProcessing:
    generated_at: datetime
    catalogue_revision: int
    language: str
    controller: ContactText | None
    dpo: ContactText | None
    records: tuple[ProcessingRecord, ...]
    security_measures: tuple[str, ...]

    @property
    def missing(self) -> list[str]:
        """The catalogue keys an Art. 30(1) record needs and this catalogue lacks, each with its place."""
        keys = [key for key, value in (("controller", self.controller), ("dpo", self.dpo)) if value is None]
        for record in self.records:
            for key, value in (
                ("data_subjects", record.data_subjects),
                ("recipients", record.recipient_categories),
                ("transfers", record.transfers),
            ):
                if value is None:
                    keys.append(f"purposes[{record.purpose}].{key}")
        return keys


def _name(row: DataCategory | Purpose | Source, language: str | None) -> str:
    return localised(as_given(row.name, row.names), language)


def _contact(contact: Contact | None, language: str | None) -> ContactText | None:
    if contact is None:
        return None
    return ContactText(localised(contact.name, language), contact.contact, localised(contact.address, language))


def _texts(values: tuple[Name, ...] | None, language: str | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(localised(v, language) for v in values)


def _transfers(facts: PurposeFacts, language: str | None) -> tuple[TransferText, ...] | None:
    if facts.transfers is None:
        return None
    return tuple(
        TransferText(
            country=t.country,
            recipient=localised(t.recipient, language),
            safeguard=t.safeguard,
            safeguard_name=str(SAFEGUARD_NAMES.get(t.safeguard, t.safeguard)),
            gdpr_article=SAFEGUARDS.get(t.safeguard, ""),
            details=localised(t.details, language),
        )
        for t in facts.transfers
    )


def records_of_processing(*, now: datetime, language: str | None = None) -> RecordsOfProcessing:
    """Every purpose of the catalogue as an Art. 30(1) record, in `language` (else German), in a fixed number of
    queries. Built-in texts follow the active translation; catalogue texts follow `language`."""
    latest = CatalogueRevision.objects.order_by("-pk").values_list("pk", "document").first()
    revision, document = latest if latest is not None else (0, None)
    facts = art30_facts(document if isinstance(document, dict) else None)
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
            h.source.key: ConnectedSystem(h.source.key, _name(h.source, language), h.source.system_of_record)
            for h in held
        }
        said = facts.purposes.get(purpose.key, PurposeFacts())
        records.append(
            ProcessingRecord(
                purpose=purpose.key,
                name=_name(purpose, language),
                legal_basis=purpose.legal_basis,
                gdpr_article=article,
                dpv_legal_basis=dpv_basis,
                dpv_purpose=purpose.dpv,
                marketing=purpose.marketing,
                channels=tuple(sorted(c.key for c in purpose.channels.all())),
                data_categories=tuple(Category(c.key, _name(c, language)) for c in categories),
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
                automated_decision=localised(
                    as_given(purpose.automated_decision, purpose.automated_decision_texts), language
                ),
                notice_version=newest.get(purpose.pk, ""),
                data_subjects=_texts(said.data_subjects, language),
                recipient_categories=_texts(said.recipients, language),
                transfers=_transfers(said, language),
            )
        )
    return RecordsOfProcessing(
        generated_at=now,
        catalogue_revision=revision,
        language=(language or "de").split("-")[0],
        controller=_contact(facts.controller, language),
        dpo=_contact(facts.dpo, language),
        records=tuple(records),
        security_measures=(
            *(str(m) for m in SECURITY_MEASURES),
            *(localised(m, language) for m in facts.security_measures),
        ),
    )


def records_as_json(records: RecordsOfProcessing) -> dict[str, Any]:
    return {
        "generated_at": records.generated_at.isoformat(),
        "catalogue_revision": records.catalogue_revision,
        "language": records.language,
        "controller": None if records.controller is None else asdict(records.controller),
        "dpo": None if records.dpo is None else asdict(records.dpo),
        "security_measures": list(records.security_measures),
        "missing": records.missing,
        "records": [_record_json(r) for r in records.records],
    }


def _record_json(record: ProcessingRecord) -> dict[str, Any]:
    body = asdict(record)
    body["channels"] = list(record.channels)
    body["retention"] = [{**asdict(r), "description": r.describe()} for r in record.retention]
    for key in ("data_subjects", "recipient_categories"):
        body[key] = None if body[key] is None else list(body[key])
    if record.transfers is not None:
        body["transfers"] = [{**asdict(t), "description": t.describe()} for t in record.transfers]
    return body


CSV_COLUMNS = (
    "controller",
    "dpo",
    "purpose",
    "name",
    "legal_basis",
    "gdpr_article",
    "dpv_legal_basis",
    "dpv_purpose",
    "marketing",
    "channels",
    "data_subjects",
    "data_categories",
    "recipient_categories",
    "recipients_api_clients",
    "recipients_connected_systems",
    "third_country_transfers",
    "retention",
    "security_measures",
    "consent_valid_days",
    "automated_decision",
    "notice_version",
)


def records_as_csv(records: RecordsOfProcessing) -> str:
    """One row per purpose, each complete on its own (controller, DPO and measures repeated); lists joined with
    '; '; what the catalogue does not say is left empty, "none" where it says there is none."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    controller, dpo = _contact_cell(records.controller), _contact_cell(records.dpo)
    measures = "; ".join(records.security_measures)
    for r in records.records:
        writer.writerow(
            [
                _cell(value)
                for value in (
                    controller,
                    dpo,
                    r.purpose,
                    r.name,
                    r.legal_basis,
                    r.gdpr_article,
                    r.dpv_legal_basis,
                    r.dpv_purpose,
                    "yes" if r.marketing else "no",
                    "; ".join(r.channels),
                    _list_cell(r.data_subjects),
                    "; ".join(f"{c.key} ({c.name})" for c in r.data_categories),
                    _list_cell(r.recipient_categories),
                    "; ".join(f"{c.name} [{', '.join(c.scopes)}]" for c in r.api_clients),
                    "; ".join(
                        f"{s.name} ({s.key}{', system of record' if s.system_of_record else ''})"
                        for s in r.connected_systems
                    ),
                    _list_cell(None if r.transfers is None else tuple(t.describe() for t in r.transfers)),
                    "; ".join(h.describe() for h in r.retention),
                    measures,
                    "" if r.consent_valid_days is None else str(r.consent_valid_days),
                    r.automated_decision,
                    r.notice_version,
                )
            ]
        )
    return out.getvalue()


def _contact_cell(contact: ContactText | None) -> str:
    if contact is None:
        return ""
    return ", ".join(part for part in (contact.name, contact.address, contact.contact) if part)


def _list_cell(values: tuple[str, ...] | None) -> str:
    if values is None:
        return ""
    return "; ".join(values) if values else gettext("none")


def _cell(value: str) -> str:
    # A cell that starts like a formula would run as one when the DPO opens the file in a spreadsheet.
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
