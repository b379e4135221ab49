"""Checks and sends read each person's state narrowed to the one purpose and channel asked about, and decide each
distinct state once. Both shortcuts must be exact: for a crowd of people in every situation the policy knows, every
purpose and every channel, the check answers what the policy says of the person's full state."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from consent.catalogue.snapshot import catalogue_snapshot
from consent.gates.check import consent_check_digests, consent_check_many
from consent.models import ConsentState, Objection
from consent.policy import Action, Decision, LegalBasis, Reason, decide
from consent.selectors import policy_inputs, subject_states_for_policy
from subjects.identity import Reference, normalise, parse_reference
from subjects.models import Subject
from subjects.selectors import plain_reference_digests, reference_digests
from tests.factories import ConsentFactory, ingest


def ref(email: str) -> Reference:
    return Reference(None, (("email", normalise("email", email)),))


def person(email: str, *events: dict[str, str], purchase: bool = True) -> uuid.UUID:
    """Someone known from a till receipt (or, without `purchase`, another record), then the consent events given."""
    subject_id = ingest("pos", f"R-{email}", {"email": email}, purchase=purchase).subject_id
    for event in events:
        ConsentFactory(reference=ref(email), **event)
    return subject_id


LANDLINE = "+49 30 1234567"
SMS_GRANT = {"purpose": "newsletter", "channel": "sms"}
MAIL_GRANT = {"purpose": "newsletter", "channel": "email"}  # double opt-in: pending until confirmed


@pytest.fixture
def crowd(catalogue: object) -> list[str]:
    """People in every situation a decision turns on; returns their e-mails (and one nobody has)."""
    plain = [person(f"granted{n}@example.de", SMS_GRANT) for n in range(3)]
    person("pending@example.de", MAIL_GRANT)
    person("withdrawn@example.de", SMS_GRANT, {**SMS_GRANT, "action": "withdraw"})
    objects_purpose = person("objects-newsletter@example.de", SMS_GRANT)
    objects_all = person("objects-all@example.de", SMS_GRANT)
    person("nothing@example.de", purchase=False)
    child = person("child@example.de", SMS_GRANT)
    restricted = person("restricted@example.de", SMS_GRANT)
    erasing = person("erasing@example.de", SMS_GRANT)
    old = person("old-grant@example.de", SMS_GRANT)
    Subject.objects.filter(pk=child).update(is_child=True)
    Subject.objects.filter(pk=restricted).update(restricted_at=timezone.now())
    Subject.objects.filter(pk=erasing).update(erasure_started_at=timezone.now())
    for subject_id, purpose in ((objects_purpose, "newsletter"), (objects_all, "")):
        Objection.objects.create(subject_id=subject_id, purpose=purpose, since=timezone.now(), seq=1)
    ConsentState.objects.filter(subject_id=old).update(granted_at=timezone.now() - timedelta(days=800))
    assert len(plain) == 3
    return [
        *(f"granted{n}@example.de" for n in range(3)),
        "pending@example.de",
        "withdrawn@example.de",
        "objects-newsletter@example.de",
        "objects-all@example.de",
        "nothing@example.de",
        "child@example.de",
        "restricted@example.de",
        "erasing@example.de",
        "old-grant@example.de",
        "stranger@example.de",
    ]


@pytest.mark.django_db
def test_every_check_answers_what_the_policy_says_of_the_full_state(crowd: list[str]) -> None:
    snapshot = catalogue_snapshot()
    references = [ref(email) for email in crowd]
    now = timezone.now()
    for info in snapshot.purposes.values():
        for channel in sorted(snapshot.channels):
            for action in (Action.CHECK, Action.SEND):
                results = consent_check_many(references=references, info=info, channel=channel, action=action, now=now)
                ids = [r.subject_id for r in results]
                full = subject_states_for_policy(subject_ids=[i for i in ids if i is not None])
                expected = [decide(full.get(i) if i else None, info.rule, channel, action, now) for i in ids]
                got = [r.decision for r in results]
                assert got == expected, (info.rule.key, channel, action)


@pytest.mark.django_db
def test_people_alike_share_one_state_and_different_people_do_not(crowd: list[str]) -> None:
    info = catalogue_snapshot().purposes["newsletter"]
    references = [ref(email) for email in crowd]
    resolutions, states, unreadable = policy_inputs(
        references=references, rule=info.rule, channel="sms", now=timezone.now()
    )
    by_email = {email: states[r.subject_id] for email, r in zip(crowd, resolutions, strict=True) if r.subject_id}
    alike = {id(by_email[f"granted{n}@example.de"]) for n in range(3)}
    assert len(alike) == 1
    # Alike for this purpose and channel: a pending e-mail grant says nothing about SMS.
    assert by_email["pending@example.de"] is by_email["nothing@example.de"]
    others = {e: id(by_email[e]) for e in by_email if not e.startswith(("granted", "pending"))}
    assert len(set(others.values())) == len(others)
    assert alike.isdisjoint(others.values())
    assert not unreadable


@pytest.mark.django_db
def test_an_identifier_left_on_a_merged_subject_is_denied_not_decided_on_its_state(crowd: list[str]) -> None:
    # Given an impossible row: an identifier still pointing at a subject merged away (a merge moves them all)
    ghost = person("ghost@example.de", SMS_GRANT)
    survivor = person("survivor@example.de")
    Subject.objects.filter(pk=ghost).update(merged_into=survivor, status=Subject.Status.MERGED)

    # Then a check by that identifier does not read the absorbed subject's grant: it is denied
    info = catalogue_snapshot().purposes["newsletter"]
    [result] = consent_check_many(references=[ref("ghost@example.de")], info=info, channel="sms")
    assert not result.decision.allowed


@pytest.mark.django_db
def test_references_by_one_identifier_get_the_answers_of_the_general_path(crowd: list[str]) -> None:
    # Given the crowd, two people at one landline, and someone whose state row is corrupt
    ingest("webshop", "W-1", {"email": "kim@example.org", "phone": LANDLINE})
    ingest("webshop", "W-2", {"email": "alex@example.org", "phone": LANDLINE})
    corrupt = person("corrupt@example.de", SMS_GRANT)
    ConsentState.objects.filter(subject_id=corrupt).update(status="no-such-status")
    references = [*(ref(email) for email in [*crowd, "corrupt@example.de"]), parse_reference({"phone": LANDLINE})]
    # A reference by id sends a whole call down the general path (resolution objects, then states).
    by_id = Reference(Subject.objects.get(pk=corrupt).pk, ())

    snapshot, now = catalogue_snapshot(), timezone.now()
    for info in snapshot.purposes.values():
        for channel in sorted(snapshot.channels):
            for action in (Action.CHECK, Action.SEND):
                asked = {"info": info, "channel": channel, "action": action, "now": now}
                by_digest = consent_check_many(references=references, **asked)
                general = consent_check_many(references=[*references, by_id], **asked)[:-1]
                assert by_digest == general, (info.rule.key, channel, action)

    # And the answers are the ones each situation calls for
    results = consent_check_many(references=references, info=snapshot.purposes["newsletter"], channel="sms")
    assert results[-1] == (None, Decision.deny(Reason.AMBIGUOUS_SUBJECT, LegalBasis.CONSENT))
    assert results[-2] == (corrupt, Decision(False, Reason.UNAVAILABLE, None))
    assert results[crowd.index("stranger@example.de")].decision.reason == Reason.UNKNOWN_SUBJECT
    assert results[0].decision.reason == Reason.GRANTED


@pytest.mark.django_db
def test_raw_plain_e_mail_references_go_straight_to_their_blind_indexes(crowd: list[str]) -> None:
    raw = [{"email": email.upper() if n % 2 else email} for n, email in enumerate(crowd)]
    digests = plain_reference_digests(raw)
    assert digests == [d for [d] in reference_digests([parse_reference(item) for item in raw])]
    info = catalogue_snapshot().purposes["newsletter"]
    assert consent_check_digests(digests=digests, info=info, channel="sms") == consent_check_many(
        references=[parse_reference(item) for item in raw], info=info, channel="sms"
    )
    # Anything but a plain address alone is for parse_reference to judge.
    for odd in ({"email": "jörg@example.de"}, {"email": "a@b.de", "phone": LANDLINE}, {"phone": LANDLINE}, "a@b.de"):
        assert plain_reference_digests([{"email": "a@b.de"}, odd]) is None
