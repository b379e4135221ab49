"""Reads for the portal's pages, shaped for the templates. Reads only: every write goes through a service."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils.translation import get_language

from config.names import as_given, localised
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot
from consent.models import Channel, ConsentEvent, DataCategory, Objection, Purpose, Source
from consent.policy import Action, LegalBasis, Reason, SubjectState, decide
from consent.receipts import RECEIPT_ACTIONS, receipt_sign, receipts_signed
from consent.selectors import consent_history_list, subject_states_for_policy
from subjects.keys import data_key
from subjects.models import LinkedRecord, RightsRequest, Subject
from subjects.profile import profile_read
from subjects.selectors import subject_identifiers, subject_with_absorbed

# How a channel's switch shows (Art. 25, Planet49: off until the person chooses).
ON = "on"  # granted and in force
WAITING = "waiting"  # granted, waiting for the double opt-in confirmation
OFF = "off"
EXPIRED = "expired"  # was granted, too old now: off until chosen again
OUTDATED = "outdated"  # granted for a notice text that a later one replaced: off until chosen again
SIGNED_UP_BY_OTHERS = "suppressed"  # someone else's sign-up for an erased person's address: off until the person's own
CHILD = "child"  # granted, but needs a holder of parental responsibility (Art. 8)

_SHOWN_ON = frozenset({ON, WAITING, CHILD})
_BY_REASON = {
    Reason.GRANTED: ON,
    Reason.PENDING_CONFIRMATION: WAITING,
    Reason.SUPPRESSED: SIGNED_UP_BY_OTHERS,
    Reason.EXPIRED: EXPIRED,
    Reason.NOTICE_OUTDATED: OUTDATED,
    Reason.PARENTAL_CONSENT_REQUIRED: CHILD,
}


@dataclass(frozen=True, slots=True)
class ChannelChoice:
    key: str
    name: str
    status: str  # ON, WAITING, OFF, EXPIRED, OUTDATED, SIGNED_UP_BY_OTHERS, CHILD
    double_opt_in: bool

    @property
    def on(self) -> bool:
        return self.status in _SHOWN_ON


@dataclass(frozen=True, slots=True)
class PurposeView:
    key: str
    name: str
    legal_basis: str
    marketing: bool
    notice_version: str | None
    notice_text: str
    channels: tuple[ChannelChoice, ...]
    objected_since: datetime | None = None  # an objection to this purpose (Art. 21)
    automated_decision: str = ""


@dataclass(frozen=True, slots=True)
class Preferences:
    consent: tuple[PurposeView, ...]
    legitimate_interest: tuple[PurposeView, ...]
    information: tuple[PurposeView, ...]  # contract and legal obligation: no switches
    no_marketing_since: datetime | None  # the objection to all direct marketing (Art. 21(3))
    restricted: bool = False

    def purpose(self, key: str) -> PurposeView | None:
        return next((p for p in (*self.consent, *self.legitimate_interest) if p.key == key), None)


def names_of(model: type[Channel | DataCategory | Purpose | Source], language: str | None = None) -> dict[str, str]:
    """Key -> name in the reader's language (the page's, by default), from a name or texts per language."""
    language = language or get_language()
    return {
        key: localised(as_given(name, texts), language)
        for key, name, texts in model.objects.values_list("key", "name", "names")
    }


def channel_names(language: str | None = None) -> dict[str, str]:
    return names_of(Channel, language)


def category_names(language: str | None = None) -> dict[str, str]:
    return names_of(DataCategory, language)


def _text(texts: dict[str, str], language: str) -> str:
    return texts.get(language) or texts.get("de") or texts.get("en") or next(iter(texts.values()), "")


def preferences_get(*, subject_id: uuid.UUID | None, language: str, now: datetime) -> Preferences:
    """Every purpose of the catalogue with what the person chose. A person nobody knows yet sees every consent
    switch off and every legitimate interest active."""
    snapshot = catalogue_snapshot()
    names = channel_names(language)
    purpose_names = names_of(Purpose, language)
    state = SubjectState()
    objections: dict[str, datetime] = {}
    if subject_id is not None:
        state = subject_states_for_policy(subject_ids=[subject_id]).get(subject_id, SubjectState())
        objections = dict(Objection.objects.filter(subject_id=subject_id).values_list("purpose", "since"))
    # The switches show the person's own choices: a restriction or an objection denies them too, but is shown
    # on its own, so switching it off again is not the only way to see what was chosen.
    choices_only = dataclasses.replace(
        state, restricted=False, objected_purposes=frozenset(), objects_to_direct_marketing=False
    )
    automated = {
        key: localised(as_given(text, texts), language)
        for key, text, texts in Purpose.objects.exclude(automated_decision="").values_list(
            "key", "automated_decision", "automated_decision_texts"
        )
    }
    consent, legitimate, information = [], [], []
    for key in sorted(snapshot.purposes, key=lambda k: (purpose_names.get(k, snapshot.purposes[k].name).lower(), k)):
        info = snapshot.purposes[key]
        view = _purpose_view(info, names, choices_only, objections.get(key), language, now, automated.get(key, ""))
        view = dataclasses.replace(view, name=purpose_names.get(key, view.name))
        basis = info.rule.legal_basis
        if basis == LegalBasis.CONSENT:
            consent.append(view)
        elif basis == LegalBasis.LEGITIMATE_INTEREST:
            legitimate.append(view)
        else:
            information.append(view)
    return Preferences(
        consent=tuple(consent),
        legitimate_interest=tuple(legitimate),
        information=tuple(information),
        no_marketing_since=objections.get(""),
        restricted=state.restricted,
    )


def _purpose_view(
    info: PurposeInfo,
    names: dict[str, str],
    state: SubjectState,
    objected_since: datetime | None,
    language: str,
    now: datetime,
    automated_decision: str,
) -> PurposeView:
    rule = info.rule
    channels = []
    for channel in sorted(rule.channels, key=lambda c: (str(names.get(c) or c).lower(), c)):
        status = OFF
        if rule.legal_basis == LegalBasis.CONSENT:
            reason = decide(state, rule, channel, Action.CHECK, now).reason
            status = _BY_REASON.get(reason, OFF)
        channels.append(ChannelChoice(channel, names.get(channel, channel), status, channel in rule.double_opt_in))
    return PurposeView(
        key=rule.key,
        name=info.name,
        legal_basis=rule.legal_basis.value,
        marketing=rule.marketing,
        notice_version=info.current_notice,
        notice_text=_text(info.texts, language),
        channels=tuple(channels),
        objected_since=objected_since,
        automated_decision=automated_decision,
    )


# ---------------------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HistoryRow:
    occurred_at: datetime
    recorded_at: datetime
    action: str
    purpose: str  # the purpose's name; "" for an event about every purpose (an objection to all marketing)
    channel: str  # the channel's name; "" for every channel
    source: str
    notice_version: str
    hash: str
    seq: int
    event_id: uuid.UUID
    has_receipt: bool  # a grant, withdrawal, objection or confirmation: the person may download its signed receipt


def history_list(*, subject_id: uuid.UUID) -> list[HistoryRow]:
    """The person's consent events, newest first, including the chains of records merged into theirs."""
    purposes = names_of(Purpose)
    names = channel_names()
    ids = subject_with_absorbed(subject_id=subject_id)
    events: list[ConsentEvent] = []
    for sid in ids:
        events.extend(consent_history_list(subject_id=sid))
    events.sort(key=lambda e: (e.occurred_at, e.recorded_at, e.seq), reverse=True)
    signed = receipts_signed()
    return [
        HistoryRow(
            occurred_at=e.occurred_at,
            recorded_at=e.recorded_at,
            action=e.action,
            purpose=purposes.get(e.purpose, e.purpose),
            channel=names.get(e.channel, e.channel),
            source=e.source,
            notice_version=e.notice_version,
            hash=e.hash,
            seq=e.seq,
            event_id=e.id,
            has_receipt=signed and e.action in RECEIPT_ACTIONS,
        )
        for e in events
    ]


def history_receipt(*, subject_id: uuid.UUID, event_id: uuid.UUID) -> tuple[int, str] | None:
    """(seq, signed receipt) of one of the person's own events (merged records' included); None for anyone else's
    event, an unknown one, or one that has no receipt."""
    event = ConsentEvent.objects.filter(
        pk=event_id, subject_id__in=subject_with_absorbed(subject_id=subject_id), action__in=RECEIPT_ACTIONS
    ).first()
    if event is None or not receipts_signed():
        return None
    return event.seq, receipt_sign(event)


def source_names() -> dict[str, str]:
    return names_of(Source)


# ---------------------------------------------------------------------------------------------------------
# Rights
# ---------------------------------------------------------------------------------------------------------
def _own_ids(subject_id: uuid.UUID) -> list[uuid.UUID]:
    return subject_with_absorbed(subject_id=subject_id)


def requests_of_person(*, subject_id: uuid.UUID) -> list[RightsRequest]:
    return list(RightsRequest.objects.filter(subject_id__in=_own_ids(subject_id)).order_by("-received_at"))


def request_of_person(*, request_id: uuid.UUID, subject_id: uuid.UUID | None) -> RightsRequest | None:
    """The request if it is this person's; None for an unknown id and for anyone else's alike."""
    if subject_id is None:
        return None
    return RightsRequest.objects.filter(pk=request_id, subject_id__in=_own_ids(subject_id)).first()


@dataclass(frozen=True, slots=True)
class Hold:
    """What erasure keeps of one data category in one source, where, why and for how long (Art. 17(3))."""

    source: str
    category: str
    years: int
    from_end_of_year: bool
    law: str
    kept_by_assent: bool


@dataclass(frozen=True, slots=True)
class ErasurePreview:
    sources: tuple[str, ...]  # names of the systems holding the person's records
    holds: tuple[Hold, ...]
    has_consent_proof: bool


def erasure_preview(*, subject_id: uuid.UUID) -> ErasurePreview:
    snapshot = catalogue_snapshot()
    sources = source_names()
    categories = names_of(DataCategory)
    held = sorted(
        set(LinkedRecord.objects.filter(subject_id__in=_own_ids(subject_id)).values_list("source", "category"))
    )
    holds = []
    for source, category in held:
        holding = snapshot.sources.get(source, {}).get(category)
        if holding is None or not holding.legal_hold_years:
            continue
        holds.append(
            Hold(
                source=sources.get(source, source),
                category=categories.get(category, category),
                years=holding.legal_hold_years,
                from_end_of_year=holding.legal_hold_from == "end_of_year",
                law=holding.legal_hold_law,
                kept_by_assent=source in snapshot.system_of_record,
            )
        )
    return ErasurePreview(
        sources=tuple(sorted({sources.get(s, s) for s, _ in held})),
        holds=tuple(holds),
        has_consent_proof=ConsentEvent.objects.filter(subject_id__in=_own_ids(subject_id)).exists(),
    )


@dataclass(frozen=True, slots=True)
class ContactData:
    identifiers: dict[str, list[str]]  # kind -> values
    profile: dict[str, str]  # the text attributes of the profile


def contact_data(*, subject_id: uuid.UUID) -> ContactData:
    """The person's own identifiers and profile, decrypted for them (Art. 16: so they can see what to correct)."""
    subject = Subject.objects.get(pk=subject_id)
    key = data_key(subject)
    identifiers: dict[str, list[str]] = {}
    for kind, value in subject_identifiers(subject=subject, key=key):
        identifiers.setdefault(kind, []).append(value)
    profile = {name: value for name, value in profile_read(subject, key).items() if isinstance(value, str)}
    return ContactData(identifiers, profile)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a request's progress as the person sees it, with the day it was reached (None: not yet)."""

    key: str  # "received", "verified", "processing", "completed"
    at: datetime | None


# The history events that reach each step; the first of them counts. An erasure is "in progress" once the DPO
# approved it and its parts run; an objection is verified by taking effect.
_STEP_EVENTS = {
    "received": ("received",),
    "verified": ("verified", "awaiting_approval", "processing"),
    "processing": ("processing",),
    "completed": ("completed",),
}


def request_steps(*, request: RightsRequest, history: list[dict[str, Any]]) -> list[Step]:
    """Received, verified, in progress, done: each with the date it was reached. A step reached implies the ones
    before it (a request verified on opening records no separate "verified" event before "processing")."""
    reached: dict[str, datetime | None] = {}
    for key, events in _STEP_EVENTS.items():
        ats = [h["at"] for h in history if h["event"] in events]
        reached[key] = min(ats) if ats else None
    if request.completed_at is not None:
        reached["completed"] = request.completed_at
    steps: list[Step] = []
    later: datetime | None = None
    for key in reversed(list(_STEP_EVENTS)):
        at = reached[key] or later
        steps.append(Step(key, at))
        later = at if at is not None else later
    return list(reversed(steps))


def erasure_completed_of(*, subject_id: uuid.UUID) -> RightsRequest | None:
    """The completed erasure of this (erased) subject, for the page that ends the portal session after it."""
    return (
        RightsRequest.objects.filter(
            subject_id=subject_id, kind=RightsRequest.Kind.ERASURE, status=RightsRequest.Status.COMPLETED
        )
        .order_by("-completed_at")
        .first()
    )
