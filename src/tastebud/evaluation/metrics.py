"""Ranking metrics as pure functions of arrays: no state, no I/O, checkable by hand.

``ranked`` is an ``(n, >=k)`` integer array: row i holds the items recommended to query i, best
first; ``-1`` marks an empty slot (fewer rankable items than k) and never counts as a hit.
Every function returns the **mean over rows** as a float; a row's rank r is 1-based.

Two families:

- one target per row (leave-last-out): :func:`ndcg_at_k`, :func:`hit_rate_at_k`,
  :func:`mrr_at_k`; ``targets`` is an ``(n,)`` array.
- several relevant items per row (time-holdout, as the managed service reports them):
  :func:`precision_at_k`, :func:`normalized_dcg_at_k`, :func:`mean_reciprocal_rank_at_k`;
  ``relevant`` holds one array of item indexes per row.

:func:`coverage_at_k` is the share of the catalogue that appears in any top-k list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


def _top(ranked: npt.ArrayLike, k: int) -> npt.NDArray[np.int64]:
    array = np.asarray(ranked, dtype=np.int64)
    if array.ndim != 2:
        raise ValueError(f"ranked must be 2-D (n, k), got shape {array.shape}")
    if k < 1 or array.shape[1] < k:
        raise ValueError(f"k={k} needs 1 <= k <= ranked.shape[1] ({array.shape[1]})")
    if array.shape[0] == 0:
        raise ValueError("no rows to score")
    return array[:, :k]


def _discounts(k: int) -> FloatArray64:
    """1 / log2(rank + 1) for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _target_hits(ranked: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> BoolArray:
    top = _top(ranked, k)
    target = np.asarray(targets, dtype=np.int64).reshape(-1, 1)
    if len(target) != len(top):
        raise ValueError(f"{len(target)} targets for {len(top)} ranked rows")
    hits: BoolArray = (top == target) & (top >= 0)
    return hits


def ndcg_at_k(ranked: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> float:
    """Mean NDCG@k with one relevant item per row: ``1 / log2(rank + 1)`` if it is in the top k.

    With a single relevant item the ideal DCG is 1, so DCG and NDCG coincide.
    """
    hits = _target_hits(ranked, targets, k)
    return float((hits @ _discounts(k)).mean())


def hit_rate_at_k(ranked: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> float:
    """Share of rows whose target is in the top k."""
    return float(_target_hits(ranked, targets, k).any(axis=1).mean())


def mrr_at_k(ranked: npt.ArrayLike, targets: npt.ArrayLike, k: int) -> float:
    """Mean reciprocal rank of the target, 0 where it is not in the top k."""
    hits = _target_hits(ranked, targets, k)
    return float((hits @ (1.0 / np.arange(1, k + 1))).mean())


def coverage_at_k(ranked: npt.ArrayLike, n_items: int, k: int | None = None) -> float:
    """Share of the ``n_items`` catalogue recommended in at least one top-k list."""
    array = np.asarray(ranked, dtype=np.int64)
    top = _top(array, array.shape[1] if k is None else k)
    shown = np.unique(top[top >= 0])
    return float(len(shown) / n_items) if n_items > 0 else 0.0


def relevance_hits(ranked: npt.ArrayLike, relevant: Sequence[npt.ArrayLike], k: int) -> BoolArray:
    """``(n, k)`` booleans: whether ``ranked[i, j]`` is in ``relevant[i]``."""
    top = _top(ranked, k)
    if len(relevant) != len(top):
        raise ValueError(f"{len(relevant)} relevant sets for {len(top)} ranked rows")
    sets = [np.asarray(items, dtype=np.int64).ravel() for items in relevant]
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    items = np.concatenate(sets) if sets else np.zeros(0, np.int64)
    width = int(max(top.max(initial=0), items.max(initial=0))) + 1
    # one integer key per (row, item) turns set membership into a single vectorized isin
    keys = np.arange(len(top)).reshape(-1, 1) * width + top
    return np.isin(keys, rows * width + items) & (top >= 0)


def _relevant_counts(relevant: Sequence[npt.ArrayLike]) -> npt.NDArray[np.int64]:
    return np.array([len(np.unique(np.asarray(items))) for items in relevant], dtype=np.int64)


def precision_at_k(ranked: npt.ArrayLike, relevant: Sequence[npt.ArrayLike], k: int) -> float:
    """Mean over rows of (relevant items in the top k) / k."""
    return float(relevance_hits(ranked, relevant, k).sum(axis=1).mean() / k)


def normalized_dcg_at_k(ranked: npt.ArrayLike, relevant: Sequence[npt.ArrayLike], k: int) -> float:
    """Mean NDCG@k with binary relevance: DCG = sum of ``1 / log2(rank + 1)`` over hits,
    divided by the ideal DCG of ``min(len(relevant), k)`` hits at the top. Rows with no
    relevant item score 0."""
    discounts = _discounts(k)
    dcg = relevance_hits(ranked, relevant, k) @ discounts
    ideal_hits = np.minimum(_relevant_counts(relevant), k)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_hits]
    ndcg = np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)
    return float(ndcg.mean())


def mean_reciprocal_rank_at_k(
    ranked: npt.ArrayLike, relevant: Sequence[npt.ArrayLike], k: int
) -> float:
    """Mean of 1 / (rank of the first relevant item in the top k), 0 where there is none."""
    hits = relevance_hits(ranked, relevant, k)
    first = hits.argmax(axis=1)
    reciprocal = np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)
    return float(reciprocal.mean())
