"""The catalogue of the rights tests and benchmark: five sources, one of them (the web shop) a system of record.
No Django here: the benchmark reads it before Django is set up."""

from __future__ import annotations

from typing import Any

FIVE_SOURCES = ("pos", "shop", "app", "callcenter", "web")
SOURCE_CATEGORY = {"pos": "purchases", "shop": "orders", "app": "app_usage", "callcenter": "calls", "web": "sessions"}

RIGHTS_CATALOGUE: dict[str, Any] = {
    "merge_identifiers": ["email", "customer_number", "loyalty_card", "crm_id"],
    "channels": [
        {"key": "email", "name": "E-Mail"},
        {"key": "sms", "name": "SMS"},
        {"key": "post", "name": "Post"},
        {"key": "push", "name": "Push"},
        {"key": "web", "name": "Website"},
        {"key": "phone", "name": "Telefon"},
    ],
    "data_categories": [
        {"key": "contact", "name": "Contact data", "profile": True},
        {"key": "purchases", "name": "Purchases", "purchase": True},
        {"key": "orders", "name": "Orders", "purchase": True},
        {"key": "app_usage", "name": "App usage"},
        {"key": "calls", "name": "Call-centre contacts"},
        {"key": "sessions", "name": "Web sessions"},
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
                "version": "2026-01",
                "requires_reconsent": False,
                "texts": {"de": "Wir senden Ihnen unseren Newsletter.", "en": "We send you our newsletter."},
            },
        },
        {
            "key": "phone-offers",
            "name": "Offers by phone",
            "legal_basis": "consent",
            "marketing": True,
            "channels": ["phone"],
            "data_categories": ["contact"],
            "notice": {"version": "1", "requires_reconsent": False, "texts": {"de": "Anrufe.", "en": "Calls."}},
        },
        {
            "key": "offers",
            "name": "Offers by post",
            "legal_basis": "legitimate_interest",
            "marketing": True,
            "channels": ["post"],
            "data_categories": ["contact", "purchases", "orders"],
        },
        {
            "key": "recommendations",
            "name": "Recommendations",
            "legal_basis": "legitimate_interest",
            "marketing": False,
            "channels": ["web"],
            "data_categories": ["app_usage", "sessions"],
            "automated_decision": "Product suggestions are ranked by an algorithm from your app use.",
        },
        {
            "key": "order-updates",
            "name": "Order updates",
            "legal_basis": "contract",
            "marketing": False,
            "channels": ["email", "sms"],
            "data_categories": ["contact", "purchases", "orders"],
        },
    ],
    "sources": [
        {
            "key": "pos",
            "name": "Store tills",
            "system_of_record": False,
            "categories": {
                "contact": {"delete_after_days": 1095},
                "purchases": {
                    "delete_after_days": 3650,
                    "legal_hold": {"years": 8, "from": "end_of_year", "law": "§147 AO, §257 HGB"},
                },
            },
        },
        {
            "key": "shop",
            "name": "Web shop",
            "system_of_record": True,
            "categories": {
                "contact": {"delete_after_days": 1095},
                "orders": {
                    "delete_after_days": 3650,
                    "legal_hold": {"years": 8, "from": "end_of_year", "law": "§147 AO, §14b UStG"},
                },
            },
        },
        {
            "key": "app",
            "name": "App",
            "system_of_record": False,
            "categories": {"app_usage": {"delete_after_days": 365}},
        },
        {
            "key": "callcenter",
            "name": "Call centre",
            "system_of_record": False,
            "categories": {"calls": {"delete_after_days": 730}},
        },
        {
            "key": "web",
            "name": "Website",
            "system_of_record": False,
            "categories": {"sessions": {"delete_after_days": 90}},
        },
    ],
}
