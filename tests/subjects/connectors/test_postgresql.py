"""The PostgreSQL connector against a real shop database: the map checked against the live schema, access that
returns exactly the person's rows, and erasure that leaves nothing of the person while every other customer's rows
stay byte for byte."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from subjects.connectors.pgmap import pg_map_from_connector, pg_map_parse
from subjects.connectors.pgrun import Hold, MapMismatchError, pg_access, pg_erase
from subjects.connectors.pgschema import pg_map_check_live
from tests.subjects.connectors.shop import (
    DSN_ENV,
    HOLD_LAW,
    add_customer,
    dump,
    shop_connector,
    shop_database,
    shop_database_name,
)

ANNA = "anna.alt@example.com"
HASH_KEY = b"k" * 32
HOLD = Hold(why=HOLD_LAW, until="2036-12-31")


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Anna (the person) shares her home address with Bert; her parcels go to an address only she uses. Carla has
    her own everything; a stranger's visit and ticket name no customer."""
    with shop_database(shop_database_name("conn")) as dsn:
        monkeypatch.setenv(DSN_ENV, dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            shared = conn.execute("INSERT INTO address (street, city) VALUES ('Hof 2', 'Berlin') RETURNING id")
            shared_id = shared.fetchone()[0]  # type: ignore[index]
            parcels = conn.execute("INSERT INTO address (street, city) VALUES ('Packstation 9', 'Berlin') RETURNING id")
            parcels_id = parcels.fetchone()[0]  # type: ignore[index]
            anna = add_customer(
                conn, email=ANNA, name="Anna Alt", address_id=shared_id, ship_to=parcels_id, orders=2, lines=3
            )
            bert = add_customer(conn, email="bert@example.com", name="Bert Brandt", address_id=shared_id)
            carla = add_customer(conn, email="carla@example.org", name="Carla Cruz", orders=3)
            conn.execute("INSERT INTO visit_log (email, path) VALUES ('stranger@example.net', '/')")
        yield {"dsn": dsn, "anna": anna, "bert": bert, "carla": carla, "shared": shared_id, "parcels": parcels_id}


def _annas_keys(dsn: str, anna: int, parcels: int) -> dict[str, set[str]]:
    """Anna's rows by hand, as the map's definition says: what her e-mail names, what references her rows, and the
    parcel address only her orders use (not the home address Bert uses too)."""
    queries = {
        "customer": ("SELECT id::text FROM customer WHERE id = %s", [anna]),
        "address": ("SELECT id::text FROM address WHERE id = %s", [parcels]),
        "orders": ("SELECT id::text FROM orders WHERE customer_id = %s", [anna]),
        "order_line": (
            "SELECT order_id::text || ',' || line_no::text FROM order_line JOIN orders o ON o.id = order_id "
            "WHERE o.customer_id = %s",
            [anna],
        ),
        "invoice": (
            "SELECT i.id::text FROM invoice i JOIN orders o ON o.id = order_id WHERE o.customer_id = %s",
            [anna],
        ),
        "payment_card": ("SELECT id::text FROM payment_card WHERE customer_id = %s", [anna]),
        "login": ("SELECT id::text FROM login WHERE customer_id = %s", [anna]),
        "support_ticket": ("SELECT id::text FROM support_ticket WHERE lower(contact_email) = %s", [ANNA]),
        "visit_log": ("SELECT id::text FROM visit_log WHERE lower(email) = %s", [ANNA]),
        "newsletter_signup": ("SELECT email FROM newsletter_signup WHERE email = %s", [ANNA]),
    }
    with psycopg.connect(dsn) as conn:
        return {table: {r[0] for r in conn.execute(q, p).fetchall()} for table, (q, p) in queries.items()}


def _key_text(table: str, row: dict[str, Any]) -> str:
    key = shop_connector()["tables"][table]["key"]
    return ",".join(str(row[c]) for c in key)


def test_access_returns_exactly_the_persons_rows(shop: dict[str, Any]) -> None:
    pg_map = pg_map_from_connector(shop_connector())

    found = pg_access(pg_map, [("email", ANNA)])

    expected = _annas_keys(shop["dsn"], shop["anna"], shop["parcels"])
    assert {table: {_key_text(table, row) for row in rows} for table, rows in found.items()} == expected
    assert all(len(keys) for keys in expected.values())  # the scenario has rows of Anna's in every table
    assert str(shop["shared"]) not in {_key_text("address", row) for row in found["address"]}
    json.dumps(found)  # JSON-ready: numerics, timestamps, inet as text


def test_access_of_someone_the_shop_does_not_know_is_empty(shop: dict[str, Any]) -> None:
    assert pg_access(pg_map_from_connector(shop_connector()), [("email", "nobody@example.com")]) == {}


def test_erasure_leaves_nothing_of_the_person_and_every_other_row_unchanged(shop: dict[str, Any]) -> None:
    pg_map = pg_map_from_connector(shop_connector())
    annas = _annas_keys(shop["dsn"], shop["anna"], shop["parcels"])
    before = dump(shop["dsn"])

    report = pg_erase(pg_map, [("email", ANNA)], hash_key=HASH_KEY, hold=HOLD)

    after = dump(shop["dsn"])
    for table, rows in before.items():
        others = {key: text for key, text in rows.items() if key not in annas[table]}
        assert {key: after[table].get(key) for key in others} == others, table
    everything = json.dumps(after).lower()
    for trace in ("anna", "alt@", "packstation", "for anna"):
        assert trace not in everything
    # Deleted where the map says delete; kept invoices, pseudonymised rows and the shared address stay.
    for table in ("payment_card", "login", "support_ticket", "visit_log", "newsletter_signup", "address"):
        assert not annas[table] & set(after[table]), table
    assert annas["invoice"] <= set(after["invoice"])
    assert {"what": "invoice: 2 rows", "why": HOLD_LAW, "until": "2036-12-31"} in report["kept"]
    shared = [k for k in report["kept"] if k["what"] == "address: 1 row"]
    assert len(shared) == 1
    assert "shared" in shared[0]["why"]
    assert "customer" in shared[0]["why"]
    assert {"what": "customer: 1 row", "how": "address_id nulled, email hashed, name redacted, phone nulled"} in (
        report["erased"]
    )


def test_erasure_hashes_with_the_keyed_hmac(shop: dict[str, Any]) -> None:
    pg_erase(pg_map_from_connector(shop_connector()), [("email", ANNA)], hash_key=HASH_KEY, hold=HOLD)

    with psycopg.connect(shop["dsn"]) as conn:
        email = conn.execute("SELECT email FROM customer WHERE id = %s", [shop["anna"]]).fetchone()[0]  # type: ignore[index]
    assert email == hmac.new(HASH_KEY, ANNA.encode(), hashlib.sha256).hexdigest()


def test_a_dry_run_plans_the_erasure_and_changes_nothing(shop: dict[str, Any]) -> None:
    before = dump(shop["dsn"])

    plan = pg_erase(
        pg_map_from_connector(shop_connector()), [("email", ANNA)], hash_key=HASH_KEY, hold=HOLD, dry_run=True
    )

    assert dump(shop["dsn"]) == before
    assert {"what": "payment_card: 1 row", "how": "deleted"} in plan["erased"]


def test_erasure_keeps_a_row_that_a_kept_row_still_references(shop: dict[str, Any]) -> None:
    """Orders kept whole (no column cut): the parcel address they point at cannot go, and the report says why."""
    connector = shop_connector()
    connector["tables"]["orders"]["erase"] = "keep"
    connector["tables"]["order_line"]["erase"] = "keep"

    report = pg_erase(pg_map_from_connector(connector), [("email", ANNA)], hash_key=HASH_KEY, hold=HOLD)

    with psycopg.connect(shop["dsn"]) as conn:
        assert conn.execute("SELECT count(*) FROM address WHERE id = %s", [shop["parcels"]]).fetchone() == (1,)
    blocked = [k for k in report["kept"] if k["what"] == "address: 1 row" and "foreign key" in k["why"]]
    assert len(blocked) == 1
    assert "orders" in blocked[0]["why"]


def test_the_map_is_checked_against_the_live_schema(shop: dict[str, Any]) -> None:
    connector = shop_connector()
    connector["tables"]["customer"]["erase"]["nickname"] = "redact"
    with psycopg.connect(shop["dsn"], autocommit=True) as conn:
        conn.execute("ALTER TABLE login ALTER COLUMN customer_id TYPE bigint")

    problems = pg_map_check_live(pg_map_from_connector(connector), "sources[0].connector")

    assert "sources[0].connector.tables.customer: no column 'nickname' in table 'customer'" in problems
    assert any(
        p.startswith(
            "sources[0].connector.tables.login.references.customer_id: 'login.customer_id' is bigint but "
            "'customer.id' is integer"
        )
        for p in problems
    )
    assert len(problems) == 2


def test_redacting_a_unique_column_is_named_before_a_second_erasure_collides(shop: dict[str, Any]) -> None:
    connector = shop_connector()
    connector["tables"]["customer"]["erase"]["email"] = "redact"

    problems = pg_map_check_live(pg_map_from_connector(connector))

    assert problems == [
        "connector.tables.customer.erase.email: 'email' is unique, so a second person's redaction would collide; "
        "hash it instead"
    ]


def test_the_connector_refuses_a_map_that_no_longer_fits(shop: dict[str, Any]) -> None:
    with psycopg.connect(shop["dsn"], autocommit=True) as conn:
        conn.execute("ALTER TABLE visit_log RENAME COLUMN email TO mail")

    with pytest.raises(MapMismatchError):
        pg_erase(pg_map_from_connector(shop_connector()), [("email", ANNA)], hash_key=HASH_KEY, hold=HOLD)


def test_a_foreign_key_the_map_does_not_follow_is_named(shop: dict[str, Any]) -> None:
    with psycopg.connect(shop["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE wishlist (id serial PRIMARY KEY, customer_id integer REFERENCES customer (id))")

    problems = pg_map_check_live(pg_map_from_connector(shop_connector()))

    assert problems == [
        "connector.tables.customer: the foreign key wishlist(customer_id) -> customer(id) is not in the map's "
        "references"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c.pop("dsn_env"), "connector.dsn_env: must name an environment variable"),
        (lambda c: c["tables"]["orders"].update(key=[]), "connector.tables.orders.key: must be a list"),
        (lambda c: c["tables"]["login"].update(erase="shred"), "connector.tables.login.erase: must be"),
        (
            lambda c: c["tables"]["login"]["references"].update(customer_id="client.id"),
            "connector.tables.login.references.customer_id: 'client' is not a table of this map",
        ),
        (
            lambda c: c["tables"]["orders"].update(erase={"customer_id": "hash"}),
            "connector.tables.orders.erase.customer_id: a referencing column can only be nulled",
        ),
        (
            lambda c: c["tables"]["customer"].update(identifiers={"shoe_size": "email"}),
            "connector.tables.customer.identifiers.shoe_size: not an identifier kind",
        ),
        (
            lambda c: c["tables"]["address"].update(references={"id": "customer.id"}),
            "connector.tables: the references form a cycle",
        ),
        (
            lambda c: c["tables"].update({'x"; DROP TABLE customer; --': {"key": ["id"], "erase": "delete"}}),
            "is not a plain SQL table name",
        ),
    ],
)
def test_a_map_that_cannot_work_is_refused_with_its_place(change: Any, problem: str) -> None:
    connector = copy.deepcopy(shop_connector())
    change(connector)

    parsed, problems = pg_map_parse(connector, "connector")

    assert parsed is None
    assert any(problem in p for p in problems), problems
