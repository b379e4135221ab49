"""The catalogue: validation (pure, every problem with its place) and apply (idempotent, never destructive)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.errors import InvalidInputError
from consent.catalogue.apply import catalogue_apply
from consent.catalogue.reader import catalogue_load_file
from consent.catalogue.snapshot import catalogue_forget, catalogue_snapshot
from consent.catalogue.spec import CatalogueError
from consent.catalogue.validate import catalogue_validate
from consent.ledger.recording import ConsentCommand
from consent.models import (
    CatalogueRevision,
    Channel,
    ConsentState,
    DataCategory,
    Notice,
    Purpose,
    Source,
    SourceCategory,
)
from consent.services import consent_record
from subjects.identity import parse_reference
from tests.catalogue import validation_catalogue

DEMO_CATALOGUE = Path(__file__).resolve().parents[2] / "consent" / "demo" / "catalog.json"

# Every validation case starts from this document (built in tests/catalogue.py); doc() hands out a copy.
DOCUMENT: dict[str, Any] = validation_catalogue()

CATALOGUE_MODELS = (CatalogueRevision, Channel, DataCategory, Purpose, Notice, Source, SourceCategory)


def doc() -> dict[str, Any]:
    return copy.deepcopy(DOCUMENT)


def counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in CATALOGUE_MODELS}


def purpose(document: dict[str, Any], key: str) -> dict[str, Any]:
    return next(p for p in document["purposes"] if p["key"] == key)


def apply(document: object) -> Any:
    result = catalogue_apply(document=document)
    catalogue_forget()  # on_commit does not fire inside the test's transaction
    return result


# ---------------------------------------------------------------------------------------------------------
# Validation: one mistake, one problem, at its place
# ---------------------------------------------------------------------------------------------------------
Mutation = Callable[[dict[str, Any]], object]


def _set(path: str, value: object) -> Mutation:
    """A mutation that sets doc[a][b]... = value; path like 'purposes.0.marketing'."""

    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _drop(path: str) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]

    return mutate


def _append(path: str, value: object) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        node: Any = document
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(copy.deepcopy(value))

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        first(document)
        second(document)

    return mutate


BAD_DOCUMENTS: list[tuple[str, Mutation, str]] = [
    # top level
    ("unknown top-level key", _set("colour", "red"), "colour: unknown key (known keys: merge_identifiers, channels, "),
    ("missing top-level key", _drop("sources"), "sources: is required"),
    ("channels not a list", _set("channels", {"email": "E-Mail"}), "channels: must be a list"),
    ("data categories not a list", _set("data_categories", None), "data_categories: must be a list"),
    # merge identifiers
    ("merge identifiers not a list", _set("merge_identifiers", "email"), "merge_identifiers: must be a list"),
    ("merge on phone", _append("merge_identifiers", "phone"), "merge_identifiers[4]: 'phone' is a shared identifier"),
    ("merge on cookie id", _append("merge_identifiers", "cookie_id"),
     "merge_identifiers[4]: 'cookie_id' is a shared identifier"),
    ("merge on social handle", _append("merge_identifiers", "social_handle"),
     "merge_identifiers[4]: 'social_handle' is a shared identifier"),
    ("merge on an unknown kind", _append("merge_identifiers", "passport"),
     "merge_identifiers[4]: 'passport' is not an identifier kind "
     "(one of email, customer_number, loyalty_card, crm_id)"),
    ("merge kind twice", _append("merge_identifiers", "email"), "merge_identifiers[4]: 'email' is listed twice"),
    # channels and data categories
    ("channel not an object", _append("channels", "fax"), "channels[5]: must be an object"),
    ("channel key not a slug", _append("channels", {"key": "Fax Line", "name": "Fax"}),
     "channels[5].key: 'Fax Line' is not a key: use lower-case letters, digits, '-' and '_'"),
    ("channel key too long", _append("channels", {"key": "f" * 65, "name": "Fax"}), "channels[5].key: 'fffff"),
    ("channel key with a newline", _append("channels", {"key": "fax\n", "name": "Fax"}),
     "channels[5].key: 'fax\n' is not a key"),
    ("channel name with a NUL", _set("channels.1.name", "S\x00MS"),
     "channels[1].name: must not contain NUL characters or unpaired surrogates"),
    ("channel without a name", _append("channels", {"key": "fax"}), "channels[5].name: is required"),
    ("channel with an unknown key", _append("channels", {"key": "fax", "name": "Fax", "colour": "red"}),
     "channels[5].colour: unknown key (known keys: key, name)"),
    ("channel declared twice", _append("channels", {"key": "email", "name": "Mail"}),
     "channels[5].key: 'email' is declared twice (first at channels[0])"),
    ("category profile not a bool", _set("data_categories.0.profile", "yes"),
     "data_categories[0].profile: must be true or false"),
    ("category name empty", _set("data_categories.1.name", " "), "data_categories[1].name: must be a non-empty string"),
    ("category declared twice", _append("data_categories", {"key": "contact", "name": "Again"}),
     "data_categories[3].key: 'contact' is declared twice (first at data_categories[0])"),
    # purposes: fields
    ("unknown legal basis", _set("purposes.2.legal_basis", "maybe"),
     "purposes[2].legal_basis: 'maybe' is not one of consent, legitimate_interest, contract, legal_obligation"),
    ("marketing missing", _drop("purposes.0.marketing"), "purposes[0].marketing: is required"),
    ("marketing not a bool", _set("purposes.0.marketing", "yes"), "purposes[0].marketing: must be true or false"),
    ("purpose with an unknown key", _set("purposes.0.colour", "red"), "purposes[0].colour: unknown key"),
    ("purpose key not a slug", _set("purposes.2.key", "Order Updates"),
     "purposes[2].key: 'Order Updates' is not a key"),
    ("purpose declared twice", _append("purposes", DOCUMENT["purposes"][2]),
     "purposes[4].key: 'order-updates' is declared twice (first at purposes[2])"),
    ("no channels", _set("purposes.0.channels", []), "purposes[0].channels: must name at least one channel"),
    ("undeclared channel", _set("purposes.0.channels", ["email", "fax"]),
     "purposes[0].channels[1]: 'fax' is not a declared channel"),
    ("channel listed twice", _set("purposes.0.channels", ["email", "email"]),
     "purposes[0].channels[1]: 'email' is listed twice"),
    ("undeclared data category", _set("purposes.0.data_categories", ["contact", "health"]),
     "purposes[0].data_categories[1]: 'health' is not a declared data category"),
    ("double opt-in outside the purpose's channels", _set("purposes.0.double_opt_in", ["post"]),
     "purposes[0].double_opt_in[0]: 'post' is not a declared channel of this purpose"),
    ("validity zero", _set("purposes.0.consent_valid_days", 0),
     "purposes[0].consent_valid_days: must be a whole number from 1 to 36500"),
    ("validity as a string", _set("purposes.0.consent_valid_days", "730"),
     "purposes[0].consent_valid_days: must be a whole number from 1 to 36500"),
    ("validity as a bool", _set("purposes.0.consent_valid_days", True),
     "purposes[0].consent_valid_days: must be a whole number from 1 to 36500"),
    ("dpv not a string", _set("purposes.0.dpv", 5), "purposes[0].dpv: must be a non-empty string"),
    ("gpc not a bool", _set("purposes.0.gpc", 1), "purposes[0].gpc: must be true or false"),
    ("tcf purpose out of range", _set("purposes.3.tcf_purposes", [1, 12]),
     "purposes[3].tcf_purposes[1]: 12 is not an IAB TCF purpose id (1 to 11)"),
    ("tcf purposes not a list", _set("purposes.3.tcf_purposes", 1), "purposes[3].tcf_purposes: must be a list"),
    # purposes: notices
    ("consent without a notice", _drop("purposes.0.notice"),
     "purposes[0].notice: is required for legal basis consent"),
    ("notice not an object", _set("purposes.0.notice", "2026-01"), "purposes[0].notice: must be an object"),
    ("notice version empty", _set("purposes.0.notice.version", ""),
     "purposes[0].notice.version: must be a non-empty string"),
    ("notice without English", _drop("purposes.0.notice.texts.en"), "purposes[0].notice.texts.en: is required"),
    ("notice text empty", _set("purposes.0.notice.texts.de", ""),
     "purposes[0].notice.texts.de: must be a non-empty string"),
    ("notice in another language", _set("purposes.0.notice.texts.fr", "Notre lettre."),
     "purposes[0].notice.texts.fr: unknown key (known keys: de, en)"),
    ("requires_reconsent not a bool", _set("purposes.3.notice.requires_reconsent", "no"),
     "purposes[3].notice.requires_reconsent: must be true or false"),
    # purposes: rules between fields
    ("legitimate-interest e-mail without UWG 7(3)", _set("purposes.1.uwg_7_3", False),
     "purposes[1].channels[1]: legitimate-interest marketing may use 'email' only for existing customers: "
     "set uwg_7_3: true (UWG §7(3))"),
    ("legitimate-interest SMS without UWG 7(3)", _both(_set("purposes.1.channels", ["post", "sms"]),
                                                       _set("purposes.1.uwg_7_3", False)),
     "purposes[1].channels[1]: legitimate-interest marketing may use 'sms' only for existing customers"),
    ("legitimate-interest calls", _append("purposes.1.channels", "phone"),
     "purposes[1].channels[2]: legitimate-interest marketing may never call: advertising calls need the person's "
     "prior express consent (UWG §7(2) Nr. 1)"),
    ("UWG 7(3) on a consent purpose", _set("purposes.0.uwg_7_3", True),
     "purposes[0].uwg_7_3: the existing-customer exemption (UWG §7(3)) is for legitimate-interest marketing"),
    ("marketing on contract", _set("purposes.2.marketing", True),
     "purposes[2].marketing: direct marketing rests on consent or legitimate interest, not contract"),
    ("double opt-in on contract", _set("purposes.2.double_opt_in", ["email"]),
     "purposes[2].double_opt_in: double opt-in confirms a consent; this purpose rests on contract"),
    ("validity on contract", _set("purposes.2.consent_valid_days", 365),
     "purposes[2].consent_valid_days: only a consent expires; this purpose rests on contract"),
    # TDDDG §25
    ("contract reads device identifiers", _set("purposes.2.reads_device_identifiers", True),
     "purposes[2].reads_device_identifiers: reading cookie or device identifiers needs consent (TDDDG §25); "
     "this purpose rests on contract"),
    ("legitimate interest reads device identifiers", _set("purposes.1.reads_device_identifiers", True),
     "purposes[1].reads_device_identifiers: reading cookie or device identifiers needs consent (TDDDG §25)"),
    ("GPC on legitimate interest", _set("purposes.1.gpc", True),
     "purposes[1].gpc: sale, sharing or targeted advertising reads the device: reading cookie or device "
     "identifiers needs consent (TDDDG §25)"),
    ("TCF purposes on contract", _set("purposes.2.tcf_purposes", [1]),
     "purposes[2].tcf_purposes: IAB TCF purposes are processing on the device: reading cookie or device identifiers "
     "needs consent (TDDDG §25)"),
    ("cookie ids read on contract", _append("purposes.2.data_categories", "cookie_ids"),
     "purposes[2].data_categories[2]: 'cookie_ids' holds cookie or device data: reading cookie or device "
     "identifiers needs consent (TDDDG §25)"),
    # sources
    ("source without system_of_record", _drop("sources.0.system_of_record"),
     "sources[0].system_of_record: is required"),
    ("source with an unknown key", _set("sources.0.owner", "IT"), "sources[0].owner: unknown key"),
    ("source declared twice", _append("sources", DOCUMENT["sources"][0]),
     "sources[1].key: 'pos' is declared twice (first at sources[0])"),
    ("source categories not an object", _set("sources.0.categories", ["contact"]),
     "sources[0].categories: must be an object"),
    ("source holds an undeclared category", _set("sources.0.categories.health", {"delete_after_days": 30}),
     "sources[0].categories.health: 'health' is not a declared data category"),
    ("retention zero", _set("sources.0.categories.contact.delete_after_days", 0),
     "sources[0].categories.contact.delete_after_days: must be a whole number from 1 to 36500"),
    ("retention missing", _drop("sources.0.categories.contact.delete_after_days"),
     "sources[0].categories.contact.delete_after_days: is required"),
    ("legal hold from an unknown moment", _set("sources.0.categories.purchases.legal_hold.from", "purchase"),
     "sources[0].categories.purchases.legal_hold.from: 'purchase' is not one of end_of_year, record"),
    ("legal hold without years", _drop("sources.0.categories.purchases.legal_hold.years"),
     "sources[0].categories.purchases.legal_hold.years: is required"),
    ("legal hold without a law", _set("sources.0.categories.purchases.legal_hold.law", ""),
     "sources[0].categories.purchases.legal_hold.law: must be a non-empty string"),
    ("retention shorter than the legal hold", _set("sources.0.categories.purchases.delete_after_days", 365),
     "sources[0].categories.purchases.delete_after_days: 365 days is shorter than the legal hold of 'purchases' "
     "(8 years, §147 AO, §257 HGB): set at least 2920"),
    ("legal hold with an unknown key", _set("sources.0.categories.purchases.legal_hold.until", "2030"),
     "sources[0].categories.purchases.legal_hold.until: unknown key (known keys: years, from, law)"),
]  # fmt: skip


def test_the_reference_document_is_valid() -> None:
    assert catalogue_validate(doc()) == []


@pytest.mark.parametrize(("mutate", "expected"), [(m, e) for _, m, e in BAD_DOCUMENTS],
                         ids=[name for name, _, _ in BAD_DOCUMENTS])  # fmt: skip
def test_it_rejects_each_mistake_with_its_place(mutate: Mutation, expected: str) -> None:
    document = doc()
    mutate(document)

    problems = catalogue_validate(document)

    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_it_rejects_a_document_that_is_not_an_object() -> None:
    assert catalogue_validate(["channels"]) == [
        "catalogue: must be a JSON object with the keys merge_identifiers, channels, data_categories, purposes, sources"
    ]


@pytest.mark.parametrize("key", ["cookies", "device", "device_ids", "cookie_id", "device-fingerprint", "browsing"])
def test_it_rejects_reading_a_device_category_without_consent(key: str) -> None:
    document = doc()
    document["data_categories"].append({"key": key, "name": "Terminal equipment data"})
    purpose(document, "offers")["data_categories"].append(key)

    problems = catalogue_validate(document)

    assert problems == [
        f"purposes[1].data_categories[2]: '{key}' holds cookie or device data: reading cookie or device identifiers "
        "needs consent (TDDDG §25); this purpose rests on legitimate_interest"
    ]


def test_a_consent_purpose_may_read_device_identifiers() -> None:
    document = doc()
    analytics = purpose(document, "analytics")
    analytics.update(gpc=True, tcf_purposes=[1, 3, 4])

    assert catalogue_validate(document) == []


def test_a_legitimate_interest_purpose_may_use_email_and_sms_under_uwg_7_3() -> None:
    document = doc()
    purpose(document, "offers")["channels"] = ["post", "email", "sms"]

    assert catalogue_validate(document) == []


def test_legitimate_interest_by_post_needs_no_uwg_7_3() -> None:
    document = doc()
    offers = purpose(document, "offers")
    offers["channels"] = ["post"]
    offers["uwg_7_3"] = False

    assert catalogue_validate(document) == []


def test_it_reports_every_problem_at_once() -> None:
    document = doc()
    document["colour"] = "red"
    document["merge_identifiers"].append("phone")
    purpose(document, "newsletter")["legal_basis"] = "maybe"
    purpose(document, "offers")["uwg_7_3"] = False
    document["sources"][0]["categories"]["contact"]["delete_after_days"] = -1

    problems = catalogue_validate(document)

    assert [p.split(":")[0] for p in problems] == [
        "colour",
        "merge_identifiers[4]",
        "purposes[0].legal_basis",
        "purposes[1].channels[1]",
        "sources[0].categories.contact.delete_after_days",
    ]


def test_a_category_key_with_odd_characters_is_quoted_in_its_place() -> None:
    document = doc()
    document["sources"][0]["categories"]["foo bar"] = {"delete_after_days": 1}

    assert catalogue_validate(document) == [
        "sources[0].categories[\"foo bar\"]: 'foo bar' is not a declared data category"
    ]


def test_the_demo_catalogue_validates() -> None:
    assert catalogue_validate(catalogue_load_file(str(DEMO_CATALOGUE))) == []


def test_the_error_is_an_invalid_input_error_with_every_problem() -> None:
    error = CatalogueError(["a: one", "b: two"])

    assert isinstance(error, InvalidInputError)
    assert error.code == "catalogue_invalid"
    assert error.status == 400
    assert error.errors == ["a: one", "b: two"]
    assert error.detail == "a: one (and 1 more)"
    assert CatalogueError("x.json: no such file").errors == ["x.json: no such file"]


# ---------------------------------------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------------------------------------
def test_it_loads_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(DOCUMENT), encoding="utf-8")

    assert catalogue_load_file(str(path)) == DOCUMENT


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"channels": [}', "not valid JSON at line 1 column 15 (Expecting value)"),
        ('{\n  "channels": []\n  "purposes": []\n}', "not valid JSON at line 3 column 3 (Expecting ',' delimiter)"),
        ('{"channels": [], "channels": []}', "key 'channels' appears twice in one object"),
        ('{"consent_valid_days": NaN}', "not valid JSON (NaN is not a JSON number)"),
        ("", "not valid JSON at line 1 column 1 (Expecting value)"),
    ],
)
def test_it_rejects_a_file_that_is_not_json(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "catalogue.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(CatalogueError) as caught:
        catalogue_load_file(str(path))

    assert caught.value.errors == [f"{path}: {expected}"]


def test_it_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue_load_file(str(tmp_path / "nope.json"))

    assert caught.value.errors == [f"{tmp_path / 'nope.json'}: no such file"]


def test_it_rejects_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    path.write_bytes('{"name": "Störe"}'.encode("latin-1"))

    with pytest.raises(CatalogueError) as caught:
        catalogue_load_file(str(path))

    assert caught.value.errors == [f"{path}: not UTF-8 text (at byte offset 12)"]


# ---------------------------------------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------------------------------------
def test_apply_creates_the_catalogue(db: None) -> None:
    result = apply(doc())

    assert result.changed is True
    assert "purpose newsletter: added (consent, channels email, sms)" in result.changes
    assert "purpose newsletter: notice 2026-01 added" in result.changes
    assert "source pos: category purchases added" in result.changes
    assert counts() == {
        "CatalogueRevision": 1, "Channel": 5, "DataCategory": 3, "Purpose": 4, "Notice": 2, "Source": 1,
        "SourceCategory": 2,
    }  # fmt: skip
    newsletter = Purpose.objects.get(key="newsletter")
    assert {c.key for c in newsletter.channels.all()} == {"email", "sms"}
    assert [c.key for c in newsletter.data_categories.all()] == ["contact"]
    assert newsletter.consent_valid_days == 730
    assert newsletter.dpv == "dpv:DirectMarketing"
    analytics = Purpose.objects.get(key="analytics")
    assert analytics.reads_device_identifiers is True
    assert analytics.tcf_purposes == [1, 8]
    hold = SourceCategory.objects.get(source__key="pos", category__key="purchases")
    assert (hold.delete_after_days, hold.legal_hold_years, hold.legal_hold_from, hold.legal_hold_law) == (
        3650, 8, "end_of_year", "§147 AO, §257 HGB"
    )  # fmt: skip
    revision = CatalogueRevision.objects.get()
    assert revision.pk == result.revision_id
    assert revision.merge_identifiers == ["email", "customer_number", "loyalty_card", "crm_id"]
    assert revision.document == DOCUMENT
    assert len(revision.digest) == 64


def test_the_policy_sees_the_applied_catalogue(db: None) -> None:
    result = apply(doc())

    snapshot = catalogue_snapshot()

    assert snapshot.revision == result.revision_id
    assert snapshot.channels == {"email", "sms", "phone", "post", "web"}
    assert snapshot.merge_identifiers == {"email", "customer_number", "loyalty_card", "crm_id"}
    newsletter = snapshot.purposes["newsletter"]
    assert newsletter.current_notice == "2026-01"
    assert newsletter.rule.double_opt_in == {"email"}
    assert snapshot.purposes["offers"].rule.uwg_7_3 is True


def test_apply_forgets_the_cached_catalogue_on_commit(
    db: None, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    apply(doc())
    assert "loyalty" not in catalogue_snapshot().purposes  # cached now
    document = doc()
    document["purposes"].append(
        {"key": "loyalty", "name": "Loyalty", "legal_basis": "contract", "marketing": False, "channels": ["post"],
         "data_categories": ["contact"]}
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        catalogue_apply(document=document)

    assert "loyalty" in catalogue_snapshot().purposes


def test_apply_is_idempotent(db: None) -> None:
    first = apply(doc())
    before = counts()

    second = apply(doc())

    assert second.changed is False
    assert second.changes == []
    assert second.revision_id == first.revision_id
    assert counts() == before


def test_apply_compares_the_canonical_json(db: None) -> None:
    first = apply(doc())
    reordered = json.loads(json.dumps(DOCUMENT, sort_keys=True))
    reordered = {key: reordered[key] for key in reversed(list(reordered))}

    second = apply(reordered)

    assert (second.changed, second.revision_id) == (False, first.revision_id)


def test_it_writes_nothing_when_the_document_is_invalid(db: None) -> None:
    document = doc()
    purpose(document, "offers")["channels"].append("phone")
    document["merge_identifiers"].append("cookie_id")

    with pytest.raises(CatalogueError) as caught:
        catalogue_apply(document=document)

    assert [p.split(":")[0] for p in caught.value.errors] == ["merge_identifiers[4]", "purposes[1].channels[2]"]
    assert set(counts().values()) == {0}


def test_the_double_opt_in_defaults_to_email_for_consent_marketing_by_email(db: None) -> None:
    document = doc()
    document["purposes"].append(
        {"key": "tips", "name": "Tips", "legal_basis": "consent", "marketing": True, "channels": ["sms", "email"],
         "data_categories": [], "double_opt_in": [],
         "notice": {"version": "1", "texts": {"de": "Tipps.", "en": "Tips."}}}
    )  # fmt: skip

    apply(document)

    double_opt_in = dict(Purpose.objects.values_list("key", "double_opt_in"))
    assert double_opt_in == {
        "newsletter": ["email"],  # consent, marketing, e-mail, not given: the default
        "offers": [],  # legitimate interest
        "order-updates": [],  # contract
        "analytics": [],  # not marketing
        "tips": [],  # given explicitly
    }


def test_a_new_notice_version_is_added_and_the_old_kept(db: None) -> None:
    apply(doc())
    document = doc()
    purpose(document, "newsletter")["notice"] = {
        "version": "2026-02",
        "requires_reconsent": True,
        "texts": {"de": "Unser neuer Newsletter.", "en": "Our new newsletter."},
    }

    result = apply(document)

    assert result.changed is True
    assert (
        "purpose newsletter: notice 2026-02 added (requires re-consent: consents to earlier versions are outdated)"
        in result.changes
    )
    notices = list(Notice.objects.filter(purpose__key="newsletter").values_list("version", "texts"))
    assert notices == [
        ("2026-01", {"de": "Unser Newsletter.", "en": "Our newsletter."}),
        ("2026-02", {"de": "Unser neuer Newsletter.", "en": "Our new newsletter."}),
    ]
    info = catalogue_snapshot().purposes["newsletter"]
    assert info.current_notice == "2026-02"
    assert info.rule.outdated_notice_versions == {"2026-01"}


def test_naming_an_older_stored_notice_version_keeps_the_newer_one_current(db: None) -> None:
    apply(doc())
    newer = doc()
    purpose(newer, "newsletter")["notice"] = {"version": "2026-02", "texts": {"de": "Neu.", "en": "New."}}
    apply(newer)

    result = apply(doc())

    assert (
        "purpose newsletter: the file names notice 2026-01, older than the stored 2026-02, which stays current"
        in result.changes
    )
    assert Notice.objects.filter(purpose__key="newsletter").count() == 2
    assert catalogue_snapshot().purposes["newsletter"].current_notice == "2026-02"


def test_it_rejects_a_changed_text_under_a_stored_version(db: None) -> None:
    apply(doc())
    before = counts()
    document = doc()
    purpose(document, "newsletter")["notice"]["texts"]["en"] = "Our newsletter, now weekly."
    document["channels"].append({"key": "fax", "name": "Fax"})

    with pytest.raises(CatalogueError) as caught:
        catalogue_apply(document=document)

    assert caught.value.errors == [
        "purposes[0].notice.texts: version '2026-01' of purpose 'newsletter' is stored with other texts; "
        "a new text needs a new version"
    ]
    assert counts() == before
    assert not Channel.objects.filter(key="fax").exists()
    assert Notice.objects.get(purpose__key="newsletter").texts["en"] == "Our newsletter."


def test_it_rejects_a_changed_requires_reconsent_under_a_stored_version(db: None) -> None:
    apply(doc())
    document = doc()
    purpose(document, "analytics")["notice"]["requires_reconsent"] = True

    with pytest.raises(CatalogueError) as caught:
        catalogue_apply(document=document)

    assert caught.value.errors == [
        "purposes[3].notice.requires_reconsent: version '2026-01' of purpose 'analytics' is stored with "
        "requires_reconsent false; a change needs a new version"
    ]


def test_what_the_file_leaves_out_is_kept(db: None) -> None:
    apply(doc())
    before = counts()
    document = doc()
    document["purposes"] = [p for p in document["purposes"] if p["key"] != "analytics"]
    document["channels"] = [c for c in document["channels"] if c["key"] != "web"]
    document["data_categories"] = [c for c in document["data_categories"] if c["key"] != "cookie_ids"]
    del document["sources"][0]["categories"]["contact"]

    result = apply(document)

    assert result.changed is True
    assert result.changes == [
        "channel web: absent from the file, kept",
        "data category cookie_ids: absent from the file, kept",
        "purpose analytics: absent from the file, kept",
        "source pos: category contact absent from the file, kept",
    ]
    assert counts() == {**before, "CatalogueRevision": 2}
    assert Purpose.objects.get(key="analytics").channels.get().key == "web"
    assert "analytics" in catalogue_snapshot().purposes


def test_apply_updates_changed_fields_and_reports_them(db: None) -> None:
    apply(doc())
    document = doc()
    document["channels"][0]["name"] = "Electronic mail"
    newsletter = purpose(document, "newsletter")
    newsletter["channels"] = ["email"]
    newsletter["consent_valid_days"] = 365
    document["data_categories"][1]["profile"] = True
    purchases = document["sources"][0]["categories"]["purchases"]
    purchases["delete_after_days"] = 3000
    del purchases["legal_hold"]
    document["sources"][0]["system_of_record"] = True
    document["merge_identifiers"] = ["email", "customer_number"]

    result = apply(document)

    assert result.changes == [
        "merge_identifiers: email, customer_number, loyalty_card, crm_id -> email, customer_number",
        "channel email: name 'E-Mail' -> 'Electronic mail'",
        "data category purchases: profile false -> true",
        "purpose newsletter: consent_valid_days 730 -> 365",
        "purpose newsletter: channels email, sms -> email",
        "source pos: system_of_record false -> true",
        "source pos: category purchases: delete_after_days 3650 -> 3000",
        "source pos: category purchases: legal_hold_years 8 -> (none)",
        "source pos: category purchases: legal_hold_from end_of_year -> (none)",
        "source pos: category purchases: legal_hold_law '§147 AO, §257 HGB' -> (none)",
    ]
    assert Channel.objects.get(key="email").name == "Electronic mail"
    assert [c.key for c in Purpose.objects.get(key="newsletter").channels.all()] == ["email"]
    row = SourceCategory.objects.get(source__key="pos", category__key="purchases")
    assert (row.delete_after_days, row.legal_hold_years, row.legal_hold_law) == (3000, None, "")
    assert CatalogueRevision.objects.order_by("-pk").first().merge_identifiers == ["email", "customer_number"]


def test_changing_a_legal_basis_with_recorded_consents_is_allowed_and_reported(db: None) -> None:
    apply(doc())
    consent_record(
        command=ConsentCommand(
            reference=parse_reference({"email": "kim@example.org"}),
            purpose="newsletter",
            channel="sms",
            action="grant",
            notice_version="2026-01",
            source="webshop",
        )
    )
    document = doc()
    newsletter = purpose(document, "newsletter")
    newsletter.update(legal_basis="legitimate_interest", uwg_7_3=True)
    del newsletter["consent_valid_days"]

    result = apply(document)

    assert "purpose newsletter: legal_basis consent -> legitimate_interest" in result.changes
    assert (
        "purpose newsletter: legal basis changed from consent to legitimate_interest while consent states exist "
        "(1 granted); checks now follow legitimate_interest, the ledger keeps every event" in result.changes
    )
    assert Purpose.objects.get(key="newsletter").legal_basis == "legitimate_interest"
    assert ConsentState.objects.filter(purpose="newsletter").count() == 1


def test_apply_rejects_a_storage_limit_shorter_than_the_categorys_legal_hold(db: None) -> None:
    document = doc()
    document["sources"][0]["categories"]["purchases"]["delete_after_days"] = 30
    with pytest.raises(CatalogueError) as raised:
        apply(document)
    assert "shorter than the legal hold of 'purchases'" in str(raised.value.errors)
    assert SourceCategory.objects.count() == 0


def test_the_demo_catalogue_applies(db: None) -> None:
    result = apply(catalogue_load_file(str(DEMO_CATALOGUE)))

    assert result.changed is True
    snapshot = catalogue_snapshot()
    assert set(snapshot.purposes) == {
        "newsletter", "personalised-offers", "recommendations", "analytics", "order-updates", "loyalty-programme",
        "offers-by-post", "existing-customer-email",
    }  # fmt: skip
    assert snapshot.purposes["personalised-offers"].rule.double_opt_in == {"email"}
    assert snapshot.channels == {"email", "sms", "phone", "post", "push", "web", "in-store"}


# ---------------------------------------------------------------------------------------------------------
# Localised names and the purchase flag
# ---------------------------------------------------------------------------------------------------------
def localised_document() -> dict[str, Any]:
    document = doc()
    document["channels"][3]["name"] = {"de": "Briefpost", "en": "Letter post"}
    document["data_categories"][1]["name"] = {"de": "Einkäufe", "en": "Purchases"}
    purpose(document, "newsletter")["name"] = {"de": "Newsletter", "en": "Newsletter"}
    purpose(document, "offers")["automated_decision"] = {"de": "Punktwert", "en": "A score"}
    document["sources"][0]["name"] = {"de": "Kassen", "en": "Store tills"}
    return document


def test_a_name_may_be_an_object_of_texts_per_language_everywhere() -> None:
    assert catalogue_validate(localised_document()) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ({"de": "Briefpost"}, "channels[3].name.en: is required"),
        ({"de": "Briefpost", "en": ""}, "channels[3].name.en: must be a non-empty string"),
        ({"de": "Briefpost", "en": "Post", "fr": "Poste"}, "channels[3].name.fr: unknown key (known keys: de, en)"),
        ({"de": 5, "en": "Post"}, "channels[3].name.de: must be a non-empty string"),
    ],
)
def test_it_rejects_a_localised_name_without_every_language_or_with_an_empty_text(name: object, expected: str) -> None:
    document = doc()
    document["channels"][3]["name"] = name
    problems = catalogue_validate(document)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_apply_keeps_localised_names_as_given_and_a_string_still_reads(db: None) -> None:
    from consent.catalogue.edit import catalogue_document

    apply(localised_document())
    post = Channel.objects.get(key="post")
    assert (post.name, post.names) == ("Briefpost", {"de": "Briefpost", "en": "Letter post"})
    sms = Channel.objects.get(key="sms")
    assert (sms.name, sms.names) == ("SMS", None)
    exported = catalogue_document()
    assert exported["channels"][3]["name"] == {"de": "Briefpost", "en": "Letter post"}
    assert exported["channels"][1]["name"] == "SMS"
    assert purpose(exported, "offers")["automated_decision"] == {"de": "Punktwert", "en": "A score"}
    assert exported["sources"][0]["name"] == {"de": "Kassen", "en": "Store tills"}
    assert apply(exported).changes == []  # the export applies as the same catalogue


def test_the_purchase_flag_is_stored_and_listed_in_the_snapshot(db: None) -> None:
    apply(doc())
    assert DataCategory.objects.get(key="purchases").purchase is True
    assert catalogue_snapshot(refresh=True).purchase_categories == frozenset({"purchases"})


def test_a_name_shows_the_readers_language_else_german_and_a_string_as_is() -> None:
    from config.names import localised

    name = {"de": "Briefpost", "en": "Letter post"}
    assert localised(name, "en") == "Letter post"
    assert localised(name, "en-GB") == "Letter post"
    assert localised(name, "fr") == "Briefpost"
    assert localised(name, None) == "Briefpost"
    assert localised("SMS", "en") == "SMS"
