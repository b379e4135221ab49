"""API clients: creation, key authentication and the per-client rate limit."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from config import ratelimit
from config.db import prepared_rows
from config.errors import ConflictError, InvalidInputError
from consent.catalogue.snapshot import catalogue_snapshot
from consent.errors import ForbiddenPurposeError
from consent.models import ApiClient
from subjects.crypto import api_key_digest

KEY_PREFIX = "ast_"
_LAST_USED_EVERY = 60.0


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    id: int
    name: str
    scopes: frozenset[str]
    purposes: frozenset[str]  # empty: every purpose

    def may_use_purpose(self, key: str) -> bool:
        return not self.purposes or key in self.purposes


_lock = threading.Lock()
_last_used: dict[int, float] = {}


def client_create(*, name: str, scopes: list[str], purposes: list[str]) -> tuple[ApiClient, str]:
    """A new client and its key, which is shown this once: only its SHA-256 is stored."""
    unknown = sorted(set(scopes) - set(ApiClient.Scope.values))
    if not scopes:
        raise InvalidInputError("at least one scope is required", field="scope")
    if unknown:
        raise InvalidInputError(
            f"unknown scope {unknown[0]!r}; one of {', '.join(ApiClient.Scope.values)}", field="scope"
        )
    known = catalogue_snapshot().purposes
    missing = sorted(p for p in purposes if p not in known)
    if missing:
        raise InvalidInputError(f"unknown purpose {missing[0]!r}", field="purpose")
    if not name.strip():
        raise InvalidInputError("a name is required", field="name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic(durable=True):
        if ApiClient.objects.filter(name=name).exists():
            raise ConflictError(f"an API client named {name!r} exists already", field="name")
        client = ApiClient.objects.create(
            name=name,
            prefix=key[:10],
            key_digest=api_key_digest(key),
            scopes=sorted(set(scopes)),
            purposes=sorted(set(purposes)),
            created_at=timezone.now(),
        )
    return client, key


def client_revoke(*, client: ApiClient) -> None:
    with transaction.atomic(durable=True):
        ApiClient.objects.filter(pk=client.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


_BY_DIGEST = (
    "SELECT id, name, scopes::text, purposes::text FROM consent_apiclient"
    " WHERE key_digest = %(digest)s AND revoked_at IS NULL"
)


def client_authenticate(*, key: str) -> AuthenticatedClient | None:
    """The client a key belongs to, or None. One indexed lookup (key_digest is unique), a prepared statement, per
    request and no cache: a revocation takes effect at once in every process and on every host."""
    return _client_by_digest(api_key_digest(key))


def _client_by_digest(digest: str) -> AuthenticatedClient | None:
    if connection.vendor == "postgresql":
        rows = prepared_rows(_BY_DIGEST, {"digest": digest})
        if not rows:
            return None
        row_id, name, scopes, purposes = rows[0]
        client = AuthenticatedClient(row_id, name, frozenset(orjson.loads(scopes)), frozenset(orjson.loads(purposes)))
    else:
        row = (
            ApiClient.objects.filter(key_digest=digest, revoked_at__isnull=True)
            .values_list("id", "name", "scopes", "purposes")
            .first()
        )
        if row is None:
            return None
        client = AuthenticatedClient(row[0], row[1], frozenset(row[2]), frozenset(row[3]))
    now = time.monotonic()
    if now - _last_used.get(client.id, -_LAST_USED_EVERY) >= _LAST_USED_EVERY:
        # Last use, for the admin, at most once a minute per process rather than a write per request.
        _last_used[client.id] = now
        ApiClient.objects.filter(pk=client.id).update(last_used_at=timezone.now())
    return client


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What a request's API key comes to: its client (None: unknown or revoked), and the seconds to wait when the
    address is blocked for failed authentications (then the key was not looked at) or the client is over its
    rate limit."""

    client: AuthenticatedClient | None
    blocked: int | None
    limited: int | None


def client_key_check(*, key: str, address: str) -> KeyCheck:
    """Authenticate a presented key from `address` and count the request against its rate limit (ASSENT_RATE_LIMIT
    a minute): both counters in one round trip to Redis, then the key's one prepared lookup, unless the address
    is blocked (ASSENT_AUTH_FAILURES), in which case even a right key is not confirmed.
    The rate limit counts per key (its digest): a client has one key, so per client, as API.md says, without
    waiting for the database to name the client before the count."""
    digest = api_key_digest(key)
    blocked, limited = ratelimit.over_then_hit(
        over_bucket=f"authfail:{address}",
        over_limit=settings.ASSENT_AUTH_FAILURES,
        hit_bucket=f"key:{digest}",
        hit_limit=settings.ASSENT_RATE_LIMIT,
    )
    if blocked is not None:
        return KeyCheck(None, blocked, None)
    client = _client_by_digest(digest)
    return KeyCheck(client, None, limited if client is not None else None)


def client_auth_blocked(*, address: str) -> int | None:
    """Seconds to wait when `address` failed to authenticate more than ASSENT_AUTH_FAILURES times this minute.
    Checked before the key, so that once blocked even a right guess is not confirmed."""
    return ratelimit.over(bucket=f"authfail:{address}", limit=settings.ASSENT_AUTH_FAILURES)


def client_auth_failed(*, address: str) -> int | None:
    """Count a failed authentication from `address`; the seconds to wait when that crossed the limit."""
    return ratelimit.hit(bucket=f"authfail:{address}", limit=settings.ASSENT_AUTH_FAILURES)


def client_rate_limit_hit(*, client_id: int) -> int | None:
    """Count a request in the shared cache; the seconds to wait when over ASSENT_RATE_LIMIT a minute.
    Counted in Redis, never per process, so the limit holds across gunicorn workers and hosts."""
    window = int(time.time() // 60)
    key = f"rl:{client_id}:{window}"
    try:
        if hasattr(cache, "client") and hasattr(cache.client, "get_client"):
            redis = cache.client.get_client(write=True)
            pipe = redis.pipeline(transaction=False)
            pipe.incr(cache.make_key(key))
            pipe.expire(cache.make_key(key), 120)
            count = int(pipe.execute()[0])
        else:
            cache.add(key, 0, 120)
            count = cache.incr(key)
    except Exception:  # noqa: BLE001 - an unreachable counter must not take the policy check down with it
        return None
    if count > settings.ASSENT_RATE_LIMIT:
        return max(1, (window + 1) * 60 - int(time.time()))
    return None


def clients_forget_cache() -> None:
    """Keys are no longer cached (a revocation is seen at once everywhere); only the last-use throttle is."""
    with _lock:
        _last_used.clear()


def client_purpose_check(*, purpose: str, client_purposes: frozenset[str]) -> None:
    """403 for a client restricted to other purposes (an empty set: every purpose)."""
    if client_purposes and purpose not in client_purposes:
        raise ForbiddenPurposeError(f"this API client may not act for purpose '{purpose}'")
