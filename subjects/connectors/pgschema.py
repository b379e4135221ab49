"""The live schema of a PostgreSQL connector's database, and the check of a map against it: every table, column,
key and reference the map names must exist with the types the connector relies on. Every problem is named, so an
operator fixes a map in one round. The connector runs a query only with names this check confirmed."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psycopg

from config.errors import UnavailableError
from subjects.connectors.pgmap import HASH, NULL, REDACT, PgMap, Reference

TEXT_TYPES = ("text", "character varying", "character", "citext")
HASH_LENGTH = 64  # HMAC-SHA256 in hex
REDACTED = "[erased]"


@dataclass(frozen=True, slots=True)
class Column:
    type: str  # format_type(): "integer", "character varying(200)", ...
    base: str  # the type without its modifier: "character varying"
    length: int | None  # of a character type, when limited
    not_null: bool


@dataclass
class Schema:
    """What the connector needs of the live database: the map's tables' columns, unique keys, foreign keys."""

    columns: dict[str, dict[str, Column]] = field(default_factory=dict)  # table -> column -> Column
    unique: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)  # table -> unique column sets (PK first)
    foreign: list[tuple[str, tuple[str, ...], str, tuple[str, ...]]] = field(default_factory=list)


class ConnectorUnavailableError(UnavailableError):
    """The DSN is not set: the external database cannot be reached. Names the variable, never its value."""

    code = "connector_unavailable"
    title = "The connected system cannot be reached"


def dsn_of(pg_map: PgMap) -> str | None:
    return os.environ.get(pg_map.dsn_env) or None


def pg_connect(pg_map: PgMap) -> psycopg.Connection:
    dsn = dsn_of(pg_map)
    if dsn is None:
        raise ConnectorUnavailableError(f"the environment variable {pg_map.dsn_env} is not set")
    # A connected system that hangs must not hold a rights part for ever: the part retries later instead.
    return psycopg.connect(dsn, connect_timeout=10, options="-c lock_timeout=10s -c statement_timeout=60s")


_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), format_type(a.atttypid, NULL),
       CASE WHEN a.atttypmod > 4 AND t.typcategory = 'S' THEN a.atttypmod - 4 END, a.attnotnull
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND c.relname = ANY(%s)
  AND a.attnum > 0 AND NOT a.attisdropped
"""
_UNIQUE = """
SELECT c.relname, i.indisprimary,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n ORDER BY k.o)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s) AND i.indisunique
  AND i.indpred IS NULL AND i.indexprs IS NULL
ORDER BY i.indisprimary DESC
"""
_FOREIGN = """
SELECT src.relname,
       ARRAY(SELECT a.attname FROM unnest(f.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n ORDER BY k.o),
       dst.relname,
       ARRAY(SELECT a.attname FROM unnest(f.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_constraint f JOIN pg_class src ON src.oid = f.conrelid JOIN pg_class dst ON dst.oid = f.confrelid
WHERE f.contype = 'f' AND dst.relnamespace = current_schema()::regnamespace AND dst.relname = ANY(%s)
"""


def schema_read(conn: psycopg.Connection, tables: list[str]) -> Schema:
    schema = Schema()
    with conn.cursor() as cur:
        for table, column, full, base, length, not_null in cur.execute(_COLUMNS, [tables]).fetchall():
            schema.columns.setdefault(table, {})[column] = Column(full, base, length, not_null)
        for table, _primary, columns in cur.execute(_UNIQUE, [tables]).fetchall():
            schema.unique.setdefault(table, []).append(tuple(columns))
        for src, columns, dst, targets in cur.execute(_FOREIGN, [tables]).fetchall():
            schema.foreign.append((src, tuple(columns), dst, tuple(targets)))
    return schema


def pg_map_check(pg_map: PgMap, schema: Schema, place: str = "connector") -> list[str]:
    """Every mismatch between the map and the live schema, each naming its place in the map; [] when it fits."""
    problems: list[str] = []
    for name, table in pg_map.tables.items():
        where = f"{place}.tables.{name}"
        columns = schema.columns.get(name)
        if columns is None:
            problems.append(f"{where}: no table '{name}' in the database (schema of the connection's search_path)")
            continue
        for column in sorted(table.columns() - set(columns)):
            problems.append(f"{where}: no column '{column}' in table '{name}'")
        if set(table.key) <= set(columns) and not any(set(u) == set(table.key) for u in schema.unique.get(name, [])):
            problems.append(f"{where}.key: ({', '.join(table.key)}) is neither the primary key nor unique in '{name}'")
        for kind, column in table.identifiers.items():
            if column in columns and columns[column].base not in TEXT_TYPES:
                problems.append(f"{where}.identifiers.{kind}: '{column}' is {columns[column].type}, not text")
        for ref in table.references:
            problems.extend(_reference_problems(f"{where}.references.{ref.column}", name, ref, schema))
        if isinstance(table.erase, dict):
            for column, strategy in table.erase.items():
                if column in columns:
                    problems.extend(_strategy_problems(f"{where}.erase.{column}", column, strategy, columns[column]))
                if strategy == REDACT and (column,) in schema.unique.get(name, []):
                    problems.append(
                        f"{where}.erase.{column}: '{column}' is unique, so a second person's redaction would collide; "
                        "hash it instead"
                    )
    problems.extend(_unmapped_foreign_keys(pg_map, schema, place))
    return problems


def _reference_problems(where: str, table: str, ref: Reference, schema: Schema) -> list[str]:
    source = schema.columns.get(table, {}).get(ref.column)
    referenced = schema.columns.get(ref.table, {}).get(ref.target)
    if referenced is None and ref.table in schema.columns:
        return [f"{where}: no column '{ref.target}' in '{ref.table}'"]
    if source is None or referenced is None:
        return []  # a missing table or referencing column is named once, above
    problems: list[str] = []
    if source.base != referenced.base:
        problems.append(
            f"{where}: '{table}.{ref.column}' is {source.type} but '{ref.table}.{ref.target}' is {referenced.type}; "
            "a reference joins equal types"
        )
    if (ref.target,) not in schema.unique.get(ref.table, []):
        problems.append(f"{where}: '{ref.table}.{ref.target}' is not unique, so a reference cannot name one row")
    return problems


def _strategy_problems(where: str, column: str, strategy: str, info: Column) -> list[str]:
    if strategy == NULL and info.not_null:
        return [f"{where}: '{column}' is NOT NULL and cannot be nulled"]
    if strategy in (HASH, REDACT) and info.base not in TEXT_TYPES:
        return [f"{where}: '{column}' is {info.type}; {strategy} writes text"]
    needed = HASH_LENGTH if strategy == HASH else len(REDACTED) if strategy == REDACT else 0
    if info.length is not None and info.length < needed:
        return [f"{where}: '{column}' holds {info.length} characters; {strategy} writes {needed}"]
    return []


def _unmapped_foreign_keys(pg_map: PgMap, schema: Schema, place: str) -> list[str]:
    """A live foreign key into a mapped table that the map does not follow: erasure could not delete the
    referenced row (or would miss the rows that point at it)."""
    problems: list[str] = []
    for src, columns, dst, targets in schema.foreign:
        mapped = pg_map.tables.get(src)
        declared = (
            mapped is not None
            and len(columns) == 1
            and any(r.column == columns[0] and r.table == dst and r.target == targets[0] for r in mapped.references)
        )
        if not declared:
            problems.append(
                f"{place}.tables.{src if mapped else dst}: the foreign key {src}({', '.join(columns)}) -> "
                f"{dst}({', '.join(targets)}) is not in the map's references"
            )
    return problems


def pg_map_check_live(pg_map: PgMap, place: str = "connector") -> list[str]:
    """The check against the database named by the DSN environment variable; [] when it is not set."""
    if dsn_of(pg_map) is None:
        return []
    try:
        with pg_connect(pg_map) as conn:
            schema = schema_read(conn, sorted(pg_map.tables))
    except psycopg.Error as exc:
        return [f"{place}.dsn_env: the database named by {pg_map.dsn_env} cannot be read ({type(exc).__name__})"]
    return pg_map_check(pg_map, schema, place)
