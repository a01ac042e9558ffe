"""Entity keys -> rows of a growable float64 matrix: per-entity state kept in place.

Both the running aggregates of :mod:`tastebud.features.incremental` and the online tables of
:mod:`tastebud.features.online` keep one row per entity and change a few rows per sync. Keys
are found by their 64-bit hash (Polars' hash, vectorized) in a sorted array, so a warm-up
placing 200,000 keys costs milliseconds, not a Python loop; a sync inserts or removes its few
keys in place. A row absent from the index is all NaN; dropped rows are reused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import polars as pl

Rows = npt.NDArray[np.int64]
Hashes = npt.NDArray[np.uint64]


def hashes(keys: Sequence[str] | pl.Series) -> Hashes:
    """The 64-bit hashes keys are found by."""
    return series(keys).hash(seed=0).to_numpy()


def series(keys: Sequence[str] | pl.Series) -> pl.Series:
    """Keys as a Polars string series."""
    return keys if isinstance(keys, pl.Series) else pl.Series(keys, dtype=pl.String)


def _positions(ordered: Hashes, wanted: Hashes) -> Rows:
    """``searchsorted``, faster for many keys when they are sorted first (cache-friendly)."""
    if len(wanted) < 4096:
        return np.searchsorted(ordered, wanted)
    order = np.argsort(wanted)
    out = np.empty(len(wanted), np.int64)
    out[order] = np.searchsorted(ordered, wanted[order])
    return out


class Index:
    """Rows of ``values`` (``width`` columns) by entity key; not thread-safe."""

    def __init__(self, width: int) -> None:
        self._sorted: Hashes = np.zeros(0, np.uint64)  # the live keys' hashes, sorted
        self._rows: Rows = np.zeros(0, np.int64)  # the row of each
        self._hash: Hashes = np.zeros(0, np.uint64)  # row -> its key's hash
        self._keys: list[str | None] = []  # row -> its key (None when free)
        self._free: list[int] = []
        self.values = np.full((0, width), np.nan)

    def __len__(self) -> int:
        return len(self._sorted)

    def find(self, keys: Sequence[str] | pl.Series) -> Rows:
        """The rows of ``keys``; -1 where a key has none."""
        return self._find(hashes(keys))

    def _find(self, wanted: Hashes) -> Rows:
        if not len(self._sorted):
            return np.full(len(wanted), -1, np.int64)
        at = np.minimum(_positions(self._sorted, wanted), len(self._sorted) - 1)
        return np.where(self._sorted[at] == wanted, self._rows[at], -1)

    def read(self, keys: Sequence[str] | pl.Series) -> npt.NDArray[np.float64]:
        """The rows of ``keys`` (NaN rows for unknown ones), copied."""
        out = np.full((len(keys), self.values.shape[1]), np.nan)
        found = self.find(keys)
        hit = found >= 0
        out[hit] = self.values[found[hit]]
        return out

    def add(self, keys: Sequence[str] | pl.Series) -> Rows:
        """The rows of ``keys``, new keys getting rows of NaN."""
        keys = series(keys)
        wanted = hashes(keys)
        rows = self._find(wanted)
        missing = np.flatnonzero(rows < 0)
        if not len(missing):
            return rows
        fresh, first = np.unique(wanted[missing], return_index=True)  # a key given twice: once
        names = keys.gather(missing[first]).to_list()
        reused = [self._free.pop() for _ in range(min(len(fresh), len(self._free)))]
        start = len(self._keys)
        self._keys.extend(names[len(reused) :])
        for row, name in zip(reused, names, strict=False):  # the first len(reused) names
            self._keys[row] = name
        placed = np.array(reused + list(range(start, len(self._keys))), dtype=np.int64)
        self._reserve(len(self._keys))
        self._hash[placed] = fresh
        at = np.searchsorted(self._sorted, fresh)
        self._sorted = np.insert(self._sorted, at, fresh)
        self._rows = np.insert(self._rows, at, placed)
        rows[missing] = self._find(wanted[missing])
        return rows

    def drop(self, rows: Rows) -> None:
        """Forget these rows' keys (their values become NaN, the rows reusable)."""
        rows = np.unique(rows)
        rows = rows[[self._keys[row] is not None for row in rows.tolist()]]
        if not len(rows):
            return
        at = np.searchsorted(self._sorted, self._hash[rows])
        self._sorted = np.delete(self._sorted, at)
        self._rows = np.delete(self._rows, at)
        for row in rows.tolist():
            self._keys[row] = None
        self._free.extend(rows.tolist())
        self.values[rows] = np.nan

    def keys(self, rows: Rows) -> list[str]:
        """The keys of rows in use."""
        return [self._keys[row] or "" for row in rows.tolist()]

    def live(self) -> Rows:
        """Every row in use."""
        return self._rows.copy()

    def _reserve(self, rows: int) -> None:
        if rows > len(self.values):  # doubling keeps appends amortized O(1)
            size = max(64, 2 * rows)
            grown = np.full((size, self.values.shape[1]), np.nan)
            grown[: len(self.values)] = self.values
            self.values = grown
            self._hash = np.concatenate([self._hash, np.zeros(size - len(self._hash), np.uint64)])
