"""Where online feature values live: this process's memory (embedded) or Redis (scaled out).

Values are published as whole snapshots computed from the store's interactions (see
:mod:`tastebud.features.sync`): a value is *set*, never incremented, so publishing the same
events twice cannot count them twice. Features are grouped by the kind of entity that keys them
(``item``, ``user``, ``user_item``, ``field:HOST`` …): one :class:`Table` per kind holds a row
of float64 values per entity, found by the 64-bit hash of its key.

In Redis a kind is one hash, ``tb:feat:{group}:{version}:{kind}``: entity key -> its row as
packed float64 (declaration order). A read of many entities is one ``EVALSHA`` whose script
does the ``HMGET`` s and returns each kind's rows as a single string: one round trip, and no
per-value parsing in Python. ``tb:feat:{group}:{version}:m`` holds each feature's value for an
entity with none; ``tb:feat:{group}:leader`` names the process that publishes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
import redis

from tastebud.errors import NotReady

FloatMatrix = npt.NDArray[np.float64]  # last_seen holds epoch seconds: float32 is too coarse
_PUBLISH_CHUNK = 5_000
_READ_SCRIPT = """
local out = {redis.call('HGETALL', KEYS[1])}
for k = 2, #KEYS do
  local n = tonumber(ARGV[3 * k - 5]); local filler = ARGV[3 * k - 4]
  local fields = {}
  for field in string.gmatch(ARGV[3 * k - 3], '[^\\30]+') do fields[#fields + 1] = field end
  local rows = {}
  if n > 0 then
    local found = redis.call('HMGET', KEYS[k], unpack(fields))
    for i = 1, n do rows[i] = found[i] or filler end
  end
  out[#out + 1] = table.concat(rows)
end
return out
"""
# Between the keys of one argument: one argument per kind, not one per key, because
# encoding thousands of arguments costs redis-py more than the whole read costs Redis.
KEY_SEPARATOR = "\x1e"


def hashes(keys: Sequence[str] | pl.Series) -> npt.NDArray[np.uint64]:
    """The 64-bit hashes entity keys are found by (Polars' hash, the same for every process
    running this version)."""
    series = keys if isinstance(keys, pl.Series) else pl.Series(keys, dtype=pl.String)
    return series.hash(seed=0).to_numpy()


@dataclass(frozen=True)
class Table:
    """One kind's values: ``keys`` sorted by ``hashes``, ``values[i]`` the row of ``keys[i]``."""

    names: tuple[str, ...]
    keys: pl.Series
    hashes: npt.NDArray[np.uint64]
    values: FloatMatrix

    @classmethod
    def build(
        cls, names: Sequence[str], frames: Mapping[str, pl.DataFrame], *, with_keys: bool = True
    ) -> Table:
        """From each feature's ``k``, ``v`` frame (features without one are NaN); ``with_keys``
        keeps the key strings (needed to publish to Redis)."""
        parts = [(j, frames[n]) for j, n in enumerate(names) if n in frames]
        keyed = [(j, frame, hashes(frame["k"])) for j, frame in parts]
        if not keyed:
            empty = np.zeros(0, dtype=np.uint64)
            return cls(tuple(names), pl.Series("k", [], pl.String), empty,
                       np.zeros((0, len(names))))  # fmt: skip
        every = np.concatenate([h for _, _, h in keyed])
        unique, first = np.unique(every, return_index=True)
        matrix = np.full((len(unique), len(names)), np.nan)
        for j, frame, frame_hashes in keyed:
            matrix[np.searchsorted(unique, frame_hashes), j] = (
                frame["v"].cast(pl.Float64).fill_null(np.nan).to_numpy()
            )
        keys = pl.Series("k", [], pl.String)
        if with_keys:
            keys = pl.concat([frame["k"] for _, frame, _ in keyed]).gather(first)
        return cls(tuple(names), keys, unique, matrix)

    def rows(self, key_hashes: npt.NDArray[np.uint64]) -> FloatMatrix:
        """The rows of these keys (NaN rows for unknown ones)."""
        out = np.full((len(key_hashes), len(self.names)), np.nan)
        if not len(self.hashes):
            return out
        position = np.minimum(np.searchsorted(self.hashes, key_hashes), len(self.hashes) - 1)
        found = self.hashes[position] == key_hashes
        out[found] = self.values[position[found]]
        return out


class OnlineValues(Protocol):
    """What the feature service reads from and publishes to."""

    def read(
        self, group: str, version: int, wanted: Mapping[str, tuple[list[str], int]]
    ) -> tuple[dict[str, FloatMatrix], dict[str, float]]:
        """Each kind's rows for its keys (``wanted``: kind -> (keys, features of the kind)),
        and each feature's value for an entity it has none for."""
        ...

    def publish(
        self, group: str, version: int, tables: Mapping[str, Table], missing: Mapping[str, float],
        previous: Mapping[str, Table],
    ) -> None:  # fmt: skip
        """Replace the kinds' tables (``previous``: what this process published before)."""
        ...

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        """Whether ``owner`` is (now) the one process that publishes for ``group``."""
        ...

    def close(self) -> None: ...


class LocalValues:
    """Tables in this process (embedded mode): each process computes its own."""

    def __init__(self) -> None:
        self._tables: dict[str, dict[str, Table]] = {}
        self._missing: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def read(
        self, group: str, version: int, wanted: Mapping[str, tuple[list[str], int]]
    ) -> tuple[dict[str, FloatMatrix], dict[str, float]]:
        tables = self._tables.get(group, {})
        out = {}
        for kind, (keys, width) in wanted.items():
            table = tables.get(kind)
            out[kind] = (table.rows(hashes(keys)) if table is not None
                         else np.full((len(keys), width), np.nan))  # fmt: skip
        return out, self._missing.get(group, {})

    def publish(
        self, group: str, version: int, tables: Mapping[str, Table], missing: Mapping[str, float],
        previous: Mapping[str, Table],
    ) -> None:  # fmt: skip
        with self._lock:  # readers see the old or the new tables, each whole
            self._tables[group] = {**self._tables.get(group, {}), **tables}
            self._missing[group] = {**self._missing.get(group, {}), **missing}

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        return True

    def close(self) -> None:
        pass


class RedisValues:
    """Tables in Redis, shared by every process; reads fail fast when it is down."""

    def __init__(self, url: str, *, timeout_seconds: float = 0.05) -> None:
        self.url = url
        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds,
            retry_on_timeout=False, health_check_interval=0,
        )  # fmt: skip
        self._read = self._redis.register_script(_READ_SCRIPT)

    @staticmethod
    def _key(group: str, version: int, part: str) -> str:
        return f"tb:feat:{group}:{version}:{part}"

    def read(
        self, group: str, version: int, wanted: Mapping[str, tuple[list[str], int]]
    ) -> tuple[dict[str, FloatMatrix], dict[str, float]]:
        keys: list[str] = [self._key(group, version, "m")]
        args: list[bytes | str | int] = []
        for kind, (entities, width) in wanted.items():
            keys.append(self._key(group, version, kind))
            args += [len(entities), np.full(width, np.nan).tobytes(), KEY_SEPARATOR.join(entities)]
        try:
            replies = self._read(keys=keys, args=args)
        except redis.RedisError as exc:
            raise NotReady(f"feature store: Redis at {self.url} did not answer ({exc})") from exc
        flat = replies[0]
        missing = {flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)}
        out = {}
        for (kind, (entities, width)), blob in zip(wanted.items(), replies[1:], strict=True):
            out[kind] = np.frombuffer(blob, dtype=np.float64).reshape(len(entities), width)
        return out, missing

    def publish(
        self, group: str, version: int, tables: Mapping[str, Table], missing: Mapping[str, float],
        previous: Mapping[str, Table],
    ) -> None:  # fmt: skip
        pipe = self._redis.pipeline(transaction=False)
        for kind, table in tables.items():
            key = self._key(group, version, kind)
            before = previous.get(kind)
            if before is None:  # first publication here: drop what an earlier leader left
                pipe.delete(key)
            changed, gone = _diff(table, before)
            for start in range(0, len(changed), _PUBLISH_CHUNK):
                part = changed[start : start + _PUBLISH_CHUNK]
                names = table.keys.gather(part).to_list()
                rows = {
                    name: table.values[i].tobytes() for name, i in zip(names, part, strict=True)
                }
                pipe.hset(key, mapping=rows)
            for start in range(0, len(gone), _PUBLISH_CHUNK):
                pipe.hdel(key, *gone[start : start + _PUBLISH_CHUNK])
        if missing:
            pipe.hset(self._key(group, version, "m"),
                      mapping={k: json.dumps(v) for k, v in missing.items()})  # fmt: skip
        pipe.execute()

    def lead(self, group: str, owner: str, seconds: float) -> bool:
        key, ttl = f"tb:feat:{group}:leader", max(1, int(seconds * 1000))
        if self._redis.set(key, owner, nx=True, px=ttl):
            return True
        if self._redis.get(key) == owner.encode():
            self._redis.pexpire(key, ttl)
            return True
        return False

    def close(self) -> None:
        self._redis.close()


def _diff(table: Table, before: Table | None) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Rows of ``table`` that are new or changed since ``before``, and keys it no longer has."""
    if before is None or not len(before.hashes):
        return np.arange(len(table.hashes)), []
    if before.names != table.names:
        return np.arange(len(table.hashes)), []
    position = np.minimum(np.searchsorted(before.hashes, table.hashes), len(before.hashes) - 1)
    found = before.hashes[position] == table.hashes
    old = before.values[position]
    same = found & np.all((old == table.values) | (np.isnan(old) & np.isnan(table.values)), axis=1)
    kept = np.zeros(len(before.hashes), dtype=bool)
    kept[position[found]] = True
    return np.flatnonzero(~same), before.keys.filter(pl.Series(~kept)).to_list()
