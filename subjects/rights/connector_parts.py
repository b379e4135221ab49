"""The connected system behind a source, reached by a rights request's part for that source (API.md, "Connectors"):
the part reads the person's identifiers (decrypted, as the profile part does), asks the connector, and records what
the system returned or did. No transaction of Assent's is open while the external database is read or changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import OperationalError

from subjects import crypto, ports
from subjects.connectors.pgmap import POSTGRESQL, pg_map_from_connector
from subjects.connectors.pgrun import Hold, pg_access, pg_erase
from subjects.models import RightsRequestPart
from subjects.rights import calendar
from subjects.rights.context import SOURCE, PartContext
from subjects.selectors import subject_identifiers

CONNECTOR = "connector"  # in a source part's outcome: the connected system's erasure report
CONNECTOR_PLANNED = "connector_planned"  # in a source part's outcome until the report replaces it: the plan
RECOVERED = (
    "an earlier attempt erased the person's rows and stopped before its report was kept; this attempt found "
    "nothing of theirs left, and reports what the plan made just before said"
)
NO_HOLD = (
    "the connector's map keeps this table (erase: keep) and the catalogue declares no legal hold for this source: "
    "ask the system's owner why it must stay"
)


@contextmanager
def _transient() -> Iterator[None]:
    """The connected database away, or a lock there held too long: the part is given back and retried with
    backoff like any transient error (the external transaction rolled back; nothing was done)."""
    try:
        yield
    except psycopg.OperationalError as exc:
        raise OperationalError(f"the connected system's database: {type(exc).__name__}") from exc


class ConnectorsFirstError(OperationalError):
    """Transient on purpose: an erasure's profile part waits (is retried with backoff) while a part that reaches
    a connected system is still to run, because that part finds the person there by the identifiers the profile
    part deletes. With one worker the source parts run first anyway (they come first in the request)."""


def connectors_first(context: PartContext) -> None:
    """Raise ConnectorsFirstError while a connector part of this request is pending or running."""
    names = [SOURCE + key for key, facts in ports.consent_rights.catalogue().sources.items() if has_postgresql(facts)]
    waiting = (RightsRequestPart.Status.PENDING, RightsRequestPart.Status.RUNNING)
    if (
        names
        and RightsRequestPart.objects.filter(request_id=context.request.id, name__in=names, status__in=waiting)
        .exclude(pk=context.part_id)
        .exists()
    ):
        raise ConnectorsFirstError("a connected system's part of this erasure has not run yet")


def has_postgresql(facts: ports.SourceFacts | None) -> bool:
    return bool(facts and facts.connector and facts.connector.get("type") == POSTGRESQL)


def _identifiers(context: PartContext) -> list[tuple[str, str]]:
    subject = context.subject()
    if subject is None or subject.wrapped_key is None:
        return []
    return subject_identifiers(subject=subject, key=context.data_key())


def connector_hold(facts: ports.SourceFacts, now: datetime) -> Hold:
    """Why a kept table stays and until when: the source's longest legal hold, counted from today (the rows'
    own dates are the system's; the latest possible end is what the person is told)."""
    holds = [h for h in facts.holdings.values() if h.hold_years]
    if not holds:
        return Hold(why=NO_HOLD, until=None)
    longest = max(holds, key=lambda h: calendar.hold_until(now, years=h.hold_years or 0, start=h.hold_from))
    until = calendar.hold_until(now, years=longest.hold_years or 0, start=longest.hold_from)
    return Hold(why=longest.hold_law, until=until.isoformat())


def connector_access_lines(context: PartContext, facts: ports.SourceFacts) -> list[dict[str, Any]]:
    """The person's rows in the connected system, as export record lines (one data category per table)."""
    assert facts.connector is not None
    identifiers = _identifiers(context)
    if not identifiers:
        return []
    with _transient():
        tables = pg_access(pg_map_from_connector(facts.connector), identifiers)
    return [
        {
            "source": facts.key,
            "category": f"{facts.key}.{table}",
            "external_id": f"{table}:{index}",
            "occurred_at": "",
            "data": row,
        }
        for table, rows in tables.items()
        for index, row in enumerate(rows, 1)
    ]


def connector_erase(context: PartContext, facts: ports.SourceFacts, now: datetime) -> None:
    """Erase the person in the connected system (one transaction there), then record its report in the part's
    outcome. Runs once: a part resumed after the external commit finds the report and does not ask again.

    The external commit and the report's commit here are two transactions: a worker that dies between them left
    the rows erased there and no report here, and the retry finds nothing left to erase. So the plan (the same
    erasure, rolled back) is kept first; a retry that erases nothing reports what the plan said was erased."""
    if CONNECTOR in context.outcome:
        return
    identifiers = _identifiers(context)
    report: dict[str, Any] = {"erased": [], "kept": []}
    if identifiers:
        planned = context.outcome.get(CONNECTOR_PLANNED)
        if planned is None:
            planned = connector_erase_plan(facts, identifiers, now)
            with context.step() as outcome:
                outcome[CONNECTOR_PLANNED] = planned
        with _transient():
            report = pg_erase(
                pg_map_from_connector(facts.connector or {}),
                identifiers,
                hash_key=crypto.connector_hash_key(settings.ASSENT_BLIND_INDEX_KEY),
                hold=connector_hold(facts, now),
            )
        if not report["erased"] and not report["kept"] and (planned["erased"] or planned["kept"]):
            # Nothing of the person is found any more (the identifier columns were erased or pseudonymised).
            report = {**planned, "note": RECOVERED}
    with context.step() as outcome:
        outcome.pop(CONNECTOR_PLANNED, None)
        outcome[CONNECTOR] = report


def connector_erase_plan(facts: ports.SourceFacts, identifiers: list[tuple[str, str]], now: datetime) -> dict[str, Any]:
    """What connector_erase would do in the connected database now: the same erasure, rolled back there."""
    assert facts.connector is not None
    if not identifiers:
        return {"erased": [], "kept": []}
    with _transient():
        return pg_erase(
            pg_map_from_connector(facts.connector),
            identifiers,
            hash_key=crypto.connector_hash_key(settings.ASSENT_BLIND_INDEX_KEY),
            hold=connector_hold(facts, now),
            dry_run=True,
        )
