"""Fixed-window counters shared by every process through Redis. When Redis is unreachable, each process counts on
its own: a limit that then holds per process (so at most N times looser across N workers) beats no limit at all,
and a brute force on API keys must never get unlimited tries because Redis is down."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

_lock = threading.Lock()
_local: dict[str, tuple[int, int]] = {}  # key -> (window, count), the fallback while Redis is unreachable
_outage = False  # a warning once per outage, not one per request
_clients: dict[str, redis.Redis] = {}


def _redis() -> redis.Redis | None:
    url = settings.ASSENT_RATELIMIT_REDIS_URL or settings.REDIS_URL
    if not url:
        return None
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        _clients[url] = client
    return client


def _key(bucket: str, window: int) -> str:
    # Named like the cache's own keys, so a deployment's (and a test run's) prefix covers the counters too.
    return cache.make_key(f"rl:{bucket}:{window}")


def _count_locally(key: str, window: int) -> int:
    with _lock:
        if len(_local) > 100_000:
            _local.clear()
        seen_window, count = _local.get(key, (window, 0))
        count = count + 1 if seen_window == window else 1
        _local[key] = (window, count)
        return count


def hit(*, bucket: str, limit: int, period: int = 60) -> int | None:
    """Count one event in `bucket`; the seconds to wait when more than `limit` fell in this window, else None."""
    global _outage
    now = time.time()
    window = int(now // period)
    key = _key(bucket, window)
    client = _redis()
    count: int | None = None
    if client is not None:
        try:
            pipe = client.pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, period * 2)
            count = int(pipe.execute()[0])
        except redis.RedisError:
            if not _outage:
                _outage = True
                log.warning("rate limiter: Redis unreachable, counting per process until it is back")
        else:
            if _outage:
                _outage = False
                log.warning("rate limiter: Redis reachable again, counting shared")
    if count is None:
        count = _count_locally(key, window)
    if count > limit:
        return max(1, (window + 1) * period - int(now))
    return None


def forget_local() -> None:
    """Tests: the per-process fallback counters start empty."""
    global _outage
    with _lock:
        _local.clear()
    _outage = False


def over(*, bucket: str, limit: int, period: int = 60) -> int | None:
    """Without counting: the seconds to wait when `bucket` is already over `limit` in this window, else None."""
    now = time.time()
    window = int(now // period)
    key = _key(bucket, window)
    client = _redis()
    count: int | None = None
    if client is not None and not _outage:
        try:
            raw = client.get(key)
            count = int(raw) if raw is not None else 0
        except redis.RedisError:
            count = None
    if count is None:
        with _lock:
            seen_window, local = _local.get(key, (window, 0))
            count = local if seen_window == window else 0
    if count > limit:
        return max(1, (window + 1) * period - int(now))
    return None


# One command (EVALSHA) instead of a pipeline of three: a request's counters in the least Python and one round trip.
_OVER_THEN_HIT = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = redis.call('INCR', KEYS[2])
if count == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
return {seen, count}
"""
_scripts: dict[int, Any] = {}


def _over_then_hit_script(client: redis.Redis) -> Any:
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(_OVER_THEN_HIT)
    return script


def over_then_hit(
    *, over_bucket: str, over_limit: int, hit_bucket: str, hit_limit: int, period: int = 60
) -> tuple[int | None, int | None]:
    """`over(over_bucket)` and `hit(hit_bucket)` in one round trip to Redis: a request's two counters (the
    address's failed authentications, the caller's requests) cost one round trip instead of two. The seconds to
    wait for each, None when under its limit. When `over` says wait the request is refused, and its hit stays
    counted as a refused request's would."""
    global _outage
    client = _redis()
    if client is not None and not _outage:
        now = time.time()
        window = int(now // period)
        over_key, hit_key = _key(over_bucket, window), _key(hit_bucket, window)
        try:
            seen, count = _over_then_hit_script(client)(keys=[over_key, hit_key], args=[period * 2])
        except redis.RedisError:
            _outage = True
            log.warning("rate limiter: Redis unreachable, counting per process until it is back")
        else:
            wait = max(1, (window + 1) * period - int(now))
            return (wait if int(seen or 0) > over_limit else None), (wait if int(count) > hit_limit else None)
    # No Redis, or it is out: the two counters of this process (`hit` notices when Redis is back).
    return over(bucket=over_bucket, limit=over_limit, period=period), hit(
        bucket=hit_bucket, limit=hit_limit, period=period
    )
