"""What a compiled filter answers for one request: the rows it lets through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastebud.filters.catalog import BoolArray, Catalog, IntArray


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows a filter lets through: ``allowed`` (None: all) minus ``excluded``.

    ``index`` is ``allowed`` as sorted rows, from whichever side is smaller: ``(True, rows
    allowed)`` or ``(False, rows not allowed)``, so applying a selection costs
    O(min(allowed, not allowed)) instead of a pass over every item.
    """

    allowed: BoolArray | None
    excluded: IntArray
    catalog: Catalog
    index: tuple[bool, IntArray] | None = None

    def first(self, n: int) -> tuple[IntArray | None, IntArray]:
        """Over rows ``0..n-1`` (the version's own indexes): ``(candidates, excluded)``, where
        ``candidates`` are the sorted rows to choose from (None: all) and ``excluded`` the rows
        never to return."""
        excluded = self.excluded[self.excluded < n]
        if self.allowed is None:
            return None, excluded
        inside, rows = self.index if self.index is not None else index_form(self.allowed)
        rows = rows[: int(np.searchsorted(rows, n))]
        return (rows, excluded) if inside else (None, np.concatenate([rows, excluded]))

    def permits(self, external_ids: Sequence[str]) -> BoolArray:
        """Whether each id passes (ids known nowhere are judged as rows without metadata)."""
        rows = self.catalog.rows(external_ids)
        rows[rows < 0] = self.catalog.empty_row
        passed = np.ones(len(rows), np.bool_) if self.allowed is None else self.allowed[rows]
        return passed & ~np.isin(rows, self.excluded)


def index_form(allowed: BoolArray) -> tuple[bool, IntArray]:
    """``allowed`` as sorted rows from its smaller side: (True, allowed) or (False, the rest)."""
    if np.count_nonzero(allowed) <= len(allowed) // 2:
        return True, np.flatnonzero(allowed).astype(np.int32)
    return False, np.flatnonzero(~allowed).astype(np.int32)
