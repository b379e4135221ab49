"""Erasure through the PostgreSQL connector (issue 13): a person with about 1,000 rows across the shop schema
(tests/subjects/connectors/shop.py), among `--others` customers with ten rows each, erased in one transaction on
the shop's own database (created afresh and dropped after). Target: under 2 s per erasure.

    python -m tests.benchmarks.pgconn_bench [--rounds 3] [--others 2000]

Also times the access (the same rows found and returned) and the dry run (the plan shown before approval)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import django

from tests.benchmarks import environment as envmod

TARGET_SECONDS = 2.0


def _setup() -> None:
    os.environ.update(envmod.django_env("assent_pgconn_bench_unused", envmod.new_keys()))
    django.setup()


def _person(conn: Any, email: str) -> int:
    """About 1,000 rows: the customer and an address, 100 orders of 4 lines with their invoices, 20 cards,
    200 logins, 50 tickets, 130 visits, one sign-up."""
    from tests.subjects.connectors.shop import add_customer

    with conn.transaction():
        add_customer(
            conn, email=email, name="Bench Person", orders=100, lines=4, cards=20, logins=200, tickets=50, visits=130
        )
    rows = 1 + 1 + 100 * (1 + 4 + 1) + 20 + 200 + 50 + 130 + 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--others", type=int, default=2000)
    args = parser.parse_args()
    _setup()
    import psycopg

    from subjects.connectors.pgmap import pg_map_from_connector
    from subjects.connectors.pgrun import Hold, pg_access, pg_erase
    from tests.subjects.connectors.shop import DSN_ENV, add_customer, shop_connector, shop_database

    pg_map = pg_map_from_connector(shop_connector())
    hold = Hold(why="§147 AO", until="2036-12-31")
    results: dict[str, Any] = {"rounds": []}
    with shop_database(f"assent_pgconn_bench_{os.getpid()}") as dsn:
        os.environ[DSN_ENV] = dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            with conn.transaction():
                for n in range(args.others):
                    add_customer(conn, email=f"other{n}@example.org", name=f"Other {n}")
            conn.execute("ANALYZE")
            for round_no in range(args.rounds):
                email = f"bench{round_no}@example.de"
                rows = _person(conn, email)
                identifiers = [("email", email)]
                start = time.perf_counter()
                found = pg_access(pg_map, identifiers)
                access = time.perf_counter() - start
                start = time.perf_counter()
                pg_erase(pg_map, identifiers, hash_key=b"k" * 32, hold=hold, dry_run=True)
                dry = time.perf_counter() - start
                start = time.perf_counter()
                report = pg_erase(pg_map, identifiers, hash_key=b"k" * 32, hold=hold)
                erase = time.perf_counter() - start
                results["rounds"].append(
                    {
                        "rows": rows,
                        "found": sum(len(v) for v in found.values()),
                        "access_s": access,
                        "dry_run_s": dry,
                        "erase_s": erase,
                        "erased": report["erased"],
                    }
                )
                envmod.log(
                    f"round {round_no}: {rows} rows, access {access:.3f} s, dry run {dry:.3f} s, erasure {erase:.3f} s"
                )
    erase_median = statistics.median(r["erase_s"] for r in results["rounds"])
    print(f"PostgreSQL connector, person with ~{results['rounds'][0]['rows']} rows among {args.others} customers:")
    print(f"  access   median {statistics.median(r['access_s'] for r in results['rounds']):.3f} s")
    print(f"  dry run  median {statistics.median(r['dry_run_s'] for r in results['rounds']):.3f} s")
    print(
        f"  erasure  median {erase_median:.3f} s, max {max(r['erase_s'] for r in results['rounds']):.3f} s "
        f"(target < {TARGET_SECONDS} s, ratio {erase_median / TARGET_SECONDS:.2f})"
    )
    out = envmod.VAR / "pgconn.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
