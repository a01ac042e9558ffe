"""Candidates: each base recipe's scores for a batch of queries, its top-N among the items a
user may be shown, and the union of those top-N lists.

Seen items are excluded here as serving and evaluation exclude them (``exclude_seen``), so the
candidates the trees learn from are the ones they will be asked to order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tastebud.recipes.base import FloatArray, IntArray, Model, Query


@dataclass(frozen=True, slots=True)
class BaseScores:
    """What every base says about a batch of queries.

    ``scores[name]``: (Q x I) raw scores (NaN became -inf); ``ranks[name]``: (Q x I) 0-based
    position in the base's top-N of eligible items, NaN outside it; ``best[name]``: (Q,) the best
    eligible score (NaN when nothing is eligible); ``eligible``: (Q x I) what may be a candidate.
    """

    scores: dict[str, FloatArray]
    ranks: dict[str, FloatArray]
    best: dict[str, FloatArray]
    eligible: npt.NDArray[np.bool_]

    def in_top(self) -> npt.NDArray[np.bool_]:
        """(Q x I): the union of every base's top-N."""
        union = np.zeros(self.eligible.shape, dtype=np.bool_)
        for ranks in self.ranks.values():
            union |= ~np.isnan(ranks)
        return union


def seen_mask(query: Query, n_items: int) -> npt.NDArray[np.bool_]:
    """(Q x I): items in each query's history (items the model never saw are dropped)."""
    rows = np.repeat(np.arange(len(query)), np.diff(query.history_indptr))
    items = query.history_items
    keep = (items >= 0) & (items < n_items)
    mask = np.zeros((len(query), n_items), dtype=np.bool_)
    mask[rows[keep], items[keep]] = True
    return mask


def score_bases(
    bases: Mapping[str, Model], query: Query, n_items: int, *, top_n: int, exclude_seen: bool
) -> BaseScores:
    """Score ``query`` with every base and take each one's top ``top_n`` eligible items."""
    eligible = ~seen_mask(query, n_items) if exclude_seen else np.ones((len(query), n_items), bool)
    scores, ranks, best = {}, {}, {}
    for name, model in bases.items():
        row = np.array(model.score(query), dtype=np.float32)  # a writable copy
        if row.shape != (len(query), n_items):
            raise ValueError(f"base {name!r} scored {row.shape}, expected {(len(query), n_items)}")
        row[np.isnan(row)] = -np.inf
        scores[name] = row
        ranks[name], best[name] = _top_ranks(np.where(eligible, row, -np.inf), top_n)
    return BaseScores(scores, ranks, best, eligible)


def _top_ranks(masked: FloatArray, top_n: int) -> tuple[FloatArray, FloatArray]:
    """(Q x I) rank within each row's top ``top_n`` finite scores (ties: lower index first),
    NaN elsewhere; and each row's best finite score (NaN: none)."""
    n_rows, n_items = masked.shape
    depth = min(top_n, n_items)
    ranks = np.full(masked.shape, np.nan, dtype=np.float32)
    best = np.full(n_rows, np.nan, dtype=np.float32)
    if depth == 0 or n_rows == 0:
        return ranks, best
    top = np.argpartition(-masked, depth - 1, axis=1)[:, :depth]
    values = np.take_along_axis(masked, top, axis=1)
    order = np.lexsort((top, -values), axis=1)  # best first, ties by index
    top = np.take_along_axis(top, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    finite = np.isfinite(values)
    rows = np.repeat(np.arange(n_rows), depth).reshape(n_rows, depth)
    positions = np.broadcast_to(np.arange(depth, dtype=np.float32), (n_rows, depth))
    ranks[rows[finite], top[finite]] = positions[finite]
    has = finite[:, 0]
    best[has] = values[has, 0]
    return ranks, best


def candidate_pairs(
    scored: BaseScores, extra: npt.NDArray[np.bool_] | None = None
) -> tuple[IntArray, IntArray]:
    """(query rows, items) of the union of the bases' top-N (plus ``extra``, e.g. impressions,
    where eligible), ordered by row then item."""
    union = scored.in_top()
    if extra is not None:
        union |= extra & scored.eligible
    rows, items = np.nonzero(union)
    return rows.astype(np.int32), items.astype(np.int32)
