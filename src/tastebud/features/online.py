"""Where online feature values live: this process's memory (embedded) or Redis (scaled out).

Values are published as whole snapshots computed from the store's interactions (see
:mod:`tastebud.features.sync`): a value is *set*, never incremented, so publishing the same
events twice cannot count them twice. A read of many entities is one dict lookup each in
memory, or one pipelined round trip of ``HMGET`` (one per feature) to Redis.

Redis keys: ``tb:feat:{group}:v:{feature}`` (hash: entity key -> value), ``tb:feat:{group}:m``
(hash: feature -> the value of an entity with none), ``tb:feat:{group}:leader`` (which process
publishes).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt
import redis

from tastebud.errors import NotReady

Values = dict[str, float]
FloatArray = npt.NDArray[np.float64]  # last_seen holds epoch seconds: float32 is too coarse
_PUBLISH_CHUNK = 10_000


class OnlineValues(Protocol):
    """What the feature service reads from and publishes to."""

    def read(
        self, group: str, wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[list[FloatArray], dict[str, float]]:
        """Each (feature, keys) pair's values (NaN where absent), and each feature's value
        for an entity it has none for."""
        ...

    def publish(
        self, group: str, values: Mapping[str, Values], missing: Mapping[str, float],
        previous: Mapping[str, Values],
    ) -> None:  # fmt: skip
        """Replace the named features' values (``previous``: what was published before)."""
        ...

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        """Whether ``owner`` is (now) the one process that publishes for ``group``."""
        ...

    def close(self) -> None: ...


class LocalValues:
    """Snapshots in this process (embedded mode): each process computes its own."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, Values]] = {}
        self._missing: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def read(
        self, group: str, wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[list[FloatArray], dict[str, float]]:
        values, missing = self._values.get(group, {}), self._missing.get(group, {})
        out = []
        for feature, keys in wanted:
            table = values.get(feature, {})
            out.append(np.fromiter((table.get(k, math.nan) for k in keys), np.float64, len(keys)))
        return out, missing

    def publish(
        self, group: str, values: Mapping[str, Values], missing: Mapping[str, float],
        previous: Mapping[str, Values],
    ) -> None:  # fmt: skip
        with self._lock:  # readers see the old or the new dicts, each whole
            self._values[group] = {**self._values.get(group, {}), **values}
            self._missing[group] = {**self._missing.get(group, {}), **missing}

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        return True

    def close(self) -> None:
        pass


class RedisValues:
    """Snapshots in Redis, shared by every process; reads fail fast when it is down."""

    def __init__(self, url: str, *, timeout_seconds: float = 0.05) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False, health_check_interval=0,
        )  # fmt: skip

    @staticmethod
    def _key(group: str, part: str) -> str:
        return f"tb:feat:{group}:{part}"

    def read(
        self, group: str, wanted: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[list[FloatArray], dict[str, float]]:
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self._key(group, "m"))
            for feature, keys in wanted:
                pipe.hmget(self._key(group, f"v:{feature}"), list(keys))
            replies = pipe.execute()
        except redis.RedisError as exc:
            raise NotReady(f"feature store: Redis at {self.url} did not answer ({exc})") from exc
        missing = {k.decode(): float(v) for k, v in replies[0].items()}
        out = [
            np.array([math.nan if v is None else float(v) for v in reply], dtype=np.float64)
            for reply in replies[1:]
        ]
        return out, missing

    def publish(
        self, group: str, values: Mapping[str, Values], missing: Mapping[str, float],
        previous: Mapping[str, Values],
    ) -> None:  # fmt: skip
        pipe = self._redis.pipeline(transaction=False)
        for feature, table in values.items():
            key = self._key(group, f"v:{feature}")
            before = previous.get(feature)
            if before is None:  # first publication here: drop what an earlier leader left
                pipe.delete(key)
                before = {}
            changed = {k: v for k, v in table.items() if before.get(k) != v}
            gone = [k for k in before if k not in table]
            items = list(changed.items())
            for start in range(0, len(items), _PUBLISH_CHUNK):
                chunk: dict[str | bytes, float] = dict(items[start : start + _PUBLISH_CHUNK])
                pipe.hset(key, mapping=chunk)  # type: ignore[arg-type]
            for start in range(0, len(gone), _PUBLISH_CHUNK):
                pipe.hdel(key, *gone[start : start + _PUBLISH_CHUNK])
        if missing:
            pipe.hset(self._key(group, "m"), mapping=dict(missing))  # type: ignore[arg-type]
        pipe.execute()

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        key, ttl = self._key(group, "leader"), max(1, int(seconds * 1000))
        if self._redis.set(key, owner, nx=True, px=ttl):
            return True
        if self._redis.get(key) == owner.encode():
            self._redis.pexpire(key, ttl)
            return True
        return False

    def close(self) -> None:
        self._redis.close()
