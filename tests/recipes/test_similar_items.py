"""similar-items: co-interaction neighbours (cosine or sequential), metadata and popularity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from tastebud.errors import InvalidInput
from tastebud.recipes import ItemSimilarity, Query, TrainingData, parse_config
from tastebud.recipes.similar_items import (
    SimilarItems,
    SimilarItemsConfig,
    SimilarItemsModel,
    history_weights,
)
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

MODES = ["sequential", "cosine"]


def fit(data: TrainingData, params: dict[str, object] | None = None) -> SimilarItemsModel:
    recipe = SimilarItems()
    return recipe.fit(data, parse_config(recipe, params or {}))


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


def with_extra_item(data: TrainingData, features: list[float]) -> TrainingData:
    """``data`` plus one item nobody interacted with, whose feature row is ``features``."""
    assert data.item_features is not None
    row = sp.csr_matrix(np.asarray([features], np.float32))
    return replace(
        data,
        n_items=data.n_items + 1,
        item_features=sp.csr_matrix(sp.vstack([data.item_features, row])),
    )


def top(scores: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mode": "cosine"},
        {"mode": "cosine", "min_co_count": 2, "neighbors": 5},
        {"window": 1, "damping": 0.5, "metadata_weight": 0, "history_length": 1},
    ],
)
def test_contract(params: dict[str, object], tmp_path: Path) -> None:
    model = check_contract("similar-items", clustered(), params, tmp_path)
    assert isinstance(model, ItemSimilarity)


@pytest.mark.parametrize("mode", MODES)
def test_neighbours_stay_in_their_cluster(mode: str) -> None:
    model = fit(clustered(), {"mode": mode})
    similar = model.similar_items(np.array([0, 25], np.int32))
    assert all(item < 20 for item in top(similar[0], 10))
    assert all(item >= 20 for item in top(similar[1], 10))
    assert top(similar[0], 1) != [0]  # the anchor is not its own neighbour
    history = Query.single(-1, [3, 5, 1])
    assert all(item < 20 for item in top(model.score(history)[0], 12))


def test_sequential_mode_follows_the_direction_of_the_chain() -> None:
    # every user walks i, i+1, i+2, ... from a different start
    chains = [list(range(start, start + 8)) for start in range(0, 22) for _ in range(3)]
    data = from_sequences(chains, n_items=30)
    model = fit(data, {"window": 3})
    scores = model.score(Query.single(-1, [8, 9, 10]))[0]
    assert scores[11] > scores[9]
    assert top(scores, 1) == [11]
    assert top(model.similar_items(np.array([10], np.int32))[0], 3) == [11, 12, 13]
    # cosine is symmetric: it cannot tell what came before from what comes next
    symmetric = fit(data, {"mode": "cosine"}).similar_items(np.array([10], np.int32))[0]
    assert symmetric[9] == pytest.approx(symmetric[11], rel=0.05)


def test_history_length_and_recency_decay_weigh_recent_items() -> None:
    query = Query(
        users=np.array([0, -1], np.int32),
        history_indptr=np.array([0, 4, 5], np.int64),
        history_items=np.array([1, 2, 2, 3, 99], np.int32),
    )
    weights = history_weights(query, 10, last=3, decay=0.5).toarray()
    expected = np.zeros((2, 10), np.float32)
    expected[0, [2, 3]] = [0.5 + 0.25, 1.0]  # item 1 is outside the last 3; repeats add up
    np.testing.assert_allclose(weights, expected)  # item 99 is unknown to a 10-item model


@pytest.mark.parametrize("mode", MODES)
def test_cold_item_with_features_gets_same_genre_items(mode: str) -> None:
    data = with_extra_item(clustered(), [0.0, 1.0])  # a new genre-b item
    model = fit(data, {"mode": mode})
    similar = model.similar_items(np.array([40], np.int32))[0]
    assert all(20 <= item < 40 for item in top(similar, 10))
    counts = data.item_counts()
    assert top(similar, 5) == [20 + i for i in top(counts[20:40], 5)]  # popularity breaks ties
    no_metadata = fit(data, {"mode": mode, "metadata_weight": 0})
    assert top(no_metadata.similar_items(np.array([40], np.int32))[0], 10) == top(counts, 10)
    assert any(item < 20 for item in top(counts, 10))  # so the genre above was no accident


@pytest.mark.parametrize("mode", MODES)
def test_item_or_user_with_nothing_gets_popular_items(mode: str) -> None:
    data = with_extra_item(clustered(), [0.0, 0.0])  # no interactions, no features
    model = fit(data, {"mode": mode})
    popular = top(data.item_counts(), 5)
    assert top(model.similar_items(np.array([40], np.int32))[0], 5) == popular
    assert top(model.similar_items(np.array([1_000], np.int32))[0], 5) == popular  # unknown
    assert top(model.score(Query.single(-1))[0], 5) == popular  # empty history


@pytest.mark.parametrize("mode", MODES)
def test_min_co_count_removes_a_pair_seen_once(mode: str) -> None:
    # items 0 and 1 meet in one user's history; items 2 and 3 in three users'
    data = from_sequences([[0, 1], [2, 3], [2, 3], [2, 3], [4, 5]], n_items=6)
    once = fit(data, {"mode": mode}).neighbours
    assert once[0, 1] > 0 and once[2, 3] > 0
    twice = fit(data, {"mode": mode, "min_co_count": 2}).neighbours
    assert twice[0, 1] == 0 and twice[2, 3] > 0


def test_neighbors_caps_each_row() -> None:
    model = fit(clustered(), {"mode": "cosine", "neighbors": 4})
    assert np.diff(model.neighbours.indptr).max() == 4


@pytest.mark.parametrize(
    "params",
    [
        {"window": 0},
        {"mode": "bayesian"},
        {"neighbors": 0},
        {"recency_decay": 0},
        {"history_length": 0},
        {"metadata_weight": -1},
        {"min_co_count": 0},
        {"windows": 3},
    ],
)
def test_bad_hyperparameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="similar-items"):
        parse_config(SimilarItems(), params)


@pytest.mark.parametrize("mode", MODES)
def test_search_space_gives_valid_configs(mode: str) -> None:
    fixed = {
        "mode": mode, "min_co_count": 2, "neighbors": 50, "history_length": 10,
        "recency_decay": 0.5, "metadata_weight": 0.2, "window": 4, "distance_exponent": 1.0,
        "damping": 0.3,
    }  # fmt: skip
    recipe = SimilarItems()
    config = parse_config(recipe, recipe.search_space(optuna.trial.FixedTrial(fixed)))
    assert isinstance(config, SimilarItemsConfig)
    assert config.mode == mode
    assert config.window == (4 if mode == "sequential" else SimilarItemsConfig().window)
