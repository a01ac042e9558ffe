"""Where online feature values live: this process's memory (embedded) or Redis (scaled out).

Values come from the store's interactions (see :mod:`tastebud.features.sync`): each sync sets
the values of the entities whose events entered or left a window, and a value is *set*, never
incremented, so publishing the same events twice cannot count them twice. Features are grouped
by the kind of entity that keys them (``item``, ``user``, ``user_item``, ``field:HOST`` …): one
:class:`Table` per kind holds a row of float64 values per entity, changed in place.

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
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
import redis

from tastebud.errors import NotReady
from tastebud.features.index import Index, series

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


Change = tuple[Sequence[str] | pl.Series, npt.NDArray[np.float64], bool]  # keys, values, all?


class Table:
    """One kind's values, changed in place by each sync: a row of float64 per entity (the
    features in declaration order; NaN where one has no value). Thread-safe: a reader sees a
    sync's changes to the table all or none. It remembers the keys changed since
    :meth:`drain`, which is what a publication to Redis writes."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        self._index = Index(len(self.names))
        self._lock = threading.Lock()
        self._changed: set[str] = set()

    def __len__(self) -> int:
        return len(self._index)

    def update(self, columns: Mapping[int, Change]) -> dict[int, int]:
        """Set values by key, column by column (a change that replaces all also clears the
        keys it lacks); returns how many values of each column differ from before."""
        with self._lock:
            return {j: self._set(j, *change) for j, change in columns.items()}

    def _set(
        self, column: int, keys: Sequence[str] | pl.Series, values: FloatMatrix, whole: bool
    ) -> int:
        index = self._index
        keys = series(keys)
        rows = index.find(keys)
        new = (rows < 0) & ~np.isnan(values)  # no row for an entity that has no value
        if new.any():
            rows[new] = index.add(keys.gather(np.flatnonzero(new)))
        kept = rows >= 0
        rows, values = rows[kept], values[kept]
        if whole:
            before = index.values[:, column].copy()
            index.values[:, column] = np.nan
            index.values[rows, column] = values
            after = index.values[:, column]
            touched = np.flatnonzero(~_same(before, after))
        else:
            before = index.values[rows, column].copy()
            index.values[rows, column] = values
            touched = np.unique(rows[~_same(before, values)])
        self._changed.update(index.keys(touched))
        index.drop(touched[np.isnan(index.values[touched]).all(axis=1)])
        return len(touched)

    def rows(self, keys: Sequence[str]) -> FloatMatrix:
        """The rows of these keys (NaN rows for unknown ones)."""
        with self._lock:
            return self._index.read(keys)

    def drain(self, *, everything: bool = False) -> list[str]:
        """The keys changed since the last call (all keys when ``everything``)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            return self._index.keys(self._index.live()) if everything else list(changed)


def _same(a: FloatMatrix, b: FloatMatrix) -> npt.NDArray[np.bool_]:
    same: npt.NDArray[np.bool_] = (a == b) | (np.isnan(a) & np.isnan(b))
    return same


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
        *, everything: bool,
    ) -> None:  # fmt: skip
        """Make the tables' changes since the last publication readable (``everything``: this
        process had not published them before)."""
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
            out[kind] = (table.rows(keys) if table is not None
                         else np.full((len(keys), width), np.nan))  # fmt: skip
        return out, self._missing.get(group, {})

    def publish(
        self, group: str, version: int, tables: Mapping[str, Table], missing: Mapping[str, float],
        *, everything: bool,
    ) -> None:  # fmt: skip
        with self._lock:  # readers read the tables themselves, changed in place
            self._tables[group] = dict(tables)
            self._missing[group] = {**self._missing.get(group, {}), **missing}
        for table in tables.values():
            table.drain()  # nothing to write anywhere

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
        *, everything: bool,
    ) -> None:  # fmt: skip
        pipe = self._redis.pipeline(transaction=False)
        for kind, table in tables.items():
            key = self._key(group, version, kind)
            if everything:  # first publication here: drop what an earlier leader left
                pipe.delete(key)
            changed = table.drain(everything=everything)
            for start in range(0, len(changed), _PUBLISH_CHUNK):
                names = changed[start : start + _PUBLISH_CHUNK]
                rows = table.rows(names)
                empty = set(np.flatnonzero(np.isnan(rows).all(axis=1)).tolist())
                kept: dict[Any, bytes] = {
                    name: rows[i].tobytes() for i, name in enumerate(names) if i not in empty
                }
                if kept:
                    pipe.hset(key, mapping=kept)
                if empty:  # entities left with no value
                    pipe.hdel(key, *(names[i] for i in sorted(empty)))
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
