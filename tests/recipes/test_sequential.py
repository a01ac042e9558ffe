"""sequential: a causal transformer over each user's item tokens."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from tastebud.errors import InvalidInput
from tastebud.evaluation import rank_top_k
from tastebud.evaluation.metrics import ndcg_at_k
from tastebud.recipes import Query, TrainingData, parse_config
from tastebud.recipes.sequential import Sequential, SequentialConfig, SequentialModel
from tastebud.recipes.sequential.recipe import auto_hidden, auto_max_len
from tastebud.recipes.sequential.tokens import (
    last_tokens,
    merge_repeats,
    query_sequences,
    training_sequences,
    windows,
)
from tastebud.recipes.sequential.train import hold_out_last, validation_ndcg
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

TINY = {"epochs": 3, "hidden": 16, "max_len": 8, "batch_size": 16, "validation_users": 8}


def fit(data: TrainingData, params: dict[str, object], *, seed: int = 0) -> SequentialModel:
    recipe = Sequential()
    return recipe.fit(data, parse_config(recipe, params), seed=seed)


def from_sequences(sequences: list[list[int]], n_items: int) -> TrainingData:
    """One user per sequence, events interleaved in time but each user's order kept."""
    users = np.concatenate([np.full(len(s), u) for u, s in enumerate(sequences)])
    items = np.concatenate([np.asarray(s) for s in sequences])
    steps = np.concatenate([np.arange(len(s)) for s in sequences])
    order = np.lexsort((users, steps))
    return TrainingData(
        users=users[order].astype(np.int32),
        items=items[order].astype(np.int32),
        timestamps=(1_000 + np.arange(len(order))).astype(np.int64),
        weights=np.ones(len(order), np.float32),
        n_users=len(sequences),
        n_items=n_items,
    )


def cycles(n_items: int = 12, n_users: int = 60, length: int = 16) -> TrainingData:
    """Every user walks the cycle i -> i + 1 (mod n_items) from a random start."""
    rng = np.random.default_rng(0)
    starts = rng.integers(0, n_items, size=n_users)
    return from_sequences([[(s + j) % n_items for j in range(length)] for s in starts], n_items)


def with_cold_items(data: TrainingData, rows: list[list[float]]) -> TrainingData:
    """``data`` plus items nobody interacted with, whose feature rows are ``rows``."""
    assert data.item_features is not None
    extra = sp.csr_matrix(np.asarray(rows, np.float32))
    return replace(
        data,
        n_items=data.n_items + len(rows),
        item_features=sp.csr_matrix(sp.vstack([data.item_features, extra])),
    )


@pytest.mark.parametrize(
    "params",
    [TINY, {**TINY, "use_metadata": False, "negatives": 5}, {**TINY, "genre_head": True}],
)
def test_contract(params: dict[str, object], tmp_path: Path) -> None:
    check_contract("sequential", clustered(), params, tmp_path)


def test_learns_a_planted_next_item_rule() -> None:
    data = cycles()
    params = {"epochs": 30, "hidden": 32, "max_len": 8, "batch_size": 32, "lr": 0.01}
    model = fit(data, {**params, "dropout": 0.0, "validation_users": 0})
    histories = [[(start + j) % 12 for j in range(5)] for start in range(12)]
    query = Query(
        users=np.full(12, -1, np.int32),
        history_indptr=np.arange(0, 61, 5, dtype=np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )
    best = model.score(query).argmax(axis=1)
    assert (best == [(h[-1] + 1) % 12 for h in histories]).mean() >= 0.9


def test_adjacent_repeats_merge_into_one_token() -> None:
    items = np.array([3, 3, 4, 3, 5, 5, 5, 5, 2], np.int32)
    merged = merge_repeats(np.array([0, 6, 9], np.int64), items)  # users [3,3,4,3,5,5] [5,5,2]
    np.testing.assert_array_equal(merged.indptr, [0, 4, 6])
    np.testing.assert_array_equal(merged.tokens, np.array([3, 4, 3, 5, 5, 2]) + 1)  # 0 = pad
    np.testing.assert_array_equal(merged.repeats, [2, 1, 1, 2, 2, 1])


def test_query_tokens_drop_unknown_items_and_keep_the_latest() -> None:
    query = Query(
        users=np.array([0, -1, 2], np.int32),
        history_indptr=np.array([0, 5, 5, 7], np.int64),
        history_items=np.array([1, 99, 2, 2, 3, -1, 4], np.int32),
    )
    sequences = query_sequences(query, n_items=10)
    tokens, lengths = last_tokens(sequences, 2)
    np.testing.assert_array_equal(lengths, [2, 0, 1])
    np.testing.assert_array_equal(tokens, [[3, 4], [0, 0], [5, 0]])  # right-padded


def test_windows_slide_from_the_end_and_cover_every_token_once() -> None:
    sequences = merge_repeats(np.array([0, 11, 12], np.int64), np.arange(12, dtype=np.int32))
    cut = windows(sequences, size=5, stride=4)  # user 1 has one token: nothing to predict
    expected = [[7, 8, 9, 10, 11], [3, 4, 5, 6, 7], [1, 2, 3, 0, 0]]
    np.testing.assert_array_equal(cut, expected)
    targets = np.concatenate([row[1:][row[1:] > 0] for row in cut])
    assert sorted(targets) == list(range(2, 12))


def test_cold_item_is_scored_from_its_metadata() -> None:
    # two new items, one per genre, with no interactions at all
    data = with_cold_items(clustered(), [[1.0, 0.0], [0.0, 1.0]])
    model = fit(data, {**TINY, "epochs": 10, "lr": 0.01})
    query = Query(
        users=np.array([-1, -1], np.int32),
        history_indptr=np.array([0, 3, 6], np.int64),
        history_items=np.array([0, 3, 1, 20, 23, 21], np.int32),  # cluster A, cluster B
    )
    scores = model.score(query)
    cold_a, cold_b = scores[:, 40], scores[:, 41]
    assert cold_a[0] > cold_b[0] and cold_b[1] > cold_a[1]
    assert model.network.items.known[41:, 0].sum() == 0  # no id vector, metadata alone
    blind = fit(data, {**TINY, "epochs": 10, "lr": 0.01, "use_metadata": False})
    np.testing.assert_allclose(blind.score(query)[:, 40], blind.score(query)[:, 41])


def test_a_new_event_changes_the_scores_without_retraining() -> None:
    model = fit(clustered(), TINY)
    before = model.score(Query.single(0, [0, 3, 1]))
    after = model.score(Query.single(0, [0, 3, 1, 25]))
    assert not np.allclose(before, after)


def test_training_logs_a_learning_curve_and_keeps_to_the_time_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="tastebud.recipes.sequential"):
        model = fit(clustered(), {**TINY, "epochs": 50, "time_budget_seconds": 1e-3})
    assert model.training["stopped"] == "time budget"
    assert [point["epoch"] for point in model.training["curve"]] == [1]
    assert "epoch done recipe=sequential epoch=1 " in caplog.text
    free = fit(clustered(), {**TINY, "time_budget_seconds": None})
    assert free.training["stopped"] == "epochs" and len(free.training["curve"]) == 3
    assert 0 <= free.training["validation_ndcg@10"] <= 1


def test_validation_ndcg_matches_the_evaluation_metric() -> None:
    data = clustered()
    model = fit(data, TINY)
    rng = np.random.default_rng(0)
    _, validation = hold_out_last(training_sequences(data), n_users=30, max_len=8, rng=rng)
    assert validation is not None
    internal = validation_ndcg(model.network, validation)
    assert not model.network.training  # serving stays in eval mode
    query = Query(
        users=np.full(len(validation), -1, np.int32),
        history_indptr=validation.seen_indptr.numpy(),
        history_items=validation.seen_items.numpy().astype(np.int32),
    )
    ranked = rank_top_k(model, query, 10)
    assert internal == pytest.approx(ndcg_at_k(ranked, validation.targets.numpy(), 10))


def test_empty_history_gets_popularity() -> None:
    data = clustered()
    scores = fit(data, TINY).score(Query.single(-1))[0]
    counts = data.item_counts()
    np.testing.assert_allclose(scores, counts / counts.max())


def test_sizes_adapt_to_the_data() -> None:
    short = merge_repeats(np.array([0, 5, 10], np.int64), np.arange(10, dtype=np.int32))
    assert auto_max_len(short) == 8
    assert auto_hidden(3_416, 1) == 64
    assert auto_hidden(40, 1) == 32
    assert auto_hidden(1_000_000, 3) == 258


@pytest.mark.parametrize(
    "params",
    [
        {"epochs": 0},
        {"max_len": 1},
        {"dropout": 1.0},
        {"lr": 0},
        {"batch_size": 0},
        {"device": "tpu"},
        {"hidden": 30, "heads": 4},
        {"time_budget_seconds": 0},
        {"layers": 2},
    ],
)
def test_bad_hyperparameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="sequential"):
        parse_config(Sequential(), params)


def test_search_space_gives_valid_configs() -> None:
    fixed = {
        "heads": 2, "max_len": 50, "hidden_per_head": 32, "blocks": 2, "dropout": 0.3,
        "lr": 1e-3, "use_metadata": True,
    }  # fmt: skip
    recipe = Sequential()
    config = parse_config(recipe, recipe.search_space(optuna.trial.FixedTrial(fixed)))
    assert isinstance(config, SequentialConfig)
    assert config.hidden == 64 and config.heads == 2
