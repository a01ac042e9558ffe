"""Per-token rate limits: a token bucket per bearer token, in this process or shared in Redis.

With several workers (or replicas) a limit kept per process lets a client N times its rate.
:class:`SharedTokenBuckets` keeps each token's bucket in Redis instead, as GCRA (the generic cell
rate algorithm: one number per token, the time its bucket is next full, updated by one Lua
script on Redis's own clock), so every process takes from the same bucket. While Redis is down
each process falls back to its own buckets: the limit still holds, per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, Protocol

from tastebud.breaker import Breaker
from tastebud.serving.cache import REDIS_TIMEOUT_SECONDS  # then this process's bucket decides

_MAX_BUCKETS = 100_000
# KEYS[1]: the token's key; ARGV[1]: seconds between requests (1 / rate); ARGV[2]: burst.
# Returns the seconds to wait ("0": allowed, and counted), as a string (Lua numbers would be
# truncated to integers on the way out).
_GCRA = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local full_at = tonumber(redis.call('GET', KEYS[1]) or '0')
if full_at < now then full_at = now end
local wait = full_at - tolerance - now
if wait > 0 then return tostring(wait) end
full_at = full_at + interval
redis.call('SET', KEYS[1], tostring(full_at), 'PX', math.ceil((full_at - now) * 1000) + 1)
return '0'
"""


class RateLimiter(Protocol):
    rate: float

    async def wait(self, key: str) -> float:
        """0 when ``key`` may make a request now (it is counted); else seconds to wait."""
        ...


class TokenBuckets:
    """A token bucket per bearer token: ``rate`` requests/s on average, bursts of ``burst``."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # token -> (tokens left, updated at)

    def take(self, key: str) -> float:
        """0 when ``key`` may make a request now (a token is taken); else seconds to wait."""
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate)
        if tokens >= 1.0:
            self._set(key, tokens - 1.0, now)
            return 0.0
        self._set(key, tokens, now)
        return (1.0 - tokens) / self.rate

    async def wait(self, key: str) -> float:
        """:meth:`take`, as :class:`RateLimiter` asks."""
        return self.take(key)

    def _set(self, key: str, tokens: float, now: float) -> None:
        # Unverified tokens make buckets too (checking them here would cost a lookup): bounded.
        if len(self._buckets) >= _MAX_BUCKETS and key not in self._buckets:
            self._buckets.clear()
        self._buckets[key] = (tokens, now)


class SharedTokenBuckets:
    """The buckets of ``local``'s rate and burst, kept in Redis at ``url`` for every process;
    ``local`` decides while Redis is down."""

    def __init__(self, url: str, local: TokenBuckets, *, breaker: Breaker | None = None) -> None:
        self.url = url
        self.local = local
        self.rate = local.rate
        self.breaker = breaker if breaker is not None else Breaker("redis")
        self._args = (repr(1.0 / local.rate), repr(local.burst))
        self._client: tuple[asyncio.AbstractEventLoop, Any] | None = None

    async def wait(self, key: str) -> float:
        if self.breaker.available():
            import redis

            try:
                script = self._script()
                wait = float(await script(keys=[_redis_key(key)], args=self._args))
            except (redis.RedisError, OSError) as error:
                self.breaker.failed(error)
            else:
                self.breaker.succeeded()
                return wait
        return self.local.take(key)

    def _script(self) -> Any:
        """The GCRA script on a client of the running event loop (one per loop: an asyncio
        connection belongs to the loop that made it)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            import redis.asyncio
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS, retry=Retry(NoBackoff(), 0),
            )  # fmt: skip
            self._client = (loop, client.register_script(_GCRA))
        return self._client[1]


def _redis_key(token: str) -> str:
    """The token's bucket key: a digest, never the token itself."""
    return "tb:rl:" + hashlib.sha256(token.encode()).hexdigest()[:32]
