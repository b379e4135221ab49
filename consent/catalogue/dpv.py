"""The W3C Data Privacy Vocabulary (DPV) as the catalogue uses it: a purpose's `dpv` code must be one of DPV's purpose
concepts, checked against the list shipped with the code (vocabularies/dpv-2.1.json: the term identifiers and labels
of DPV 2.1, with its licence), so that a typo is an `apply_catalog` error instead of a code nobody can resolve."""

from __future__ import annotations

import difflib
import functools
import json
from dataclasses import dataclass
from pathlib import Path

PREFIX = "dpv:"
_FILE = Path(__file__).with_name("vocabularies") / "dpv-2.1.json"

# A consent state of the ledger as a DPV consent status (an objection is the person's refusal).
CONSENT_STATUS_CODES = {
    "granted": "dpv:ConsentGiven",
    "pending_confirmation": "dpv:ConsentRequested",
    "withdrawn": "dpv:ConsentWithdrawn",
    "expired": "dpv:ConsentExpired",
    "objected": "dpv:ConsentRefused",
}

# The catalogue's legal bases (API.md) as DPV concepts.
LEGAL_BASIS_CODES = {
    "consent": "dpv:Consent",
    "contract": "dpv:Contract",
    "legal_obligation": "dpv:LegalObligation",
    "legitimate_interest": "dpv:LegitimateInterest",
}


@dataclass(frozen=True, slots=True)
class Vocabulary:
    version: str
    namespace: str
    purposes: dict[str, str]  # "dpv:DirectMarketing" -> "Direct Marketing"
    legal_bases: dict[str, str]
    consent_statuses: dict[str, str]


@functools.cache
def dpv() -> Vocabulary:
    document = json.loads(_FILE.read_text(encoding="utf-8"))
    return Vocabulary(
        version=document["version"],
        namespace=document["namespace"],
        purposes={PREFIX + term: label for term, label in document["purposes"].items()},
        legal_bases={PREFIX + term: label for term, label in document["legal_bases"].items()},
        consent_statuses={PREFIX + term: label for term, label in document["consent_statuses"].items()},
    )


def dpv_purpose_problem(code: str) -> str | None:
    """Why `code` is not a DPV purpose concept (None: it is one), naming the closest concepts for a typo."""
    known = dpv().purposes
    if code in known:
        return None
    if not code.startswith(PREFIX):
        return f"'{code}' is not a DPV code: write it as dpv:Term, e.g. dpv:DirectMarketing"
    close = difflib.get_close_matches(code, list(known), n=2, cutoff=0.75)
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    return f"'{code}' is not a purpose concept of DPV {dpv().version}{hint}"


def dpv_iri(code: str) -> str:
    """The full IRI of a dpv:Term code."""
    return dpv().namespace + code.removeprefix(PREFIX)
