"""One-click unsubscribe from a marketing send (Art. 7(3): withdrawing as easy as giving; RFC 8058; UWG §7(3) Nr. 4).

The link names the person and the send: token = base64url(subject id || send id || HMAC-SHA256(ASSENT_LINK_KEY,
tag || subject id || send id)[:16]), 64 characters. The purpose and channel come from the Send row, so the link
stays short and cannot be edited to another purpose. Tokens never expire (a mail read a year later must still
work) and are keyed with ASSENT_LINK_KEY, not SECRET_KEY, so that rotating SECRET_KEY does not break old mails.
"""

from __future__ import annotations

import base64
import functools
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import get_language

from config.errors import NotFoundError
from consent.catalogue.snapshot import PurposeInfo, catalogue_snapshot, channel_display_name
from consent.ledger import projection
from consent.ledger.recording import ConsentCommand, consent_event_record
from consent.models import ConsentState, Objection, Send
from consent.policy import LegalBasis
from consent.services import ObjectionRecorded, consent_object_direct_marketing, consent_validate
from subjects.crypto import HmacSha256
from subjects.errors import SubjectNotFoundError
from subjects.identity import Reference
from subjects.locks import lock_subject
from subjects.models import Subject
from subjects.selectors import subject_get_survivor

SOURCE = "unsubscribe-link"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"  # RFC 8058: the POST body a mail provider sends
_TAG = b"assent/unsubscribe/v1|"
_MAC_BYTES = 16
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{64}$")  # 48 bytes: no padding, exactly one encoding per payload


class UnsubscribeInvalidError(NotFoundError):
    code = "unsubscribe_invalid"
    title = "This unsubscribe link is not valid"


# ---------------------------------------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> HmacSha256:
    return HmacSha256(key)


def _mac(payload: bytes) -> bytes:
    return _keyed(settings.ASSENT_LINK_KEY).digest(_TAG + payload)[:_MAC_BYTES]


def unsubscribe_tokens(*, subject_ids: Sequence[uuid.UUID], send_id: uuid.UUID) -> list[str]:
    """One token per subject, for a send of up to 10,000 recipients: the keyed hash's states are built once per
    key (subjects.crypto.HmacSha256), no Django signing, no JSON."""
    mac = _keyed(settings.ASSENT_LINK_KEY)
    send = send_id.bytes
    tokens: list[str] = []
    for subject_id in subject_ids:
        payload = subject_id.bytes + send
        tokens.append(base64.urlsafe_b64encode(payload + mac.digest(_TAG + payload)[:_MAC_BYTES]).decode("ascii"))
    return tokens


def unsubscribe_token(*, subject_id: uuid.UUID, send_id: uuid.UUID) -> str:
    return unsubscribe_tokens(subject_ids=[subject_id], send_id=send_id)[0]


def unsubscribe_url(token: str) -> str:
    return f"{settings.ASSENT_BASE_URL}/u/{token}"


def unsubscribe_token_parse(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(subject id, send id) of an authentic token, else None."""
    if not _TOKEN.match(token):
        return None
    raw = base64.urlsafe_b64decode(token)
    payload, tag = raw[:32], raw[32:]
    if not hmac.compare_digest(_mac(payload), tag):
        return None
    return uuid.UUID(bytes=payload[:16]), uuid.UUID(bytes=payload[16:])


# ---------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UnsubscribeView:
    subject_id: uuid.UUID  # the survivor, if the person's records were merged since the send
    send_id: uuid.UUID
    purpose_key: str
    purpose_name: str
    channel: str
    channel_name: str
    legal_basis: str
    erased: bool  # nothing is sent to an erased person; nothing is recorded either
    done: bool  # already unsubscribed from this purpose on this channel (or from all marketing)


def unsubscribe_from_token(*, token: str) -> UnsubscribeView:
    """What an unsubscribe link names. Reads only: a GET must change nothing, mail scanners prefetch links."""
    parsed = unsubscribe_token_parse(token)
    if parsed is None:
        raise UnsubscribeInvalidError("this link is not valid")
    subject_id, send_id = parsed
    send = Send.objects.filter(pk=send_id).values_list("purpose", "channel").first()
    if send is None:
        raise UnsubscribeInvalidError("this link is not valid")
    purpose_key, channel = send
    info = catalogue_snapshot().purposes.get(purpose_key)
    if info is None:
        raise UnsubscribeInvalidError("this link is not valid")
    try:
        subject = subject_get_survivor(subject_id=subject_id)
    except SubjectNotFoundError:
        raise UnsubscribeInvalidError("this link is not valid") from None
    erased = _erased(subject)
    return UnsubscribeView(
        subject_id=subject.id,
        send_id=send_id,
        purpose_key=purpose_key,
        purpose_name=info.display_name(get_language()),
        channel=channel,
        channel_name=channel_display_name(channel, get_language()),
        legal_basis=info.rule.legal_basis.value,
        erased=erased,
        done=erased or _unsubscribed(subject, info, channel),
    )


@dataclass(frozen=True, slots=True)
class UnsubscribeDone:
    view: UnsubscribeView
    recorded: bool  # False: the person was unsubscribed already (a second click, or the provider and the person)


def unsubscribe_confirm(*, token: str, form: str, evidence: dict[str, Any]) -> UnsubscribeDone:
    """Withdraw the send's purpose on the send's channel (consent), or object to the purpose (legitimate interest,
    Art. 21(2)), as the person, from the link. Idempotent under the subject's lock: a second POST records nothing."""
    view = unsubscribe_from_token(token=token)
    if view.erased:
        return UnsubscribeDone(view, recorded=False)
    info = _purpose(view.purpose_key)
    consent_based = info.rule.legal_basis == LegalBasis.CONSENT
    if consent_based and view.channel not in info.rule.channels:
        # The catalogue no longer lets the purpose use this channel: nothing can be sent on it any more.
        return UnsubscribeDone(view, recorded=False)
    command = ConsentCommand(
        reference=Reference(view.subject_id, ()),
        purpose=view.purpose_key,
        # An objection covers every channel of the purpose; a consent is withdrawn where it was used.
        channel=view.channel if consent_based else None,
        action="withdraw" if consent_based else "object",
        source=SOURCE,
        actor="subject",
        evidence={**evidence, "form": form, "send": str(view.send_id)},
    )
    with transaction.atomic(durable=True):
        subject = lock_subject(view.subject_id)
        if _unsubscribed(subject, info, view.channel):
            return UnsubscribeDone(view, recorded=False)
        now = timezone.now()
        consent_validate(command, now=now, internal=True)
        consent_event_record(command, info, now)
    return UnsubscribeDone(view, recorded=True)


def unsubscribe_all_marketing(
    *, token: str, evidence: dict[str, Any]
) -> tuple[UnsubscribeView, ObjectionRecorded | None]:
    """'No marketing at all': an objection to direct marketing (Art. 21(2)-(3)), absolute and on every channel."""
    view = unsubscribe_from_token(token=token)
    if view.erased:
        return view, None
    recorded = consent_object_direct_marketing(
        subject_id=view.subject_id,
        source=SOURCE,
        evidence={**evidence, "form": "unsubscribe-page", "choice": "no-marketing", "send": str(view.send_id)},
    )
    return view, recorded


def _purpose(key: str) -> PurposeInfo:
    info = catalogue_snapshot().purposes.get(key) or catalogue_snapshot(refresh=True).purposes.get(key)
    if info is None:
        raise UnsubscribeInvalidError("this link is not valid")
    return info


def _erased(subject: Subject) -> bool:
    return (
        subject.status == Subject.Status.ERASED
        or subject.erased_at is not None
        or subject.erasure_started_at is not None
        or subject.wrapped_key is None
    )


def _unsubscribed(subject: Subject, info: PurposeInfo, channel: str) -> bool:
    """Whether the person receives nothing more of this purpose on this channel through anything they gave."""
    if info.rule.legal_basis != LegalBasis.CONSENT:
        return Objection.objects.filter(subject=subject, purpose__in=[info.rule.key, ""]).exists()
    return not ConsentState.objects.filter(
        subject=subject,
        purpose=info.rule.key,
        channel=channel,
        status__in=[projection.GRANTED, projection.PENDING],
    ).exists()
