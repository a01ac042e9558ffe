"""Entity keys -> rows of a growable float64 matrix: per-entity state kept in place.

Both the running aggregates of :mod:`tastebud.features.incremental` and the online tables of
:mod:`tastebud.features.online` keep one row per entity and change a few rows per sync, so a
row is found through a dict (a few hundred lookups per sync cost microseconds) rather than by
rebuilding a sorted array. A row absent from the index is all NaN; dropped rows are reused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Slots = npt.NDArray[np.int64]


class Index:
    """Rows of ``values`` (``width`` columns) by entity key; not thread-safe."""

    def __init__(self, width: int) -> None:
        self._row: dict[str, int] = {}
        self._keys: list[str] = []  # row -> its key ("" when free)
        self._free: list[int] = []
        self.values = np.full((0, width), np.nan)

    def __len__(self) -> int:
        return len(self._row)

    def find(self, keys: Sequence[str]) -> Slots:
        """The rows of ``keys``; -1 where a key has none."""
        get = self._row.get
        return np.fromiter((get(key, -1) for key in keys), np.int64, len(keys))

    def read(self, keys: Sequence[str]) -> npt.NDArray[np.float64]:
        """The rows of ``keys`` (NaN rows for unknown ones), copied."""
        out = np.full((len(keys), self.values.shape[1]), np.nan)
        found = self.find(keys)
        hit = found >= 0
        out[hit] = self.values[found[hit]]
        return out

    def add(self, keys: Sequence[str]) -> Slots:
        """The rows of ``keys``, new keys getting rows of NaN."""
        rows = self.find(keys)
        for i in np.flatnonzero(rows < 0).tolist():
            key = keys[i]
            row = self._row.get(key)  # a key given twice: added by its first occurrence
            if row is None:
                row = self._free.pop() if self._free else self._grow()
                self._row[key] = row
                self._keys[row] = key
            rows[i] = row
        return rows

    def drop(self, rows: Slots) -> None:
        """Forget these rows' keys (their values become NaN, the rows reusable)."""
        for row in np.unique(rows).tolist():
            if self._keys[row]:
                del self._row[self._keys[row]]
                self._keys[row] = ""
                self._free.append(row)
        self.values[rows] = np.nan

    def keys(self, rows: Slots) -> list[str]:
        return [self._keys[row] for row in rows.tolist()]

    def live(self) -> Slots:
        """Every row in use."""
        return np.fromiter(self._row.values(), np.int64, len(self._row))

    def _grow(self) -> int:
        row = len(self._keys)
        if row == len(self.values):  # doubling keeps appends amortized O(1)
            grown = np.full((max(64, 2 * row), self.values.shape[1]), np.nan)
            grown[:row] = self.values
            self.values = grown
        self._keys.append("")
        return row
