"""A catalogue source's connector (API.md, "Connectors"): the map validated with the file, checked against the live
database when its DSN is set, stored, and handed to the rights workflow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from consent.catalogue.apply import catalogue_apply
from consent.catalogue.spec import CatalogueError
from consent.catalogue.validate import catalogue_validate
from consent.models import CatalogueRevision, Source
from subjects import ports
from tests.catalogue import standard_catalogue
from tests.factories import apply_catalogue
from tests.subjects.connectors.shop import DSN_ENV, HOLD_LAW, shop_connector, shop_database, shop_database_name


def _with_shop_source(connector: dict[str, Any]) -> dict[str, Any]:
    document = standard_catalogue()
    document["sources"].append(
        {
            "key": "shopdb",
            "name": "Shop database",
            "system_of_record": False,
            "categories": {
                "purchases": {
                    "delete_after_days": 3650,
                    "legal_hold": {"years": 10, "from": "end_of_year", "law": HOLD_LAW},
                }
            },
            "connector": connector,
        }
    )
    return document


@pytest.fixture
def shop_dsn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with shop_database(shop_database_name("catalogue")) as dsn:
        monkeypatch.setenv(DSN_ENV, dsn)
        yield dsn


def _place() -> str:
    return f"sources[{len(standard_catalogue()['sources'])}].connector"


def test_a_connector_map_is_validated_with_the_file() -> None:
    connector = shop_connector()
    connector["tables"]["login"]["erase"] = "shred"

    problems = catalogue_validate(_with_shop_source(connector))

    assert problems == [
        f'{_place()}.tables.login.erase: must be "delete", "keep" or an object: column -> null | hash | redact'
    ]


def test_an_unknown_connector_type_is_named() -> None:
    problems = catalogue_validate(_with_shop_source({"type": "ftp"}))

    assert problems == [f"{_place()}.type: 'ftp' is not a connector type (one of http, postgresql)"]


def test_apply_names_every_mismatch_with_the_live_schema(db: None, shop_dsn: str) -> None:
    connector = shop_connector()
    connector["tables"]["customer"]["erase"]["nickname"] = "redact"
    with psycopg.connect(shop_dsn, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE payment_card DROP CONSTRAINT payment_card_customer_id_fkey, ALTER COLUMN customer_id TYPE text"
        )

    with pytest.raises(CatalogueError) as raised:
        catalogue_apply(document=_with_shop_source(connector))

    place = _place()
    assert raised.value.errors == [
        f"{place}.tables.customer: no column 'nickname' in table 'customer'",
        f"{place}.tables.payment_card.references.customer_id: 'payment_card.customer_id' is text but 'customer.id' "
        "is integer; a reference joins equal types",
    ]
    assert not CatalogueRevision.objects.exists()


def test_a_map_that_fits_is_stored_and_reaches_the_rights_workflow(db: None, shop_dsn: str) -> None:
    apply_catalogue(_with_shop_source(shop_connector()))

    assert Source.objects.get(key="shopdb").connector == shop_connector()
    facts = ports.consent_rights.catalogue().sources["shopdb"]
    assert facts.connector == shop_connector()


def test_without_its_dsn_the_map_is_applied_unchecked(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalogue may be applied where the shop's database is not reachable (a staging host); the connector
    checks the live schema again before every run."""
    monkeypatch.delenv(DSN_ENV, raising=False)
    connector = shop_connector()
    connector["tables"]["customer"]["erase"]["nickname"] = "redact"

    apply_catalogue(_with_shop_source(connector))

    assert Source.objects.get(key="shopdb").connector == connector
