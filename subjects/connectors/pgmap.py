"""The map of a PostgreSQL connector (API.md, "Connectors"): which tables hold the person's data, their keys, the
identifier columns, the foreign keys to follow and each table's erasure strategy. Parsing is pure and collects
every problem with its place in the catalogue file; the live schema is checked by `pgschema.pg_map_check`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from subjects.models import Identifier

POSTGRESQL = "postgresql"
DELETE, KEEP = "delete", "keep"
NULL, HASH, REDACT = "null", "hash", "redact"
COLUMN_STRATEGIES = (NULL, HASH, REDACT)
# Table and column names as a map may spell them: plain lower-case SQL names. They are still only ever used
# after the live schema confirmed them, and then as quoted identifiers (psycopg.sql.Identifier).
SQL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
KINDS = tuple(Identifier.Kind.values)
CONNECTOR_KEYS = ("type", "dsn_env", "tables")
TABLE_KEYS = ("key", "identifiers", "references", "erase")


@dataclass(frozen=True, slots=True)
class Reference:
    column: str  # the referencing column of this table
    table: str  # the referenced table
    target: str  # the referenced column


@dataclass(frozen=True, slots=True)
class TableMap:
    name: str
    key: tuple[str, ...]
    identifiers: dict[str, str]  # identifier kind -> column
    references: tuple[Reference, ...]
    erase: str | dict[str, str]  # "delete", "keep", or column -> "null" | "hash" | "redact"

    def columns(self) -> set[str]:
        """Every column the map names in this table."""
        named = set(self.key) | set(self.identifiers.values()) | {r.column for r in self.references}
        return named | (set(self.erase) if isinstance(self.erase, dict) else set())


@dataclass(frozen=True, slots=True)
class PgMap:
    dsn_env: str
    tables: dict[str, TableMap]

    def referrers(self, table: str) -> list[tuple[TableMap, Reference]]:
        """Every (table, reference) of the map that points at `table`."""
        return [(t, r) for t in self.tables.values() for r in t.references if r.table == table]

    def children_first(self) -> list[str]:
        """The tables in an order where every table comes before the tables it references (erasure order)."""
        order: list[str] = []
        placed: set[str] = set()
        waiting = sorted(self.tables)
        while waiting:
            # A table goes once every table that references it is placed (the map has no cycle: see pg_map_parse).
            ready = [t for t in waiting if all(c.name in placed or c.name == t for c, _ in self.referrers(t))]
            order.extend(ready)
            placed.update(ready)
            waiting = [t for t in waiting if t not in placed]
        return order


def pg_map_parse(connector: object, place: str) -> tuple[PgMap | None, list[str]]:
    """The map of `{"type": "postgresql", ...}`, or None and every problem, each naming its place."""
    problems: list[str] = []
    if not isinstance(connector, dict):
        return None, [f"{place}: must be an object"]
    for name in sorted(set(connector) - set(CONNECTOR_KEYS)):
        problems.append(f"{place}.{name}: unknown key (allowed: {', '.join(CONNECTOR_KEYS)})")
    dsn_env = connector.get("dsn_env")
    if not isinstance(dsn_env, str) or not ENV_NAME.fullmatch(dsn_env):
        problems.append(f"{place}.dsn_env: must name an environment variable (upper-case letters, digits, _)")
    raw_tables = connector.get("tables")
    if not isinstance(raw_tables, dict) or not raw_tables:
        problems.append(f"{place}.tables: must be an object naming at least one table")
        return None, problems
    tables: dict[str, TableMap] = {}
    for name, spec in raw_tables.items():
        table = _table(name, spec, f"{place}.tables.{name}", problems)
        if table is not None:
            tables[name] = table
    for table in tables.values():
        for ref in table.references:
            where = f"{place}.tables.{table.name}.references.{ref.column}"
            if ref.table not in raw_tables:
                problems.append(f"{where}: '{ref.table}' is not a table of this map")
    if not problems and _has_cycle(tables):
        problems.append(
            f"{place}.tables: the references form a cycle; erasure goes children before parents and needs an order"
        )
    if problems or not isinstance(dsn_env, str):
        return None, problems
    return PgMap(dsn_env=dsn_env, tables=tables), []


def _table(name: str, spec: object, place: str, problems: list[str]) -> TableMap | None:
    before = len(problems)
    if not SQL_NAME.fullmatch(name):
        problems.append(f"{place}: '{name[:70]}' is not a plain SQL table name (lower-case letters, digits, _)")
    if not isinstance(spec, dict):
        problems.append(f"{place}: must be an object with key, erase and optionally identifiers, references")
        return None
    for extra in sorted(set(spec) - set(TABLE_KEYS)):
        problems.append(f"{place}.{extra}: unknown key (allowed: {', '.join(TABLE_KEYS)})")
    key = spec.get("key")
    if not isinstance(key, list) or not key or not all(isinstance(c, str) and SQL_NAME.fullmatch(c) for c in key):
        problems.append(f"{place}.key: must be a list of the primary-key columns (composite allowed)")
        key = []
    elif len(set(key)) != len(key):
        problems.append(f"{place}.key: names a column twice")
    identifiers = _identifiers(spec.get("identifiers", {}), f"{place}.identifiers", problems)
    references = _references(spec.get("references", {}), f"{place}.references", problems)
    erase = _erase(spec.get("erase"), f"{place}.erase", problems)
    if isinstance(erase, dict):
        for column, strategy in erase.items():
            where = f"{place}.erase.{column}"
            if column in key:
                problems.append(f"{where}: a key column identifies the row and is never changed")
            elif any(r.column == column for r in references) and strategy != NULL:
                problems.append(f"{where}: a referencing column can only be nulled (a {strategy} would break the key)")
    if len(problems) > before:
        return None
    return TableMap(name=name, key=tuple(key), identifiers=identifiers, references=references, erase=erase or DELETE)


def _identifiers(value: object, place: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(value, dict):
        problems.append(f"{place}: must be an object: identifier kind -> column")
        return {}
    result: dict[str, str] = {}
    for kind, column in value.items():
        if kind not in KINDS:
            problems.append(f"{place}.{kind}: not an identifier kind (one of {', '.join(KINDS)})")
        elif not isinstance(column, str) or not SQL_NAME.fullmatch(column):
            problems.append(f"{place}.{kind}: must name a column")
        else:
            result[kind] = column
    return result


def _references(value: object, place: str, problems: list[str]) -> tuple[Reference, ...]:
    if not isinstance(value, dict):
        problems.append(f'{place}: must be an object: column -> "table.column"')
        return ()
    result: list[Reference] = []
    for column, target in value.items():
        parts = target.split(".") if isinstance(target, str) else []
        if not SQL_NAME.fullmatch(column):
            problems.append(f"{place}.{column[:70]}: not a plain SQL column name")
        elif len(parts) != 2 or not all(SQL_NAME.fullmatch(p) for p in parts):
            problems.append(f'{place}.{column}: must be "table.column"')
        else:
            result.append(Reference(column=column, table=parts[0], target=parts[1]))
    return tuple(result)


def _erase(value: object, place: str, problems: list[str]) -> str | dict[str, str] | None:
    if value in (DELETE, KEEP):
        return str(value)
    if isinstance(value, dict) and value:
        result: dict[str, str] = {}
        for column, strategy in value.items():
            if not SQL_NAME.fullmatch(column):
                problems.append(f"{place}.{column[:70]}: not a plain SQL column name")
            elif strategy not in COLUMN_STRATEGIES:
                problems.append(f"{place}.{column}: must be one of {', '.join(COLUMN_STRATEGIES)}")
            else:
                result[column] = str(strategy)
        return result
    problems.append(f'{place}: must be "delete", "keep" or an object: column -> null | hash | redact')
    return None


def _has_cycle(tables: dict[str, TableMap]) -> bool:
    edges = {name: {r.table for r in t.references if r.table != name} for name, t in tables.items()}
    if any(r.table == name for name, t in tables.items() for r in t.references):
        return True
    done: set[str] = set()
    while True:
        free = [n for n in edges if n not in done and edges[n] <= done]
        if not free:
            return len(done) < len(edges)
        done.update(free)


def pg_map_from_connector(connector: Any) -> PgMap:
    """The map of a stored connector (validated when its catalogue was applied)."""
    parsed, problems = pg_map_parse(connector, "connector")
    if parsed is None:
        raise ValueError("; ".join(problems))
    return parsed
