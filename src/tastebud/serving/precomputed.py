"""Precomputed answers in Redis: what batch jobs write, and what campaigns fall back to.

Key layout, readable by any Redis client without tastebud: ``{key_prefix}{id}`` (``recs:u1``
with the default prefix; ``id`` is a user id, or an item id for similar items) holds one JSON
object, the batch output's ``output`` plus provenance::

    GET recs:u1
    {"recommendedItems": ["i7", "i2"], "scores": [0.93, 0.41],
     "solutionVersionId": "sv-…", "createdAt": 1765000000}

:class:`PrecomputedWriter` sends each batch of entries in one pipeline (one round trip);
:class:`PrecomputedReader` answers from it with short timeouts, and after a failure stops asking
Redis for a moment, so an outage costs a request at most one timeout, not a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from tastebud.errors import InvalidInput, NotReady
from tastebud.serving.recommend import Scored

_log = logging.getLogger(__name__)

SCHEMES = ("redis", "rediss")
DEFAULT_KEY_PREFIX = "recs:"
DEFAULT_OVERLOAD_SHARE = 0.8
RESERVED_PREFIX = "tb:"  # tastebud's own cache keys (serving/cache.py)
MAX_PREFIX_LENGTH = 200
READ_TIMEOUT_SECONDS = 0.2  # connect and read: a GET takes well under a millisecond
DOWN_SECONDS = 1.0  # after a failure, reads fail at once for this long
WRITE_TIMEOUT_SECONDS = 30.0  # a batch job's pipeline of thousands of SETs


@dataclass(frozen=True, slots=True)
class PrecomputedTarget:
    """Where precomputed answers go: a Redis URL, a key prefix and an optional TTL."""

    url: str  # redis://127.0.0.1:6379/0
    key_prefix: str = DEFAULT_KEY_PREFIX
    ttl_seconds: int | None = None

    @classmethod
    def parse(
        cls, url: str, *, key_prefix: str = DEFAULT_KEY_PREFIX, ttl_seconds: int | None = None
    ) -> PrecomputedTarget:
        """A checked target.

        Raises:
            InvalidInput: not a ``redis://`` or ``rediss://`` URL, a bad port or database, a
                prefix that is too long or inside tastebud's own ``tb:`` keys, a TTL below 1.
        """
        check_url(url)
        check_prefix(key_prefix)
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or ttl_seconds < 1):
            raise InvalidInput(f"ttl_seconds: expected a whole number of seconds >= 1, "
                               f"got {ttl_seconds!r}")  # fmt: skip
        return cls(url, key_prefix, ttl_seconds)

    def key(self, id: str) -> str:
        return self.key_prefix + id


def check_url(url: str) -> str:
    """``url`` when it names a Redis server (``redis://[:password@]host[:port][/db]``)."""
    shown = redacted(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # checked when read
    except (ValueError, TypeError, AttributeError):
        parts = None
    if parts is None or parts.scheme not in SCHEMES or not parts.hostname:
        raise InvalidInput(f"precomputed url: expected redis://host[:port][/db] or "
                           f"rediss://…, got {shown!r}")  # fmt: skip
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise InvalidInput(f"precomputed url: the database must be a number, got {shown!r}")
    return url


def check_prefix(key_prefix: str) -> str:
    if not isinstance(key_prefix, str) or len(key_prefix) > MAX_PREFIX_LENGTH:
        raise InvalidInput(f"key_prefix: expected at most {MAX_PREFIX_LENGTH} characters, "
                           f"got {key_prefix!r}")  # fmt: skip
    if key_prefix.startswith(RESERVED_PREFIX):
        raise InvalidInput(f"key_prefix: {RESERVED_PREFIX!r} keys are tastebud's own cache, "
                           f"got {key_prefix!r}")  # fmt: skip
    return key_prefix


def redacted(url: str) -> str:
    """``url`` with its password hidden (for messages and logs)."""
    if not isinstance(url, str) or "@" not in url:
        return str(url)
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


class PrecomputedConfig(BaseModel):
    """A campaign's precomputed source (its ``precomputed`` setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="redis://host[:port][/db] holding the batch job's answers")
    key_prefix: str = Field(
        default=DEFAULT_KEY_PREFIX, description="keys are key_prefix + user id (or item id)"
    )
    overload_share: float | None = Field(
        default=DEFAULT_OVERLOAD_SHARE, gt=0.0, le=1.0,
        description="answer from Redis without model work while this share of the process's "
        "max_inflight_requests is in flight (the request included); None: never for load",
    )  # fmt: skip

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        try:
            return check_url(url)
        except InvalidInput as error:  # the message as it is ("Value error, …" otherwise)
            raise PydanticCustomError("precomputed_url", error.message) from None

    @field_validator("key_prefix")
    @classmethod
    def _prefix(cls, key_prefix: str) -> str:
        try:
            return check_prefix(key_prefix)
        except InvalidInput as error:
            raise PydanticCustomError("precomputed_key_prefix", error.message) from None


def _client(url: str, *, timeout: float) -> Any:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # No retries: a reader falls back instead, and a writer's job reports the failure.
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


class PrecomputedWriter:
    """Writes answers under ``target``: one pipelined round trip per :meth:`write`.

    A context manager; one writer may be shared by the threads of one job (writes take turns).
    """

    def __init__(self, target: PrecomputedTarget) -> None:
        self.target = target
        self._redis: Any = _client(target.url, timeout=WRITE_TIMEOUT_SECONDS)
        self._lock = threading.Lock()

    def write(self, entries: Sequence[tuple[str, Mapping[str, Any]]]) -> int:
        """``SET key_prefix+id JSON [EX ttl]`` for each ``(id, answer)``; returns how many.

        Raises:
            InvalidInput: an empty or non-string id, or an answer JSON cannot hold (nothing of
                the batch is written).
            NotReady: Redis could not be reached or refused the writes.
        """
        encoded = [(self.target.key(_checked_id(id_)), _encoded(id_, answer))
                   for id_, answer in entries]  # fmt: skip
        if not encoded:
            return 0
        import redis

        ttl = self.target.ttl_seconds
        try:
            with self._lock, self._redis.pipeline(transaction=False) as pipe:
                for key, value in encoded:
                    pipe.set(key, value, ex=ttl)
                pipe.execute()
        except redis.RedisError as error:
            raise NotReady(f"precomputed target {redacted(self.target.url)}: {error}") from error
        return len(encoded)

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> PrecomputedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checked_id(id_: object) -> str:
    if not isinstance(id_, str) or not id_:
        raise InvalidInput(f"precomputed entry id: expected a non-empty string, got {id_!r}")
    return id_


def _encoded(id_: str, answer: Mapping[str, Any]) -> bytes:
    try:  # numpy scores (float32 arrays or scalars) are welcome as they are
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as error:
        raise InvalidInput(f"precomputed entry {id_!r}: not JSON-serializable ({error})") from None


class PrecomputedReader:
    """Reads answers from one Redis URL; connected on first use, thread-safe.

    Each read waits at most ``READ_TIMEOUT_SECONDS``; after a failure, reads raise at once for
    ``DOWN_SECONDS`` (then one request tries Redis again), so an outage cannot hang requests.
    """

    def __init__(self, url: str) -> None:
        self.url = check_url(url)
        self._redis: Any = None
        self._down_until = 0.0
        self._lock = threading.Lock()

    def get(self, key_prefix: str, id: str) -> dict[str, Any] | None:
        """The answer stored for ``id``; None when there is none (or it is not a JSON object).

        Raises:
            NotReady: Redis is unreachable or timed out, now or within the last second.
        """
        import redis

        if time.monotonic() < self._down_until:
            raise NotReady(f"precomputed source {redacted(self.url)}: unavailable, retrying soon")
        try:
            value = self._client().get(key_prefix + id)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._down_until = time.monotonic() + DOWN_SECONDS
            raise NotReady(f"precomputed source {redacted(self.url)}: {error}") from error
        except redis.ResponseError:  # e.g. WRONGTYPE: that key is not a string
            value = b""
        if value is None:
            return None
        try:
            answer = orjson.loads(value)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            _log.warning("precomputed entry unreadable key=%s", key_prefix + id)
            return None
        return answer

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()

    def _client(self) -> Any:
        if self._redis is None:
            with self._lock:
                if self._redis is None:
                    self._redis = _client(self.url, timeout=READ_TIMEOUT_SECONDS)
        return self._redis


class PrecomputedSources:
    """One :class:`PrecomputedReader` per URL, made on first use (campaigns share them)."""

    def __init__(self) -> None:
        self._readers: dict[str, PrecomputedReader] = {}
        self._lock = threading.Lock()

    def reader(self, url: str) -> PrecomputedReader:
        reader = self._readers.get(url)
        if reader is None:
            with self._lock:
                reader = self._readers.setdefault(url, PrecomputedReader(url))
        return reader


def stored_items(answer: Mapping[str, Any]) -> list[Scored] | None:
    """A stored answer's ``recommendedItems`` with their ``scores`` (None where missing); None
    when it has no list of item ids."""
    items = answer.get("recommendedItems")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return None
    scores = answer.get("scores")
    if not isinstance(scores, list) or len(scores) != len(items):
        scores = [None] * len(items)
    return [Scored(item, float(score) if isinstance(score, int | float) else None)
            for item, score in zip(items, scores, strict=True)]  # fmt: skip
