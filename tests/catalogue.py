"""The test catalogue, built in one place: the standard one (newsletter, offers, order updates; the store tills),
and the variants tests need as named changes to it. No Django here: the benchmark reads it before Django is set up;
tests/factories.py applies a built catalogue."""

from __future__ import annotations

import copy
from typing import Any, Self

MERGE_IDENTIFIERS = ("email", "customer_number", "loyalty_card", "crm_id")
CHANNEL_NAMES = {
    "email": "E-Mail",
    "sms": "SMS",
    "post": "Post",
    "push": "Push",
    "web": "Website",
    "phone": "Telefon",
}
# The rights tests' five sources, one of them (the web shop) a system of record, each with its own category.
FIVE_SOURCES = ("pos", "shop", "app", "callcenter", "web")
SOURCE_CATEGORY = {"pos": "purchases", "shop": "orders", "app": "app_usage", "callcenter": "calls", "web": "sessions"}
PURCHASE_CATEGORIES = ("purchases", "orders")  # the categories flagged `purchase`
NEWSLETTER_NOTICE = "2026-01"
PURCHASE_HOLD_POS = {"years": 8, "from": "end_of_year", "law": "§147 AO, §257 HGB"}

_STANDARD: dict[str, Any] = {
    "merge_identifiers": list(MERGE_IDENTIFIERS),
    "channels": [{"key": key, "name": name} for key, name in CHANNEL_NAMES.items()],
    "data_categories": [
        {"key": "contact", "name": "Contact data", "profile": True},
        {"key": "purchases", "name": "Purchases", "purchase": True},
    ],
    "purposes": [
        {
            "key": "newsletter",
            "name": "Newsletter",
            "legal_basis": "consent",
            "marketing": True,
            "channels": ["email", "sms", "push"],
            "data_categories": ["contact"],
            "double_opt_in": ["email"],
            "consent_valid_days": 730,
            "notice": {
                "version": NEWSLETTER_NOTICE,
                "requires_reconsent": False,
                "texts": {"de": "Wir senden Ihnen unseren Newsletter.", "en": "We send you our newsletter."},
            },
        },
        {
            "key": "offers",
            "name": "Offers by post",
            "legal_basis": "legitimate_interest",
            "marketing": True,
            "channels": ["post", "email"],
            "uwg_7_3": True,
            "data_categories": ["contact", "purchases"],
        },
        {
            "key": "order-updates",
            "name": "Order updates",
            "legal_basis": "contract",
            "marketing": False,
            "channels": ["email", "sms"],
            "data_categories": ["contact", "purchases"],
        },
    ],
    "sources": [
        {
            "key": "pos",
            "name": "Store tills",
            "system_of_record": False,
            "categories": {
                "contact": {"delete_after_days": 1095},
                "purchases": {"delete_after_days": 3650, "legal_hold": PURCHASE_HOLD_POS},
            },
        },
    ],
}


class CatalogueBuilder:
    """Starts from the standard catalogue; each method changes one part of it and returns the builder, and
    `build()` hands out a fresh copy, so no test can change another's catalogue."""

    def __init__(self) -> None:
        self._document: dict[str, Any] = copy.deepcopy(_STANDARD)

    def channels(self, *keys: str) -> Self:
        """Exactly these channels, in this order."""
        self._document["channels"] = [{"key": key, "name": CHANNEL_NAMES[key]} for key in keys]
        return self

    def category(self, key: str, name: str, **flags: bool) -> Self:
        """Adds a data category at the end (`profile=True`, `purchase=True` as the catalogue's flags)."""
        self._document["data_categories"].append({"key": key, "name": name, **flags})
        return self

    def purpose(self, key: str, *, after: str | None = None, **fields: Any) -> Self:
        """Changes the fields of purpose `key` (None removes a field), or adds it: after purpose `after`, else at
        the end."""
        purposes: list[dict[str, Any]] = self._document["purposes"]
        existing = next((p for p in purposes if p["key"] == key), None)
        if existing is None:
            existing = {"key": key}
            keys = [p["key"] for p in purposes]
            purposes.insert(keys.index(after) + 1 if after else len(purposes), existing)
        for name, value in fields.items():
            if value is None:
                existing.pop(name, None)
            else:
                existing[name] = copy.deepcopy(value)
        return self

    def source(self, key: str, name: str, *, categories: dict[str, Any], system_of_record: bool = False) -> Self:
        self._document["sources"].append(
            {"key": key, "name": name, "system_of_record": system_of_record, "categories": copy.deepcopy(categories)}
        )
        return self

    def one_per_person(self, *kinds: str) -> Self:
        self._document["one_per_person"] = list(kinds)
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self._document)


def standard_catalogue(**top_level: Any) -> dict[str, Any]:
    """The standard catalogue; keyword arguments set top-level keys (e.g. `one_per_person=[...]`)."""
    return CatalogueBuilder().build() | copy.deepcopy(top_level)


def gpc_catalogue() -> dict[str, Any]:
    """The standard catalogue with two consent purposes that Global Privacy Control covers (`gpc: true`): targeted ads
    on the website and offers by phone."""
    notice = {"version": "2026-01", "texts": {"de": "Ja, ich möchte das.", "en": "Yes, I want this."}}
    common = {"legal_basis": "consent", "marketing": True, "gpc": True, "data_categories": ["contact"]}
    common["notice"] = notice
    return (
        CatalogueBuilder()
        .purpose("phone-offers", after="newsletter", name="Offers by phone", channels=["phone"], **common)
        .purpose("targeted-ads", after="phone-offers", name="Targeted ads", channels=["web"], **common)
        .build()
    )


def rights_catalogue() -> dict[str, Any]:
    """The rights tests' and benchmark's: five sources (FIVE_SOURCES), a phone purpose and an automated decision."""
    return (
        CatalogueBuilder()
        .category("orders", "Orders", purchase=True)
        .category("app_usage", "App usage")
        .category("calls", "Call-centre contacts")
        .category("sessions", "Web sessions")
        .purpose(
            "phone-offers",
            after="newsletter",
            name="Offers by phone",
            legal_basis="consent",
            marketing=True,
            channels=["phone"],
            data_categories=["contact"],
            notice={"version": "1", "requires_reconsent": False, "texts": {"de": "Anrufe.", "en": "Calls."}},
        )
        .purpose("offers", channels=["post"], uwg_7_3=None, data_categories=["contact", "purchases", "orders"])
        .purpose(
            "recommendations",
            after="offers",
            name="Recommendations",
            legal_basis="legitimate_interest",
            marketing=False,
            channels=["web"],
            data_categories=["app_usage", "sessions"],
            automated_decision="Product suggestions are ranked by an algorithm from your app use.",
        )
        .purpose("order-updates", data_categories=["contact", "purchases", "orders"])
        .source(
            "shop",
            "Web shop",
            system_of_record=True,
            categories={
                "contact": {"delete_after_days": 1095},
                "orders": {
                    "delete_after_days": 3650,
                    "legal_hold": {"years": 8, "from": "end_of_year", "law": "§147 AO, §14b UStG"},
                },
            },
        )
        .source("app", "App", categories={"app_usage": {"delete_after_days": 365}})
        .source("callcenter", "Call centre", categories={"calls": {"delete_after_days": 730}})
        .source("web", "Website", categories={"sessions": {"delete_after_days": 90}})
        .build()
    )


def validation_catalogue() -> dict[str, Any]:
    """The catalogue tests' document: every purpose kind, a device-reading purpose (TCF) and no push channel."""
    return (
        CatalogueBuilder()
        .channels("email", "sms", "phone", "post", "web")
        .category("cookie_ids", "Cookie ids")
        .purpose(
            "newsletter",
            channels=["email", "sms"],
            double_opt_in=None,
            dpv="dpv:DirectMarketing",
            notice={"version": NEWSLETTER_NOTICE, "texts": {"de": "Unser Newsletter.", "en": "Our newsletter."}},
        )
        .purpose("offers", name="Offers")
        .purpose(
            "analytics",
            name="Statistics",
            legal_basis="consent",
            marketing=False,
            channels=["web"],
            data_categories=["cookie_ids"],
            reads_device_identifiers=True,
            tcf_purposes=[1, 8],
            notice={
                "version": NEWSLETTER_NOTICE,
                "requires_reconsent": False,
                "texts": {"de": "Statistik mit Cookies.", "en": "Statistics with cookies."},
            },
        )
        .build()
    )
