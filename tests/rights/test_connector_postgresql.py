"""Rights requests that reach into a connected PostgreSQL database (API.md, "Connectors"): the source's part of an
access request exports the person's rows of the shop's own database, and the source's part of an erasure erases
them there, reported with what the shop keeps and why."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.utils import timezone

from subjects import crypto, ports
from subjects.connectors.pgmap import pg_map_from_connector
from subjects.connectors.pgrun import pg_erase
from subjects.models import RightsRequestPart
from subjects.rights.connector_parts import (
    CONNECTOR_PLANNED,
    RECOVERED,
    ConnectorsFirstError,
    connector_erase_plan,
    connector_hold,
)
from subjects.rights.registry import handler_for
from subjects.rights.workflow import part_run
from tests.api import Api
from tests.factories import apply_catalogue
from tests.integration.conftest import Worker
from tests.rights.helpers import drain, seed_person, wait_settled
from tests.rights.test_access import download, run
from tests.rights.test_erasure import REQUESTS, erase
from tests.rights.test_worker import open_request
from tests.subjects.connectors.shop import (
    DSN_ENV,
    HOLD_LAW,
    add_customer,
    dump,
    shop_connector,
    shop_database,
    shop_database_name,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_dsn(rights_catalogue: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The rights catalogue with the shop's database as a source with a connector."""
    with shop_database(shop_database_name("rights")) as dsn:
        monkeypatch.setenv(DSN_ENV, dsn)
        document = copy.deepcopy(rights_catalogue)
        document["sources"].append(
            {
                "key": "shopdb",
                "name": "Shop database",
                "system_of_record": False,
                "categories": {
                    "orders": {
                        "delete_after_days": 3650,
                        "legal_hold": {"years": 10, "from": "end_of_year", "law": HOLD_LAW},
                    }
                },
                "connector": shop_connector(),
            }
        )
        apply_catalogue(document)
        yield dsn


def _customers(dsn: str, *emails: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for email in emails:
            add_customer(conn, email=email, name=f"Name of {email}", orders=2)


def test_an_access_export_holds_the_persons_rows_of_the_shop_database(rapi: Api, shop_dsn: str) -> None:
    person = seed_person("pgacc1", records_per_source=1)
    _customers(shop_dsn, person.email, "someone.else@example.de")

    result = run(rapi, "access", {"email": person.email})["result"]

    data = json.loads(download(rapi, result["export_url"]).read("data.json"))
    rows = [r for r in data["records"] if r["source"] == "shopdb"]
    tables = {r["category"].removeprefix("shopdb.") for r in rows}
    assert tables == {
        "customer", "address", "orders", "order_line", "invoice", "payment_card", "login", "support_ticket",
        "visit_log", "newsletter_signup",
    }  # fmt: skip
    customers = [r["data"] for r in rows if r["category"] == "shopdb.customer"]
    assert [c["email"] for c in customers] == [person.email]
    assert "someone.else" not in json.dumps(rows)


def test_an_erasure_reaches_the_shop_database_and_reports_what_it_keeps(rapi: Api, shop_dsn: str) -> None:
    person = seed_person("pgera1", records_per_source=1)
    _customers(shop_dsn, person.email, "someone.else@example.de")
    before = dump(shop_dsn)

    request_id = erase(rapi, {"email": person.email})

    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "completed", body
    shop = next(s for s in body["result"]["sources"] if s["source"] == "shopdb")
    assert {"what": "payment_card: 1 row", "how": "deleted"} in shop["system"]["erased"]
    kept = [k for k in body["result"]["kept"] if k["source"] == "shopdb"]
    assert [(k["what"], k["why"]) for k in kept] == [("invoice: 2 rows", HOLD_LAW)]
    assert kept[0]["until"]
    after = dump(shop_dsn)
    assert "pgera1" not in json.dumps(after)
    # The other customer's rows that name them are unchanged (the connector's own tests compare every row).
    others = {t: {k: v for k, v in rows.items() if "someone.else" in v} for t, rows in before.items()}
    assert sum(len(rows) for rows in others.values()) >= 4
    assert {t: {k: after[t].get(k) for k in rows} for t, rows in others.items()} == others


def test_the_shop_database_is_listed_among_the_recipients_told_of_the_erasure(rapi: Api, shop_dsn: str) -> None:
    # Art. 19: a connected system is told by its connector; the report says when, and when it was done there.
    person = seed_person("pgera19", records_per_source=1)
    _customers(shop_dsn, person.email)

    request_id = erase(rapi, {"email": person.email})

    notices = rapi.get(f"{REQUESTS}/{request_id}").json()["result"]["notices"]
    (shop,) = [n for n in notices["told"] if n["recipient"] == "Shop database"]
    assert shop["event"] == "erasure (connector)"
    assert shop["status"] == "done"
    assert shop["told_at"] is not None
    assert shop["acknowledged_at"] is not None
    assert shop["told_at"] <= shop["acknowledged_at"]


def test_a_restriction_names_the_shop_database_as_a_system_for_the_dpo_to_tell(rapi: Api, shop_dsn: str) -> None:
    person = seed_person("pgres19", records_per_source=1)

    body = rapi.post(
        REQUESTS,
        {
            "kind": "restriction",
            "subject": {"email": person.email},
            "channel": "portal",
            "verified": True,
            "details": {"ground": "18(1)(a)"},
        },
    ).json()
    drain(body["id"])
    result = rapi.get(f"{REQUESTS}/{body['id']}").json()["result"]

    untold = [n for n in result["notices"]["not_told"] if n["recipient"] == "Shop database"]
    assert len(untold) == 1
    assert "tell the system's owner" in untold[0]["why"]
    assert result["notices"]["unacknowledged"] >= 1


def test_a_worker_that_died_after_the_shops_commit_leaves_a_report_all_the_same(rapi: Api, shop_dsn: str) -> None:
    # The shop's transaction and the part's report commit apart. A worker kept the plan, erased in the shop and
    # died before its report was kept: the next attempt finds nothing left and reports what the plan said.
    person = seed_person("pgera4", records_per_source=1)
    _customers(shop_dsn, person.email)
    request_id = erase(rapi, {"email": person.email}, run=False)
    part = RightsRequestPart.objects.get(request_id=request_id, name="source:shopdb")
    facts = ports.consent_rights.catalogue().sources["shopdb"]
    identifiers = [("email", person.email)]
    planned = connector_erase_plan(facts, identifiers, timezone.now())
    RightsRequestPart.objects.filter(pk=part.pk).update(outcome={CONNECTOR_PLANNED: planned})
    done_by_the_dead_worker = pg_erase(
        pg_map_from_connector(facts.connector or {}),
        identifiers,
        hash_key=crypto.connector_hash_key(settings.ASSENT_BLIND_INDEX_KEY),
        hold=connector_hold(facts, timezone.now()),
    )
    assert "pgera4" not in json.dumps(dump(shop_dsn))

    drain(request_id)

    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "completed", body
    shop = next(s for s in body["result"]["sources"] if s["source"] == "shopdb")
    assert shop["system"]["erased"] == done_by_the_dead_worker["erased"]
    assert shop["system"]["note"] == RECOVERED
    assert [k["what"] for k in shop["system"]["kept"]] == ["invoice: 2 rows"]


def test_an_erasure_fails_visibly_when_the_map_no_longer_fits_the_shop_database(rapi: Api, shop_dsn: str) -> None:
    person = seed_person("pgera2", records_per_source=1)
    _customers(shop_dsn, person.email)
    with psycopg.connect(shop_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE visit_log RENAME COLUMN email TO mail")
    before = dump_rows(shop_dsn)

    request_id = erase(rapi, {"email": person.email})

    body = rapi.get(f"{REQUESTS}/{request_id}").json()
    assert body["status"] == "failed"
    [error] = [e for e in body["result"]["errors"] if e["part"] == "source:shopdb"]
    assert error["error"].startswith("connector_map_mismatch: ")
    assert "no column 'email' in table 'visit_log'" in error["error"]
    assert dump_rows(shop_dsn) == before  # nothing of the shop's was changed


def dump_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT email, name FROM customer ORDER BY id").fetchall()


def test_the_profile_part_waits_for_the_connector_part_which_needs_the_identifiers(rapi: Api, shop_dsn: str) -> None:
    """Two workers could take an erasure's parts in any order: the profile part (which deletes the identifiers) is
    given back while the shop's part has not run, so the shop's part still finds the person."""
    person = seed_person("pgera3", records_per_source=1)
    _customers(shop_dsn, person.email)
    request_id = erase(rapi, {"email": person.email}, run=False)
    profile = RightsRequestPart.objects.get(request_id=request_id, name="profile")

    with pytest.raises(ConnectorsFirstError):
        part_run(part_id=profile.pk, handlers=handler_for, steal=False)

    assert RightsRequestPart.objects.get(pk=profile.pk).status == RightsRequestPart.Status.PENDING
    drain(request_id)
    assert rapi.get(f"{REQUESTS}/{request_id}").json()["status"] == "completed"
    assert "pgera3" not in json.dumps(dump(shop_dsn))


@pytest.mark.worker
def test_access_and_erasure_reach_the_shop_database_on_a_real_worker(
    shop_dsn: str, rights_worker: Worker, rapi: Api
) -> None:
    """The worker process is started after the shop's DSN is in the environment, as an operator would start it."""
    person = seed_person("pgwk1", records_per_source=1)
    _customers(shop_dsn, person.email, "someone.else@example.de")

    access = wait_settled(rapi, open_request(rapi, "access", {"email": person.email}))

    assert access["status"] == "completed", access
    records = json.loads(download(rapi, access["result"]["export_url"]).read("data.json"))["records"]
    assert any(r["category"] == "shopdb.customer" and r["data"]["email"] == person.email for r in records)

    erasure = wait_settled(rapi, open_request(rapi, "erasure", {"email": person.email}))

    assert erasure["status"] == "completed", erasure
    after = json.dumps(dump(shop_dsn))
    assert "pgwk1" not in after
    assert "someone.else@example.de" in after
