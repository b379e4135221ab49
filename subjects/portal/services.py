"""What the portal changes, each change through the one service that owns it: consent events through
`consent.services` (source `portal`, the person's own act), rights requests through `subjects.rights.requests`
(verified by the sign-in, Art. 12(6))."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language

from consent.ledger.recording import ConsentCommand
from consent.services import consent_object_direct_marketing, consent_record
from subjects.identity import Reference
from subjects.keys import blind_index
from subjects.locks import lock_identifiers
from subjects.models import RightsRequest
from subjects.portal.selectors import Preferences
from subjects.portal.session import Person
from subjects.rights.details import details_parse
from subjects.rights.requests import Actor, request_open
from subjects.selectors import subject_resolve
from subjects.services import subject_create

SOURCE = "portal"
# Art. 12(6): who verified the identity. The person proved control of the address by the e-mailed sign-in link.
VERIFIER = Actor(label="portal:email-link")

GRANT, WITHDRAW, OBJECT, OBJECT_ALL = "grant", "withdraw", "object", "object_all"


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # GRANT, WITHDRAW, OBJECT (one legitimate-interest purpose), OBJECT_ALL (all direct marketing)
    purpose: str = ""
    channel: str | None = None
    notice_version: str | None = None


@dataclass(frozen=True, slots=True)
class Wanted:
    """What the person's form asks for."""

    consents: frozenset[tuple[str, str]]  # (purpose, channel) switched on
    notices: dict[str, str]  # purpose -> the notice version the page showed
    objections: frozenset[str]  # legitimate-interest purposes objected to
    no_marketing: bool


def preferences_changes(*, current: Preferences, wanted: Wanted) -> list[Change]:
    """The changes between what the page showed and what the person wants: one per switch that moved. A form
    posted twice asks for nothing the second time."""
    changes: list[Change] = []
    for purpose in current.consent:
        for channel in purpose.channels:
            want = (purpose.key, channel.key) in wanted.consents
            if want and not channel.on:
                version = wanted.notices.get(purpose.key) or purpose.notice_version
                changes.append(Change(GRANT, purpose.key, channel.key, version))
            elif not want and channel.on:
                changes.append(Change(WITHDRAW, purpose.key, channel.key))
    for purpose in current.legitimate_interest:
        covered = purpose.objected_since is not None or (purpose.marketing and current.no_marketing_since is not None)
        if purpose.key in wanted.objections and not covered:
            changes.append(Change(OBJECT, purpose.key))
    if wanted.no_marketing and current.no_marketing_since is None:
        changes.append(Change(OBJECT_ALL))
    return changes


@dataclass(frozen=True, slots=True)
class Saved:
    subject_id: uuid.UUID | None
    recorded: int
    states: dict[tuple[str, str], str]  # (purpose, channel) -> the state a grant or withdrawal left


def preferences_save(*, person: Person, changes: list[Change], evidence: dict[str, Any]) -> Saved:
    """Record each change as its own event, source `portal`, actor the person, with the click's evidence (time,
    truncated IP, user agent). The first change of a person nobody knew creates their subject under the address
    they signed in with (consent_record creates one when nothing resolves)."""
    subject_id = person.subject_id
    states: dict[tuple[str, str], str] = {}
    recorded = 0
    for change in changes:
        if change.action == OBJECT_ALL:
            # Art. 21(2)-(3): absolute, every marketing purpose on every channel.
            if subject_id is None:
                subject_id = subject_for_address(email=person.email)
            result = consent_object_direct_marketing(subject_id=subject_id, source=SOURCE, evidence=evidence)
            recorded += result.event_id is not None
            continue
        done = consent_record(
            command=ConsentCommand(
                # The address goes with every write: a double opt-in is confirmed by mail to exactly the address
                # the person signed in with.
                reference=Reference(subject_id, (("email", person.email),)),
                purpose=change.purpose,
                action=change.action,
                source=SOURCE,
                channel=change.channel,
                notice_version=change.notice_version,
                actor="subject",
                evidence=evidence,
            ),
            internal=True,
        )
        subject_id = done.subject_id
        recorded += 1
        if change.channel:
            states[(change.purpose, change.channel)] = done.state
    return Saved(subject_id, recorded, states)


@transaction.atomic(durable=True)
def subject_for_address(*, email: str) -> uuid.UUID:
    """The subject of a signed-in address, created when nothing resolves: for the objection to all marketing of a
    person nobody knew yet, which must be remembered (Art. 21(3)) but is not a consent event that could create
    one. Serialised with consent_record's own creation on the same advisory lock name."""
    reference = Reference(None, (("email", email),))
    lock_identifiers([blind_index().lookup("email", email)])
    found = subject_resolve(reference=reference)
    if found is not None:
        return found
    return subject_create(reference=reference, now=timezone.now()).id


# ---------------------------------------------------------------------------------------------------------
# Rights requests
# ---------------------------------------------------------------------------------------------------------
def rights_request_open(*, person: Person, kind: str, details: object) -> RightsRequest:
    """Open a request for the signed-in person, verified by the sign-in: access, rectification and restriction
    start at once, an erasure waits for the DPO's approval, an objection takes effect before this returns.
    RequestOpenError when an identical request is open (a form posted twice)."""
    if person.subject_id is None:
        raise ValueError("a rights request needs a subject; the portal offers none to a person nobody knows")
    return request_open(
        kind=kind,
        reference=Reference(person.subject_id, ()),
        channel=SOURCE,
        verified=True,
        details=details_parse(kind=kind, raw=details),
        actor=VERIFIER,
        language=get_language(),  # the portal's page language: the completion mail speaks it too
    )
