"""Full ranking, metrics on planted answers, and the whole run on a tiny recipe."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.errors import InvalidInput
from tastebud.evaluation import evaluate, leave_last_out, rank_top_k, run_evaluation
from tastebud.recipes import Query
from tastebud.recipes.base import FloatArray
from tests.evaluation.conftest import SuccessorConfig, SuccessorRecipe, chain_data
from tests.recipes.conftest import clustered


class TableModel:
    """Scores row ``users[i]`` of a fixed table (the test's brute-force reference)."""

    def __init__(self, table: FloatArray) -> None:
        self.table = table
        self.n_items = table.shape[1]

    def score(self, query: Query) -> FloatArray:
        return self.table[query.users]

    def save(self, folder: object) -> None:
        raise NotImplementedError


def random_query(rng: np.random.Generator, n_users: int, n_items: int) -> Query:
    histories = [
        rng.choice(n_items, size=rng.integers(0, 8), replace=False) for _ in range(n_users)
    ]
    return Query(
        users=np.arange(n_users, dtype=np.int32),
        history_indptr=np.concatenate([[0], np.cumsum([len(h) for h in histories])]).astype(
            np.int64
        ),
        history_items=np.concatenate(histories).astype(np.int32),
    )


def test_rank_top_k_matches_a_brute_force_sort_and_excludes_history() -> None:
    rng = np.random.default_rng(0)
    table = rng.random((37, 50), dtype=np.float32)
    query = random_query(rng, 37, 50)
    ranked = rank_top_k(TableModel(table), query, 10, batch_size=8)
    for row in range(len(query)):
        scores = table[row].copy()
        scores[query.history(row)] = -np.inf
        assert ranked[row].tolist() == np.argsort(-scores, kind="stable")[:10].tolist()
        assert not set(ranked[row].tolist()) & set(query.history(row).tolist())
    assert ranked.dtype == np.int32
    np.testing.assert_array_equal(rank_top_k(TableModel(table), query, 10), ranked)


def test_rank_top_k_keeps_history_when_asked() -> None:
    table = np.tile(np.arange(5, dtype=np.float32), (1, 1))  # item 4 best
    query = Query.single(0, [4, 3])
    assert rank_top_k(TableModel(table), query, 3).tolist() == [[2, 1, 0]]
    assert rank_top_k(TableModel(table), query, 3, exclude_history=False).tolist() == [[4, 3, 2]]


def test_ties_rank_the_lower_index_first() -> None:
    table = np.array([[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]], np.float32)
    ranked = rank_top_k(TableModel(table), Query.single(0, [2]), 4)
    assert ranked.tolist() == [[1, 4, 5, 0]]


def test_slots_without_a_rankable_item_are_minus_one() -> None:
    table = np.array([[0.5, np.nan, 0.2, 0.9]], np.float32)
    ranked = rank_top_k(TableModel(table), Query.single(0, [3]), 6)
    # item 3 is history, item 1 has no score, only 4 items exist
    assert ranked.tolist() == [[0, 2, -1, -1, -1, -1]]


def test_evaluate_leave_last_out_on_planted_answers() -> None:
    split = leave_last_out(chain_data())
    model = SuccessorRecipe().fit(split.train, SuccessorConfig(offset=1))
    right = evaluate(model, split.validation, protocol="leave-last-out")
    assert right == {
        "ndcg@10": 1.0, "hr@10": 1.0, "ndcg@20": 1.0, "hr@20": 1.0, "mrr@25": 1.0,
        # user u's top 10: its target u + 3, then items 29..21 (the ramp): {3..8} + {21..29}
        "coverage@10": pytest.approx((6 + 9) / 30),
    }  # fmt: skip
    # offset 5 plants item u + 7; the target u + 3 sinks below the 20 high-index items
    model = SuccessorRecipe().fit(split.train, SuccessorConfig(offset=5))
    wrong = evaluate(model, split.validation, protocol="leave-last-out")
    assert wrong["hr@20"] == 0.0 and wrong["ndcg@10"] == 0.0
    assert 0.0 < wrong["mrr@25"] < 1 / 20


def test_run_evaluation_reports_test_and_validation() -> None:
    recipe = SuccessorRecipe()
    data = chain_data()
    result = run_evaluation(data, recipe, {"offset": "1"}, protocol="leave-last-out", seed=3)
    assert result["ndcg@10"] == 1.0 and result["mrr@25"] == 1.0
    assert result["validation"]["hr@10"] == 1.0
    assert result["users"] == 6 and result["validation_users"] == 6
    assert result["params"] == {"offset": 1}
    assert result["recipe"] == "successor" and result["protocol"] == "leave-last-out"
    assert result["train_seconds"] >= 0.0
    # fitted on train (all but the last two per user), then on train + validation
    assert recipe.fitted_sizes == [data.size - 12, data.size - 6]


def test_run_evaluation_with_popularity_on_time_holdout() -> None:
    data = clustered(n_users=30, n_items=20, per_user=6)
    result = run_evaluation(data, "popularity-count", {}, protocol="time-holdout")
    expected = {
        "precision_at_5", "precision_at_10", "precision_at_25",
        "normalized_discounted_cumulative_gain_at_5",
        "normalized_discounted_cumulative_gain_at_10",
        "normalized_discounted_cumulative_gain_at_25",
        "mean_reciprocal_rank_at_25", "coverage",
    }  # fmt: skip
    assert expected <= set(result) and set(result["validation"]) == expected
    assert all(0.0 <= result[key] <= 1.0 for key in expected)
    # popularity ranks the same items for everyone: most of the catalogue is never shown
    assert result["precision_at_5"] > 0.0


def test_run_evaluation_refuses_bad_input() -> None:
    data = chain_data()
    with pytest.raises(InvalidInput, match="unknown recipe"):
        run_evaluation(data, "no-such-recipe", {})
    with pytest.raises(InvalidInput, match="offset"):
        run_evaluation(data, SuccessorRecipe(), {"offset": "many"})
    with pytest.raises(InvalidInput, match="at least 3 interactions"):
        run_evaluation(chain_data(length=2), SuccessorRecipe(), {})
    with pytest.raises(InvalidInput, match="unknown protocol"):
        run_evaluation(data, SuccessorRecipe(), {}, protocol="k-fold")  # type: ignore[arg-type]


def test_time_aware_models_see_the_target_time() -> None:
    recipe = SuccessorRecipe()
    split = leave_last_out(chain_data())
    model = recipe.fit(split.train_and_validation, SuccessorConfig(offset=1))
    evaluate(model, split.test, protocol="leave-last-out")
    (query,) = model.queries
    assert query.times is not None
    # chain_data: user u's last (5th) interaction is at time 10 * 4 + u
    assert query.times.tolist() == [40 + u for u in range(6)]


def test_progress_moves_forward_and_ends_at_one() -> None:
    seen: list[tuple[float, str]] = []
    run_evaluation(chain_data(), SuccessorRecipe(), {}, progress=lambda f, m: seen.append((f, m)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [message for _, message in seen][:2] == ["fit on train", "fit on train + validation"]
