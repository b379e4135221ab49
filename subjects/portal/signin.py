"""Signing in to the portal by an e-mail link: no passwords.

- A request for a link does exactly the same work whatever the address: it never looks the address up (a person
  nobody knows yet may sign in too, and a subject is created on their first save), so the answer and the time it
  takes say nothing about whether the address is known. Requests are limited per client address (config/net.py) in
  the shared cache; past that limit the client sees "too many requests".
- Mails are limited per address, requests are not: anyone may type anyone's address, so a request never locks
  its owner out. An address gets at most one mail per gap (an hour divided by ASSENT_SIGNIN_PER_ADDRESS, never
  longer than a link lives); a request inside the gap sends nothing and shows the same "sent" page. So whenever
  nothing is sent, the mailbox holds a link from the last few minutes that still works (links are independent
  and a new one never cancels an older one), and using a link opens the gap at once for the owner's next visit.
  The gap is kept under a keyed hash of the address, never the address itself.
- The link carries `token_id:timestamp:signature` (Django's TimestampSigner, salted): a forged link fails the
  signature, an old one the timestamp (ASSENT_SIGNIN_MINUTES, 15 by default). The pending sign-in lives in the
  shared cache under a hash of the token id, and is consumed by deleting it: of two racing clicks only the one
  whose delete removed the key signs in, so a link works once.
- The browser that asked gets a random nonce in a cookie; the pending sign-in keeps its hash. The link opened in
  that browser signs in at once; opened anywhere else (another device, a mail scanner) it asks the person to
  confirm with a button first, so a prefetch consumes nothing and a link forwarded by mistake needs an act.
- The address is kept sealed (AES-256-GCM under a key derived from SECRET_KEY with HKDF), in the cache while the
  link is pending and in the session afterwards: neither holds it in plain text.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import send_mail
from django.template.loader import render_to_string

from config.errors import DomainError, UnavailableError
from subjects import crypto
from subjects.mail_delivery import mail_delivered, mail_error_describe, mail_undelivered_record
from subjects.models import UndeliveredMail

log = logging.getLogger(__name__)

SALT = "assent.portal.signin"
NONCE_COOKIE = "assent_signin"
_PENDING = "portal:signin:"
_LIMIT = "portal:signin-limit:"
_LIMIT_WINDOW = 3600  # seconds: requests per client address are counted per hour; mails per address spread over it
_EMAIL_AAD = b"assent/portal/email/v1"
MAIL_KIND = UndeliveredMail.Kind.SIGNIN


class SigninRateLimitedError(DomainError):
    code = "signin_rate_limited"
    status = 429
    title = "Too many sign-in requests"


class SigninMailError(UnavailableError):
    code = "signin_mail_failed"
    title = "The sign-in mail could not be sent"


# ---------------------------------------------------------------------------------------------------------
# Keys and sealing
# ---------------------------------------------------------------------------------------------------------
def _derive(info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(settings.SECRET_KEY.encode())


def _keys() -> tuple[bytes, bytes]:
    """(sealing key, hashing key), derived per call: cheap, and it follows a SECRET_KEY changed in tests."""
    return _derive(b"assent/portal/seal/v1"), _derive(b"assent/portal/hash/v1")


def email_seal(email: str) -> str:
    sealing, _ = _keys()
    return base64.urlsafe_b64encode(crypto.seal(sealing, email.encode(), _EMAIL_AAD)).decode("ascii")


def email_open(sealed: object) -> str | None:
    """The sealed address, or None for anything damaged or sealed under another SECRET_KEY."""
    if not isinstance(sealed, str):
        return None
    sealing, _ = _keys()
    try:
        return crypto.open_sealed(sealing, base64.urlsafe_b64decode(sealed.encode("ascii")), _EMAIL_AAD).decode()
    except (crypto.DecryptionError, ValueError):
        return None


def _hash(value: str) -> str:
    _, hashing = _keys()
    return hmac.new(hashing, value.encode(), "sha256").hexdigest()


def email_mask(email: str) -> str:
    """`a•••@example.de`: enough for a person to recognise their address on the confirmation page."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def nonce_new() -> str:
    return secrets.token_urlsafe(32)


def nonce_valid(value: str | None) -> bool:
    return bool(value) and len(value or "") == 43 and all(c.isalnum() or c in "-_" for c in value or "")


# ---------------------------------------------------------------------------------------------------------
# Rate limits (shared cache: every process counts together)
# ---------------------------------------------------------------------------------------------------------
def _count(name: str, limit: int) -> None:
    window = int(time.time() // _LIMIT_WINDOW)
    key = f"{_LIMIT}{name}:{window}"
    cache.add(key, 0, timeout=_LIMIT_WINDOW + 60)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=_LIMIT_WINDOW + 60)
        used = 1
    if used > limit:
        raise SigninRateLimitedError("too many sign-in requests; please try again later")


def _mail_gap() -> int:
    """Seconds between two mails to one address: at most ASSENT_SIGNIN_PER_ADDRESS an hour, and never longer than a
    link lives, so a link mailed before a request that sends nothing is still open."""
    per_hour = max(1, int(settings.ASSENT_SIGNIN_PER_ADDRESS))
    return max(1, min(_LIMIT_WINDOW // per_hour, signin_minutes() * 60))


def _mail_gap_key(email: str) -> str:
    return f"{_LIMIT}mail:{_hash(email)}"


# ---------------------------------------------------------------------------------------------------------
# Asking for a link
# ---------------------------------------------------------------------------------------------------------
def signin_minutes() -> int:
    return settings.ASSENT_SIGNIN_MINUTES


def signin_url(token: str) -> str:
    return f"{settings.ASSENT_BASE_URL}/portal/signin/{token}"


def signin_request(*, email: str, nonce: str, ip: str) -> None:
    """Mail a sign-in link to a normalised address, unless one went there less than a gap ago (then nothing is sent
    and the caller answers the same). The same steps for every address, known or not: no lookup."""
    _count("ip:" + _hash(ip), settings.ASSENT_SIGNIN_PER_IP)
    gap_key = _mail_gap_key(email)
    if not cache.add(gap_key, 1, timeout=_mail_gap()):
        return  # a link mailed within the gap is still open: the owner uses that one
    minutes = signin_minutes()
    token_id = secrets.token_urlsafe(24)
    pending = {"email": email_seal(email), "nonce": _hash(nonce)}
    cache.set(_PENDING + _hash(token_id), pending, timeout=minutes * 60)
    token = signing.TimestampSigner(salt=SALT).sign(token_id)
    context = {"url": signin_url(token), "minutes": minutes}
    try:
        send_mail(
            subject=render_to_string("portal/mail/signin_subject.txt", context).strip(),
            message=render_to_string("portal/mail/signin.txt", context),
            from_email=None,
            recipient_list=[email],
        )
    except OSError as exc:  # SMTP refused or down: the same answer for every address
        cache.delete(_PENDING + _hash(token_id))
        cache.delete(gap_key)  # nothing reached the mailbox: the next request must be able to send
        error = mail_error_describe(exc)
        log.warning("portal sign-in mail not sent: %s", error)
        # Retried by the person, not by a task: they are at the page, which says it failed; a link retried later
        # could arrive after its ASSENT_SIGNIN_MINUTES, and a task would carry the link through the broker. The DPO
        # sees it under a keyed hash of the address (the sign-in never looks the address up).
        mail_undelivered_record(kind=MAIL_KIND, reference=_hash(email), error=error)
        raise SigninMailError("the sign-in mail could not be sent; please try again later") from None
    mail_delivered(kind=MAIL_KIND, reference=_hash(email))  # the same one query for every address


# ---------------------------------------------------------------------------------------------------------
# Opening a link
# ---------------------------------------------------------------------------------------------------------
class LinkState(StrEnum):
    OPEN = "open"
    INVALID = "invalid"  # forged, damaged, or signed under another SECRET_KEY
    EXPIRED = "expired"
    USED = "used"  # used already (or gone from the cache)


@dataclass(frozen=True, slots=True)
class SigninLink:
    state: LinkState
    email: str | None = None
    same_browser: bool = False
    cache_key: str = ""


def signin_link(*, token: str, nonce: str | None) -> SigninLink:
    """What a link is; reads only, so showing the confirmation page changes nothing."""
    signer = signing.TimestampSigner(salt=SALT)
    try:
        token_id = signer.unsign(token, max_age=signin_minutes() * 60)
    except signing.SignatureExpired:
        return SigninLink(LinkState.EXPIRED)
    except signing.BadSignature:
        return SigninLink(LinkState.INVALID)
    key = _PENDING + _hash(token_id)
    pending: Any = cache.get(key)
    if not isinstance(pending, dict):
        return SigninLink(LinkState.USED)
    email = email_open(pending.get("email"))
    if email is None:
        return SigninLink(LinkState.INVALID)
    same = bool(nonce) and hmac.compare_digest(str(pending.get("nonce", "")), _hash(nonce or ""))
    return SigninLink(LinkState.OPEN, email=email, same_browser=same, cache_key=key)


def signin_consume(link: SigninLink) -> bool:
    """Use the link up. True for exactly one caller: the one whose delete removed the pending sign-in."""
    if link.state != LinkState.OPEN or not link.cache_key:
        return False
    if not cache.delete(link.cache_key):
        return False
    if link.email is not None:
        # Whoever used the link reads that mailbox: their next request (after signing out) mails at once.
        cache.delete(_mail_gap_key(link.email))
    return True
