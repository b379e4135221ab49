"""The plan of an erasure, shown to the DPO before they approve it (Art. 17; issue 13, item 5): for Assent and for
every connected system, what will be deleted, what will be kept, where, why and until when.

Nothing here changes anything. Assent's side is counted from the rows the erasure would take, with the same hold
rule (erasure.record_hold) and the same evidence end date (the consent port). A PostgreSQL connector runs the
erasure in a transaction it rolls back; an HTTP connector is POSTed the erasure's body with `kind:
"erasure_plan"`, a kind a system that does not know it refuses instead of erasing anything, and answers with
the erasure's own shape (`{"erased", "kept"}`). A system that cannot be asked, or gives no plan, is shown with
the reason: it is still asked to erase when the erasure runs.

The plan is made for the page that shows it: its lines are in the language active then (the staff member's).
What a system itself says (its own lines, its reasons) stays as it said it."""

from __future__ import annotations

import contextlib
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from django.db import DatabaseError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from config.errors import DomainError
from subjects import ports
from subjects.models import Identifier, LinkedRecord, RightsExport, RightsRequest, Subject
from subjects.rights import calendar, texts
from subjects.rights.connector import (
    connector_body,
    connector_secret,
    erasure_result,
    http_connector,
    person_identifiers,
)
from subjects.rights.connector_parts import connector_erase_plan, has_postgresql
from subjects.rights.erasure import record_hold
from subjects.selectors import subject_group

ERASURE_PLAN = "erasure_plan"  # the kind an HTTP connector is asked a plan with
PLAN_TIMEOUT = 10.0  # seconds a system may take to answer a plan: the DPO waits for the page


@dataclass(frozen=True, slots=True)
class Kept:
    what: str
    count: int | None  # None: the system did not say
    where: str
    why: str
    until: str | None  # ISO date; None: no end date


@dataclass(slots=True)
class SystemPlan:
    name: str
    kind: str  # "assent", "postgresql" or "http"
    deleted: list[str] = field(default_factory=list)  # one line per kind of thing, with its count
    kept: list[Kept] = field(default_factory=list)
    problem: str = ""  # why no plan could be made (the erasure will ask the system all the same)


@dataclass(frozen=True, slots=True)
class ErasurePlan:
    made_at: datetime
    found: bool  # anybody matched
    systems: list[SystemPlan]


def erasure_plan(*, request: RightsRequest, now: datetime | None = None) -> ErasurePlan:
    """The plan for an erasure request as things stand now."""
    now = now or timezone.now()
    subject_ids = subject_group(request.subject_id)
    catalogue = ports.consent_rights.catalogue()
    if not subject_ids:
        return ErasurePlan(now, False, [])
    systems = [_assent_plan(subject_ids, catalogue, now)]
    identifiers = person_identifiers(subject_ids)
    for source in sorted(catalogue.sources):
        facts = catalogue.sources[source]
        if has_postgresql(facts):
            systems.append(_postgresql_plan(facts, identifiers, now))
        elif http_connector(catalogue, source) is not None:
            systems.append(_http_plan(request, subject_ids, facts, identifiers))
    return ErasurePlan(now, True, systems)


# ---------------------------------------------------------------------------------------------------------
# Assent's own tables
# ---------------------------------------------------------------------------------------------------------
def _assent_plan(subject_ids: list[Any], catalogue: ports.RightsCatalogue, now: datetime) -> SystemPlan:
    plan = SystemPlan("Assent", "assent")
    today = now.astimezone(calendar.BERLIN).date()
    deleted: Counter[str] = Counter()
    held: dict[tuple[str, str, str], list[date]] = defaultdict(list)
    for source, category, occurred_at in LinkedRecord.objects.filter(subject_id__in=subject_ids).values_list(
        "source", "category", "occurred_at"
    ):
        facts = catalogue.sources.get(source)
        name = facts.name if facts else source
        hold = record_hold(facts, category, occurred_at, today)
        what = _("%(source)s: %(category)s") % {"source": name, "category": _category(catalogue, category)}
        if hold is None:
            deleted[what] += 1
            continue
        law, ends = hold
        if facts and facts.system_of_record:
            where = _(texts.RETENTION_STORE)
        else:
            # Assent's copy goes; the source system is told to restrict until the end date instead of deleting.
            deleted[_("%(what)s (Assent's copy)") % {"what": what}] += 1
            where = _("%(source)s (the source system, told to restrict instead of deleting)") % {"source": name}
        held[(what, where, law)].append(ends)
    plan.deleted.extend(
        ngettext("%(count)s linked record of %(what)s", "%(count)s linked records of %(what)s", count)
        % {"count": count, "what": what}
        for what, count in sorted(deleted.items())
    )
    for (what, where, law), end_dates in sorted(held.items()):
        plan.kept.append(Kept(what, len(end_dates), where, law, max(end_dates).isoformat()))
    kinds = Counter(Identifier.objects.filter(subject_id__in=subject_ids).values_list("kind", flat=True))
    if kinds:
        listed = ", ".join(f"{count} {_identifier_kind(kind)}" for kind, count in sorted(kinds.items()))
        plan.deleted.append(
            _("identifiers (%(listed)s); their keyed hashes go to the suppression list") % {"listed": listed}
        )
        plan.kept.append(
            Kept(
                _("keyed hashes of the identifiers (suppression list)"),
                sum(kinds.values()),
                _("Assent's suppression list"),
                _("a later marketing consent for these identifiers from anyone but the person waits for the person"),
                None,
            )
        )
    if Subject.objects.filter(pk__in=subject_ids, profile_enc__isnull=False).exists():
        plan.deleted.append(_("the profile"))
    consent = ports.consent_rights.consent_erase_plan(subject_ids=subject_ids)
    counted = (
        (consent["states"], ngettext("%(count)s consent state", "%(count)s consent states", consent["states"])),
        (
            consent["read_logs"],
            ngettext("%(count)s profile-read log entry", "%(count)s profile-read log entries", consent["read_logs"]),
        ),
        (
            consent["sends"],
            ngettext(
                "the person's name on %(count)s send-log entry",
                "the person's name on %(count)s send-log entries",
                consent["sends"],
            ),
        ),
    )
    plan.deleted.extend(line % {"count": count} for count, line in counted if count)
    exports = RightsExport.objects.filter(subject_id__in=subject_ids).count()
    if exports:
        plan.deleted.append(
            ngettext("%(count)s access export", "%(count)s access exports", exports) % {"count": exports}
        )
    if consent["events"]:
        plan.kept.append(
            Kept(
                _("consent events (proof)"),
                consent["events"],
                _(texts.EVIDENCE_STORE),
                _(texts.EVIDENCE_WHY),
                consent["keep_until"],
            )
        )
    plan.deleted.append(_("the person's data key (whatever copy of their data survives anywhere becomes unreadable)"))
    return plan


def _identifier_kind(kind: str) -> str:
    """An identifier's kind as the staff member reads it (e-mail address, phone number ...); the key if unknown."""
    return _(texts.IDENTIFIER_NAMES["en"].get(kind, kind))


def _category(catalogue: ports.RightsCatalogue, key: str) -> str:
    return catalogue.categories.get(key, key)


# ---------------------------------------------------------------------------------------------------------
# Connected systems
# ---------------------------------------------------------------------------------------------------------
def _system_plan(name: str, kind: str, answer: dict[str, Any]) -> SystemPlan:
    plan = SystemPlan(name, kind, deleted=[_line(item) for item in answer.get("erased", [])])
    plan.kept.extend(
        Kept(
            str(item.get("what") or ""),
            None,
            _("%(name)s (connected system)") % {"name": name},
            str(item.get("why") or ""),
            item.get("until"),
        )
        for item in answer.get("kept", [])
    )
    return plan


def _line(item: Any) -> str:
    """An erased item as a line: the PostgreSQL connector says what and how, an HTTP system says it in words."""
    if isinstance(item, dict):
        return f"{item.get('what', '')} ({item.get('how', '')})"
    return str(item)


def _postgresql_plan(facts: ports.SourceFacts, identifiers: dict[str, list[str]], now: datetime) -> SystemPlan:
    pairs = [(kind, value) for kind, values in identifiers.items() for value in values]
    try:
        answer = connector_erase_plan(facts, pairs, now)
    except (DatabaseError, psycopg.Error, DomainError) as exc:
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        return SystemPlan(
            facts.name, "postgresql", problem=(_("the dry run failed: %(detail)s") % {"detail": detail})[:300]
        )
    return _system_plan(facts.name, "postgresql", answer)


def _http_plan(
    request: RightsRequest, subject_ids: list[Any], facts: ports.SourceFacts, identifiers: dict[str, list[str]]
) -> SystemPlan:
    connector = facts.connector or {}
    body = connector_body(request, subject_ids, facts.key, identifiers, kind=ERASURE_PLAN)
    records = len(body["records"])
    asked = ngettext(
        "it will be asked to erase the person (%(count)s linked record named)",
        "it will be asked to erase the person (%(count)s linked records named)",
        records,
    ) % {"count": records}
    try:
        answer = ports.connector_transport.post(
            url=str(connector["url"]),
            secret=connector_secret(connector),
            msg_id=f"plan_{request.pk}_{int(timezone.now().timestamp())}",
            body=json.dumps(body, separators=(",", ":")).encode(),
            timeout=PLAN_TIMEOUT,
        )
    except DomainError as exc:
        return SystemPlan(
            facts.name, "http", problem=_("%(detail)s; %(asked)s") % {"detail": exc.detail, "asked": asked}
        )
    payload: Any = None
    if answer.status == 200:
        with contextlib.suppress(ValueError):
            payload = json.loads(answer.body)
    if not isinstance(payload, dict):
        said = answer.error or (f"HTTP {answer.status}" if answer.status else _("no answer"))
        problem = _("the system gave no plan (%(said)s); %(asked)s") % {"said": said, "asked": asked}
        return SystemPlan(facts.name, "http", problem=problem)
    try:
        return _system_plan(facts.name, "http", erasure_result(facts.key, payload))
    except DomainError as exc:
        problem = _("the system's plan is malformed (%(detail)s); %(asked)s") % {"detail": exc.detail, "asked": asked}
        return SystemPlan(facts.name, "http", problem=problem)
