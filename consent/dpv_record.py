"""A person's consent record as JSON-LD in the DPV profile of ISO/IEC TS 27560: one `dpv:Consent` per purpose and
channel the person has a consent state for, with its status, purpose, legal basis, notice, the moment it was
indicated and the ledger event that proves it. Served by the API (`Accept: application/ld+json` on the person's
consents) and the admin's subject page. Holds the subject id, never an identifier."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings

from consent.catalogue.dpv import CONSENT_STATUS_CODES, LEGAL_BASIS_CODES, dpv
from consent.catalogue.snapshot import catalogue_snapshot
from consent.models import ConsentEvent, ConsentState, Purpose

MEDIA_TYPE = "application/ld+json"
CONTEXT = {
    "dpv": "https://w3id.org/dpv#",
    "dct": "http://purl.org/dc/terms/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}


def consent_record_jsonld(*, subject_id: uuid.UUID, purposes: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The record of every consent state of the person (only `purposes` when a client is limited to some)."""
    base = settings.ASSENT_BASE_URL
    snapshot = catalogue_snapshot()
    codes = dict(Purpose.objects.values_list("key", "dpv"))
    person = {"@id": f"urn:uuid:{subject_id}", "@type": "dpv:DataSubject"}
    controller = {"@id": base, "@type": "dpv:DataController", "dct:title": settings.ASSENT_CONTROLLER_NAME}
    states = ConsentState.objects.filter(subject_id=subject_id).order_by("purpose", "channel")
    events = {
        e.pk: e
        for e in ConsentEvent.objects.filter(pk__in=[s.event_id for s in states if s.event_id]).only("seq", "hash")
    }
    graph: list[dict[str, Any]] = [person, controller]
    for state in states:
        if purposes and state.purpose not in purposes:
            continue
        info = snapshot.purposes.get(state.purpose)
        purpose: dict[str, Any] = {"@id": f"{base}/purposes/{state.purpose}", "@type": "dpv:Purpose"}
        if codes.get(state.purpose):
            purpose["@type"] = [codes[state.purpose]]
        purpose["dct:identifier"] = state.purpose
        if info is not None:
            purpose["dct:title"] = info.display_name("en")
        record: dict[str, Any] = {
            "@id": f"{base}/subjects/{subject_id}/consents/{state.purpose}/{state.channel}",
            "@type": "dpv:Consent",
            "dct:identifier": f"{state.purpose}/{state.channel}",
            "dpv:hasDataSubject": {"@id": person["@id"]},
            "dpv:hasDataController": {"@id": controller["@id"]},
            "dpv:hasPurpose": purpose,
            "dpv:hasLegalBasis": {"@id": LEGAL_BASIS_CODES.get(info.rule.legal_basis.value, "dpv:Consent")}
            if info
            else {"@id": "dpv:Consent"},
            "dpv:hasConsentStatus": {"@id": CONSENT_STATUS_CODES.get(state.status, "dpv:ConsentUnknown")},
            "dpv:isIndicatedAtTime": {"@value": state.since.isoformat(), "@type": "xsd:dateTime"},
            "dpv:isIndicatedBy": {"@id": person["@id"]},
            "assent:channel": state.channel,
        }
        if state.notice_version:
            record["dpv:hasNotice"] = {"dct:identifier": f"{state.purpose}/{state.notice_version}"}
        event = events.get(state.event_id) if state.event_id else None
        if event is not None:
            record["assent:ledgerEvent"] = {
                "@id": f"urn:uuid:{event.pk}",
                "assent:seq": event.seq,
                "assent:hash": event.hash,
                "assent:receipt": f"{base}/api/v1/consents/events/{event.pk}/receipt",
            }
        graph.append(record)
    context = {**CONTEXT, "assent": f"{base}/ns#"}  # the deployment's own terms: channel, ledger event
    return {"@context": context, "dct:conformsTo": f"DPV {dpv().version}, ISO/IEC TS 27560", "@graph": graph}
