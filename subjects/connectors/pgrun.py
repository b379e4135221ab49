"""Access and erasure through a PostgreSQL connector (API.md, "Connectors").

A row is the person's when an identifier column holds one of the person's identifiers, when it references a row of
the person's, or when a row of the person's references it and no row outside the person's does (a row shared with
another person, like an address two customers use, is not the person's: it stays, and erasure says why). The rows
are found by following the map from the identifier columns through its references in both directions until nothing
new is found. Erasure then applies each table's strategy to the person's rows in one transaction, children before
parents; a row still referenced by a row that stays (kept, or only pseudonymised) is not deleted, and the report
says so. Every query is composed with psycopg.sql from names the live schema confirmed just before (pg_map_check):
the connector refuses a map that no longer fits."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from config.errors import ConflictError
from subjects.connectors.pgmap import DELETE, HASH, KEEP, NULL, PgMap, Reference, TableMap
from subjects.connectors.pgschema import REDACTED, Schema, pg_connect, pg_map_check, schema_read

Key = tuple[Any, ...]
Row = dict[str, Any]
EMAIL = "email"


class MapMismatchError(ConflictError):
    """The live schema no longer fits the map: nothing is read or changed. The problems name tables and columns
    only, so the part's error shows them to the DPO."""

    code = "connector_map_mismatch"
    title = "The connector's map does not fit the connected database"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"the connector's map does not fit the database: {'; '.join(problems)}")
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Hold:
    """Why and until when a table whose map says `keep` stays (the catalogue's legal hold, or a plain reason)."""

    why: str
    until: str | None


@dataclass
class Found:
    rows: dict[str, dict[Key, Row]] = field(default_factory=dict)  # table -> key -> row: the person's
    shared: dict[str, dict[Key, set[str]]] = field(default_factory=dict)  # table -> key -> tables of others' rows


# ---------------------------------------------------------------------------------------------------------
# Finding the person's rows
# ---------------------------------------------------------------------------------------------------------
def _key(table: TableMap, row: Row) -> Key:
    return tuple(row[c] for c in table.key)


def _select(table: TableMap, column: str, *, lower: bool = False, lock: bool = False) -> sql.Composed:
    target: sql.Composable = sql.Identifier(column)
    if lower:
        target = sql.SQL("lower({})").format(target)
    query = sql.SQL("SELECT * FROM {} WHERE {} = ANY(%s)").format(sql.Identifier(table.name), target)
    return query + sql.SQL(" FOR UPDATE") if lock else query


def _values(rows: Iterable[Row], column: str) -> set[Any]:
    return {row[column] for row in rows if row[column] is not None}


class _Finder:
    def __init__(self, conn: psycopg.Connection, pg_map: PgMap, *, lock: bool) -> None:
        self.conn, self.map, self.lock = conn, pg_map, lock
        self.found = Found(rows={name: {} for name in pg_map.tables})
        self._asked: dict[tuple[str, str], set[Any]] = {}  # (table, column) -> values already looked up

    def _fetch(self, table: TableMap, column: str, values: set[Any], *, lower: bool = False) -> list[Row]:
        asked = self._asked.setdefault((table.name, column), set())
        new = values - asked
        if not new:
            return []
        asked.update(new)
        with self.conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(_select(table, column, lower=lower, lock=self.lock), [sorted(new, key=str)]).fetchall()

    def _add(self, table: TableMap, rows: Iterable[Row]) -> bool:
        mine = self.found.rows[table.name]
        added = False
        for row in rows:
            key = _key(table, row)
            if key not in mine:
                mine[key] = row
                self.found.shared.get(table.name, {}).pop(key, None)
                added = True
        return added

    def seed(self, identifiers: Sequence[tuple[str, str]]) -> None:
        for table in self.map.tables.values():
            for kind, column in table.identifiers.items():
                values = {v.lower() if kind == EMAIL else v for k, v in identifiers if k == kind}
                self._add(table, self._fetch(table, column, values, lower=kind == EMAIL))

    def down(self) -> bool:
        """Rows that reference a row of the person's."""
        added = False
        for table in self.map.tables.values():
            for ref in table.references:
                values = _values(self.found.rows[ref.table].values(), ref.target)
                added |= self._add(table, self._fetch(table, ref.column, values))
        return added

    def up(self) -> bool:
        """Rows a row of the person's references, which no row outside the person's references."""
        added = False
        for table in self.map.tables.values():
            for ref in table.references:
                parent = self.map.tables[ref.table]
                wanted = _values(self.found.rows[table.name].values(), ref.column)
                known = _values(self.found.rows[parent.name].values(), ref.target)
                wanted -= known
                if not wanted:
                    continue
                with self.conn.cursor(row_factory=dict_row) as cur:
                    candidates = cur.execute(_select(parent, ref.target, lock=self.lock), [sorted(wanted, key=str)])
                    rows = candidates.fetchall()
                outside = self._referenced_from_outside(parent, rows)
                shared = self.found.shared.setdefault(parent.name, {})
                for row in rows:
                    key = _key(parent, row)
                    if outside.get(key):
                        shared[key] = outside[key]
                    else:
                        added |= self._add(parent, [row])
        return added

    def _referenced_from_outside(self, parent: TableMap, rows: list[Row]) -> dict[Key, set[str]]:
        """For each candidate row, the tables whose rows outside the person's reference it."""
        outside: dict[Key, set[str]] = {}
        for child, ref in self.map.referrers(parent.name):
            by_value: dict[Any, list[Key]] = {}
            for row in rows:
                if row[ref.target] is not None:
                    by_value.setdefault(row[ref.target], []).append(_key(parent, row))
            if not by_value:
                continue
            query = sql.SQL("SELECT {}, {} FROM {} WHERE {} = ANY(%s)").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in child.key),
                sql.Identifier(ref.column),
                sql.Identifier(child.name),
                sql.Identifier(ref.column),
            )
            mine = self.found.rows[child.name]
            with self.conn.cursor() as cur:
                for *key, value in cur.execute(query, [sorted(by_value, key=str)]).fetchall():
                    if tuple(key) not in mine:
                        for parent_key in by_value[value]:
                            outside.setdefault(parent_key, set()).add(child.name)
        return outside

    def run(self, identifiers: Sequence[tuple[str, str]]) -> Found:
        self.seed(identifiers)
        while self.down() | self.up():
            pass
        return self.found


def _checked(conn: psycopg.Connection, pg_map: PgMap) -> Schema:
    schema = schema_read(conn, sorted(pg_map.tables))
    problems = pg_map_check(pg_map, schema)
    if problems:
        raise MapMismatchError(problems)
    return schema


def pg_find(conn: psycopg.Connection, pg_map: PgMap, identifiers: Sequence[tuple[str, str]], *, lock: bool) -> Found:
    _checked(conn, pg_map)
    return _Finder(conn, pg_map, lock=lock).run(identifiers)


# ---------------------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A column's value as JSON holds it: times in ISO 8601, bytes in base64, every other type (numeric, uuid,
    inet, interval, ...) as PostgreSQL's text would read."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)


def pg_access(pg_map: PgMap, identifiers: Sequence[tuple[str, str]]) -> dict[str, list[Row]]:
    """Every row of the person's, JSON-ready, grouped by table (tables without any are left out), in key order."""
    with pg_connect(pg_map) as conn:
        conn.read_only = True
        found = pg_find(conn, pg_map, identifiers, lock=False)
        conn.rollback()
    return {
        table: [{k: jsonable(v) for k, v in rows[key].items()} for key in sorted(rows, key=str)]
        for table, rows in sorted(found.rows.items())
        if rows
    }


# ---------------------------------------------------------------------------------------------------------
# Erasure
# ---------------------------------------------------------------------------------------------------------
def _keyed(table: TableMap, statement: sql.Composable) -> sql.Composed:
    """`statement WHERE k1 = %s AND k2 = %s`: one row by its (possibly composite) key."""
    where = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in table.key)
    return sql.Composed([statement, sql.SQL(" WHERE "), where])


def _what(table: str, count: int) -> str:
    return f"{table}: {count} row{'s' if count != 1 else ''}"


@dataclass
class _Eraser:
    conn: psycopg.Connection
    pg_map: PgMap
    found: Found
    hash_key: bytes
    hold: Hold
    erased: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    # The person's rows that stay (kept, pseudonymised or blocked), and which of their references are cut.
    staying: dict[str, list[Row]] = field(default_factory=dict)
    cut: dict[str, set[str]] = field(default_factory=dict)

    def run(self) -> None:
        for name in self.pg_map.children_first():
            table = self.pg_map.tables[name]
            rows = list(self.found.rows[name].values())
            if rows:
                self._table(table, rows)
            for tables in self.found.shared.get(name, {}).values():
                self.kept.append(
                    {
                        "what": _what(name, 1),
                        "why": f"shared: also referenced by rows of {', '.join(sorted(tables))} that are not the "
                        "person's; it stays unchanged",
                        "until": None,
                    }
                )

    def _table(self, table: TableMap, rows: list[Row]) -> None:
        if table.erase == KEEP:
            self.staying[table.name] = rows
            self.kept.append({"what": _what(table.name, len(rows)), "why": self.hold.why, "until": self.hold.until})
        elif table.erase == DELETE:
            self._delete(table, rows)
        else:
            assert isinstance(table.erase, dict)
            self._pseudonymise(table, table.erase, rows)

    def _blocked(self, table: TableMap, rows: list[Row]) -> dict[Key, set[str]]:
        """The rows still referenced by a row of the person's that stays (deleting them would break its key)."""
        blocked: dict[Key, set[str]] = {}
        for child, ref in self.pg_map.referrers(table.name):
            if ref.column in self.cut.get(child.name, set()):
                continue
            used = _values(self.staying.get(child.name, []), ref.column)
            for row in rows:
                if row[ref.target] in used:
                    blocked.setdefault(_key(table, row), set()).add(child.name)
        return blocked

    def _delete(self, table: TableMap, rows: list[Row]) -> None:
        blocked = self._blocked(table, rows)
        gone = [row for row in rows if _key(table, row) not in blocked]
        with self.conn.cursor() as cur:
            cur.executemany(
                _keyed(table, sql.SQL("DELETE FROM {}").format(sql.Identifier(table.name))),
                [_key(table, row) for row in gone],
            )
        if gone:
            self.erased.append({"what": _what(table.name, len(gone)), "how": "deleted"})
        if blocked:
            self.staying[table.name] = [row for row in rows if _key(table, row) in blocked]
            referrers = sorted({t for tables in blocked.values() for t in tables})
            self.kept.append(
                {
                    "what": _what(table.name, len(blocked)),
                    "why": f"still referenced by the person's rows of {', '.join(referrers)}, which stay: deleting "
                    "would break their foreign key",
                    "until": self.hold.until if any(self.pg_map.tables[t].erase == KEEP for t in referrers) else None,
                }
            )

    def _pseudonymise(self, table: TableMap, strategies: dict[str, str], rows: list[Row]) -> None:
        columns = sorted(strategies)
        statement = sql.SQL("UPDATE {} SET {}").format(
            sql.Identifier(table.name),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in columns),
        )
        params = [[*(self._value(strategies[c], row[c]) for c in columns), *_key(table, row)] for row in rows]
        with self.conn.cursor() as cur:
            cur.executemany(_keyed(table, statement), params)
        self.staying[table.name] = rows
        self.cut[table.name] = {c for c in columns if strategies[c] == NULL}
        how = ", ".join(f"{c} {_PAST[strategies[c]]}" for c in columns)
        self.erased.append({"what": _what(table.name, len(rows)), "how": how})

    def _value(self, strategy: str, value: Any) -> str | None:
        if strategy == NULL or value is None:
            return None
        if strategy == HASH:
            return hmac.new(self.hash_key, str(value).encode(), "sha256").hexdigest()
        return REDACTED


_PAST = {NULL: "nulled", HASH: "hashed", "redact": "redacted"}


def pg_erase(
    pg_map: PgMap, identifiers: Sequence[tuple[str, str]], *, hash_key: bytes, hold: Hold, dry_run: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Erase the person's rows in one transaction on the external database (children before parents, each table's
    strategy); `dry_run` plans the same and rolls back. Returns {"erased": [...], "kept": [{what, why, until}]}."""
    with pg_connect(pg_map) as conn, conn.transaction(force_rollback=dry_run):
        found = pg_find(conn, pg_map, identifiers, lock=True)
        eraser = _Eraser(conn, pg_map, found, hash_key, hold)
        eraser.run()
    return {"erased": eraser.erased, "kept": eraser.kept}


__all__ = ["Found", "Hold", "MapMismatchError", "Reference", "pg_access", "pg_erase", "pg_find"]
