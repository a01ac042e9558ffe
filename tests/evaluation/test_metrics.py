"""Metrics against values worked out by hand (the arithmetic is written next to each)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tastebud.evaluation.metrics import (
    coverage_at_k,
    hit_rate_at_k,
    mean_reciprocal_rank_at_k,
    mrr_at_k,
    ndcg_at_k,
    normalized_dcg_at_k,
    precision_at_k,
    relevance_hits,
)

# one target per row: row 0 finds its target at rank 2, row 1 at rank 3, row 2 misses
RANKED = np.array([[3, 1, 2], [0, 5, 4], [7, 8, 9]])
TARGETS = np.array([1, 4, 6])


def test_ndcg_single_target() -> None:
    # ranks 2 and 3 give 1/log2(3) and 1/log2(4) = 0.5; the miss gives 0
    assert ndcg_at_k(RANKED, TARGETS, 3) == pytest.approx((1 / math.log2(3) + 0.5 + 0) / 3)
    # at k=2 only row 0 counts
    assert ndcg_at_k(RANKED, TARGETS, 2) == pytest.approx((1 / math.log2(3)) / 3)
    assert ndcg_at_k(RANKED, TARGETS, 1) == 0.0


def test_hit_rate_and_mrr_single_target() -> None:
    assert hit_rate_at_k(RANKED, TARGETS, 3) == pytest.approx(2 / 3)
    assert hit_rate_at_k(RANKED, TARGETS, 2) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RANKED, TARGETS, 1) == 0.0
    # reciprocal ranks 1/2, 1/3, 0
    assert mrr_at_k(RANKED, TARGETS, 3) == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert mrr_at_k(RANKED, TARGETS, 2) == pytest.approx((1 / 2) / 3)


def test_first_place_is_worth_one() -> None:
    ranked = np.array([[4, 0], [2, 4]])
    assert ndcg_at_k(ranked, [4, 2], 2) == 1.0
    assert mrr_at_k(ranked, [4, 2], 2) == 1.0


def test_coverage_counts_distinct_items_and_ignores_empty_slots() -> None:
    # top-2 lists hold 3,1 | 0,5 | 7,8: six items of twenty
    assert coverage_at_k(RANKED, 20, 2) == pytest.approx(6 / 20)
    assert coverage_at_k(RANKED, 20) == pytest.approx(9 / 20)
    # repeated items count once; -1 (no item) counts not at all
    assert coverage_at_k(np.array([[1, -1], [1, 2]]), 4) == pytest.approx(2 / 4)


def test_empty_slot_never_hits() -> None:
    ranked = np.array([[2, -1], [-1, -1]])
    assert hit_rate_at_k(ranked, [2, 5], 2) == pytest.approx(1 / 2)
    assert precision_at_k(ranked, [[2], [5]], 2) == pytest.approx((1 / 2 + 0) / 2)


# several relevant items per row: row 0 hits 2 (rank 2) and 4 (rank 4) of {2, 4, 9}; row 1 hits 8
# (rank 4) of {8}
MULTI_RANKED = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
RELEVANT = [np.array([2, 4, 9]), np.array([8])]


def test_precision() -> None:
    assert precision_at_k(MULTI_RANKED, RELEVANT, 2) == pytest.approx((1 / 2 + 0 / 2) / 2)
    assert precision_at_k(MULTI_RANKED, RELEVANT, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)


def test_normalized_dcg_with_several_relevant() -> None:
    # row 0: DCG = 1/log2(3) + 1/log2(5); ideal = 3 hits on top = 1 + 1/log2(3) + 1/log2(4)
    row0 = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5)
    # row 1: DCG = 1/log2(5); ideal = 1 hit on top = 1
    row1 = 1 / math.log2(5)
    assert normalized_dcg_at_k(MULTI_RANKED, RELEVANT, 4) == pytest.approx((row0 + row1) / 2)
    # at k=2 row 0's ideal holds only 2 hits: 1 + 1/log2(3); row 1 misses
    row0_at_2 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert normalized_dcg_at_k(MULTI_RANKED, RELEVANT, 2) == pytest.approx(row0_at_2 / 2)


def test_mean_reciprocal_rank_uses_the_first_relevant() -> None:
    # first relevant at ranks 2 and 4
    assert mean_reciprocal_rank_at_k(MULTI_RANKED, RELEVANT, 4) == pytest.approx(
        (1 / 2 + 1 / 4) / 2
    )
    assert mean_reciprocal_rank_at_k(MULTI_RANKED, RELEVANT, 3) == pytest.approx((1 / 2 + 0) / 2)


def test_multi_relevant_metrics_reduce_to_single_target_ones() -> None:
    rng = np.random.default_rng(3)
    ranked = np.stack([rng.permutation(50)[:10] for _ in range(40)])
    targets = rng.integers(0, 50, size=40)
    singles = [np.array([t]) for t in targets]
    assert normalized_dcg_at_k(ranked, singles, 10) == pytest.approx(ndcg_at_k(ranked, targets, 10))
    assert mean_reciprocal_rank_at_k(ranked, singles, 10) == pytest.approx(
        mrr_at_k(ranked, targets, 10)
    )
    assert precision_at_k(ranked, singles, 10) * 10 == pytest.approx(
        hit_rate_at_k(ranked, targets, 10)
    )


def test_relevance_hits_matrix() -> None:
    hits = relevance_hits(MULTI_RANKED, RELEVANT, 4)
    assert hits.tolist() == [[False, True, False, True], [False, False, False, True]]


def test_bad_shapes_are_errors() -> None:
    with pytest.raises(ValueError, match="k=5"):
        ndcg_at_k(RANKED, TARGETS, 5)
    with pytest.raises(ValueError, match="targets"):
        hit_rate_at_k(RANKED, TARGETS[:2], 3)
    with pytest.raises(ValueError, match="no rows"):
        mrr_at_k(np.zeros((0, 3), np.int32), [], 3)
