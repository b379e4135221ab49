"""A web shop's own PostgreSQL database, created for one test (or benchmark) and dropped after: customers, shared
addresses, orders with composite-key order lines, invoices under a legal hold, payment cards, logins, and support
tickets, visit logs and newsletter sign-ups that only an e-mail address ties to a person."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DSN_ENV = "ASSENT_SHOP_DSN"

SCHEMA = """
CREATE TABLE address (id serial PRIMARY KEY, street text NOT NULL, city text NOT NULL);
CREATE TABLE customer (
    id serial PRIMARY KEY, email varchar(200) NOT NULL UNIQUE, name text NOT NULL, phone text,
    address_id integer REFERENCES address (id), created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id),
    shipping_address_id integer REFERENCES address (id), shipping_name text, total numeric(10, 2) NOT NULL,
    placed_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE order_line (
    order_id bigint NOT NULL REFERENCES orders (id), line_no integer NOT NULL, sku text NOT NULL,
    quantity integer NOT NULL, gift_message text, PRIMARY KEY (order_id, line_no));
CREATE TABLE invoice (
    id serial PRIMARY KEY, order_id bigint NOT NULL REFERENCES orders (id), number text NOT NULL,
    amount numeric(10, 2) NOT NULL);
CREATE TABLE payment_card (
    id serial PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), last4 char(4) NOT NULL,
    holder text NOT NULL, expires date NOT NULL);
CREATE TABLE login (
    id bigserial PRIMARY KEY, customer_id integer NOT NULL REFERENCES customer (id), ip inet NOT NULL,
    user_agent text, at timestamptz NOT NULL DEFAULT now());
CREATE TABLE support_ticket (id serial PRIMARY KEY, contact_email text NOT NULL, subject text, body text);
CREATE TABLE visit_log (id bigserial PRIMARY KEY, email text NOT NULL, path text NOT NULL, at timestamptz);
CREATE TABLE newsletter_signup (email text PRIMARY KEY, signed_up_at timestamptz NOT NULL DEFAULT now());
"""

HOLD_LAW = "§147 AO, §257 HGB"


def shop_connector() -> dict[str, Any]:
    """The connector of the shop's catalogue source (API.md, "Connectors")."""
    return {
        "type": "postgresql",
        "dsn_env": DSN_ENV,
        "tables": {
            "customer": {
                "key": ["id"],
                "identifiers": {"email": "email"},
                "references": {"address_id": "address.id"},
                # The row stays for the kept invoices' orders; what names the person goes.
                "erase": {"email": "hash", "name": "redact", "phone": "null", "address_id": "null"},
            },
            "address": {"key": ["id"], "erase": "delete"},
            "orders": {
                "key": ["id"],
                "references": {"customer_id": "customer.id", "shipping_address_id": "address.id"},
                "erase": {"shipping_name": "redact", "shipping_address_id": "null"},
            },
            "order_line": {
                "key": ["order_id", "line_no"],
                "references": {"order_id": "orders.id"},
                "erase": {"gift_message": "redact"},
            },
            "invoice": {"key": ["id"], "references": {"order_id": "orders.id"}, "erase": "keep"},
            "payment_card": {"key": ["id"], "references": {"customer_id": "customer.id"}, "erase": "delete"},
            "login": {"key": ["id"], "references": {"customer_id": "customer.id"}, "erase": "delete"},
            "support_ticket": {"key": ["id"], "identifiers": {"email": "contact_email"}, "erase": "delete"},
            "visit_log": {"key": ["id"], "identifiers": {"email": "email"}, "erase": "delete"},
            "newsletter_signup": {"key": ["email"], "identifiers": {"email": "email"}, "erase": "delete"},
        },
    }


@contextmanager
def shop_database(name: str) -> Iterator[str]:
    """A fresh database with the shop's schema; yields its DSN; dropped after."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)
        yield dsn
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def shop_database_name(tag: str) -> str:
    return f"assent_shop_{tag}_{os.getpid()}"


def add_customer(
    conn: psycopg.Connection,
    *,
    email: str,
    name: str,
    address_id: int | None = None,
    orders: int = 1,
    lines: int = 2,
    logins: int = 1,
    cards: int = 1,
    tickets: int = 1,
    visits: int = 1,
    newsletter: bool = True,
    ship_to: int | None = None,
) -> int:
    """A customer with everything a shop keeps of one; returns the customer's id. Tickets, visits and the
    newsletter sign-up carry only the address (in another spelling, as people type it)."""
    typed = email.upper() if "@" in email else email
    with conn.cursor() as cur:
        if address_id is None:
            address_id = cur.execute(
                "INSERT INTO address (street, city) VALUES (%s, 'Berlin') RETURNING id", [f"{name}strasse 1"]
            ).fetchone()[0]  # type: ignore[index]
        customer = cur.execute(
            "INSERT INTO customer (email, name, phone, address_id) VALUES (%s, %s, %s, %s) RETURNING id",
            [email, name, "+49 30 1234567", address_id],
        ).fetchone()[0]  # type: ignore[index]
        for o in range(orders):
            order = cur.execute(
                "INSERT INTO orders (customer_id, shipping_address_id, shipping_name, total) "
                "VALUES (%s, %s, %s, %s) RETURNING id",
                [customer, ship_to or address_id, name, 10 + o],
            ).fetchone()[0]  # type: ignore[index]
            cur.executemany(
                "INSERT INTO order_line (order_id, line_no, sku, quantity, gift_message) VALUES (%s, %s, %s, 1, %s)",
                [(order, n + 1, f"SKU-{n}", f"for {name}") for n in range(lines)],
            )
            cur.execute(
                "INSERT INTO invoice (order_id, number, amount) VALUES (%s, %s, %s)", [order, f"R-{order}", 10 + o]
            )
        cur.executemany(
            "INSERT INTO payment_card (customer_id, last4, holder, expires) VALUES (%s, '4242', %s, '2030-01-31')",
            [(customer, name)] * cards,
        )
        cur.executemany(
            "INSERT INTO login (customer_id, ip, user_agent) VALUES (%s, '192.0.2.7', 'Firefox')",
            [(customer,)] * logins,
        )
        cur.executemany(
            "INSERT INTO support_ticket (contact_email, subject, body) VALUES (%s, 'Parcel', %s)",
            [(typed, f"Where is my parcel? {name}")] * tickets,
        )
        cur.executemany("INSERT INTO visit_log (email, path, at) VALUES (%s, '/cart', now())", [(typed,)] * visits)
        if newsletter:
            cur.execute("INSERT INTO newsletter_signup (email) VALUES (%s)", [email])
    return int(customer)


def dump(dsn: str) -> dict[str, dict[str, str]]:
    """Every row of every table as its JSON text, by table and key text: what 'byte for byte unchanged' compares."""
    keys = {table: spec["key"] for table, spec in shop_connector()["tables"].items()}
    result: dict[str, dict[str, str]] = {}
    with psycopg.connect(dsn) as conn:
        for table, key in keys.items():
            query = sql.SQL("SELECT row_to_json(t)::text, {} FROM {} t").format(
                sql.SQL(" || ',' || ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in key),
                sql.Identifier(table),
            )
            result[table] = {k: row for row, k in conn.execute(query).fetchall()}
    return result
