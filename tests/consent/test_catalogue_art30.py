"""The catalogue's keys for the records of processing (Art. 30(1)): optional, so a catalogue without them still
applies; validated when present, every problem naming its place; kept through the admin's edits."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.art30 import art30_facts
from consent.catalogue.edit import catalogue_document, catalogue_edit, edit_channel, edit_purpose
from consent.catalogue.snapshot import catalogue_forget
from consent.catalogue.validate import catalogue_validate
from consent.models import CatalogueRevision
from tests.catalogue import validation_catalogue

ART30_TOP: dict[str, Any] = {
    "controller": {
        "name": "Kaufhaus Linde GmbH",
        "address": {"de": "Lindenallee 1, Berlin", "en": "Lindenallee 1, Berlin, Germany"},
        "contact": "datenschutz@example.org",
    },
    "dpo": {"name": "Dr. Eva Kranz", "contact": "dsb@example.org"},
    "security_measures": [{"de": "Tägliche Sicherungen", "en": "Daily backups"}, "TLS"],
}
ART30_PURPOSE: dict[str, Any] = {
    "data_subjects": [{"de": "Abonnenten", "en": "Subscribers"}],
    "recipients": ["Mail service provider (processor)"],
    "transfers": [
        {"country": "US", "recipient": "Push services", "safeguard": "adequacy_decision", "details": "EU-US DPF"},
        {"country": "IN", "recipient": "Support desk", "safeguard": "standard_contractual_clauses"},
    ],
}


def with_art30() -> dict[str, Any]:
    document = validation_catalogue()
    document.update(copy.deepcopy(ART30_TOP))
    document["purposes"][0].update(copy.deepcopy(ART30_PURPOSE))
    return document


def test_a_catalogue_without_the_art30_keys_still_validates() -> None:
    document = validation_catalogue()

    assert not set(ART30_TOP) & set(document)
    assert catalogue_validate(document) == []


def test_a_catalogue_with_every_art30_key_validates() -> None:
    assert catalogue_validate(with_art30()) == []


def test_an_empty_recipients_or_transfers_list_says_there_are_none() -> None:
    document = with_art30()
    document["purposes"][0].update(recipients=[], transfers=[])

    assert catalogue_validate(document) == []


def _set(path: str, value: object) -> Any:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


BAD: list[tuple[str, Any, str]] = [
    ("controller without contact", lambda d: d["controller"].pop("contact"), "controller.contact: is required"),
    ("controller not an object", _set("controller", "Linde"), "controller: must be an object"),
    ("controller unknown key", _set("controller.phone", "1"),
     "controller.phone: unknown key (known keys: name, contact, address)"),
    ("dpo with an address", _set("dpo.address", "x"), "dpo.address: unknown key (known keys: name, contact)"),
    ("dpo name in one language", _set("dpo.name", {"de": "Kranz"}), "dpo.name.en: is required"),
    ("no security measure", _set("security_measures", []), "security_measures: must name at least one entry"),
    ("a measure that is a number", _set("security_measures.0", 7),
     "security_measures[0]: must be a non-empty string, or an object of texts per language (de, en)"),
    ("a measure in one language", _set("security_measures.0", {"de": "Sicherungen"}),
     "security_measures[0].en: is required"),
    ("data subjects empty", _set("purposes.0.data_subjects", []),
     "purposes[0].data_subjects: must name at least one entry"),
    ("recipients not a list", _set("purposes.0.recipients", "processors"), "purposes[0].recipients: must be a list"),
    ("transfer to an EU country", _set("purposes.0.transfers.0.country", "DE"),
     "purposes[0].transfers[0].country: 'DE' is in the EU/EEA: not a third country"),
    ("transfer to no country code", _set("purposes.0.transfers.0.country", "USA"),
     "purposes[0].transfers[0].country: 'USA' is not an ISO 3166-1 alpha-2 country code"),
    ("transfer with an unknown safeguard", _set("purposes.0.transfers.1.safeguard", "trust"),
     "purposes[0].transfers[1].safeguard: 'trust' is not one of adequacy_decision, standard_contractual_clauses"),
    ("transfer without a safeguard", lambda d: d["purposes"][0]["transfers"][1].pop("safeguard"),
     "purposes[0].transfers[1].safeguard: is required"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in BAD], ids=[name for name, _, _ in BAD])
def test_it_rejects_each_art30_mistake_with_its_place(mutate: Any, expected: str) -> None:
    document = with_art30()
    mutate(document)

    problems = catalogue_validate(document)

    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_applied_art30_keys_are_read_back_from_the_stored_document(db: None) -> None:
    catalogue_apply(document=with_art30())
    catalogue_forget()

    facts = art30_facts(CatalogueRevision.objects.order_by("-pk").first().document)  # type: ignore[union-attr]

    assert facts.controller is not None
    assert facts.controller.contact == "datenschutz@example.org"
    assert facts.dpo is not None
    assert facts.dpo.name == "Dr. Eva Kranz"
    newsletter = facts.purposes["newsletter"]
    assert newsletter.transfers is not None
    assert [(t.country, t.article) for t in newsletter.transfers] == [
        ("US", "Art. 45 GDPR"),
        ("IN", "Art. 46(2)(c) GDPR"),
    ]
    assert facts.purposes["offers"].data_subjects is None  # the catalogue does not say


def test_the_admins_edits_keep_the_art30_keys(db: None) -> None:
    catalogue_apply(document=with_art30())
    catalogue_forget()
    exported = catalogue_document()
    newsletter = next(p for p in exported["purposes"] if p["key"] == "newsletter")
    item = {key: value for key, value in newsletter.items() if key not in ART30_PURPOSE}
    item["name"] = "Our newsletter"

    # when the DPO renames a channel and edits the purpose in the admin (whose forms know no Art. 30 keys)
    catalogue_edit(edit=edit_channel(key="sms", name="Text message"))
    catalogue_edit(edit=edit_purpose(item=item))
    catalogue_forget()

    # then the stored catalogue still says everything the records of processing need
    stored = CatalogueRevision.objects.order_by("-pk").first().document  # type: ignore[union-attr]
    assert {key: stored[key] for key in ART30_TOP} == ART30_TOP
    newsletter = next(p for p in stored["purposes"] if p["key"] == "newsletter")
    assert newsletter["name"] == "Our newsletter"
    assert {key: newsletter[key] for key in ART30_PURPOSE} == ART30_PURPOSE
