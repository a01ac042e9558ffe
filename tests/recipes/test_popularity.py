"""popularity-count: summed weights per item, optionally decayed by age."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from tastebud.errors import InvalidInput
from tastebud.recipes import Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.popularity import PopularityConfig, PopularityCount
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

DAY = 86_400


def events(items: list[int], days: list[float], weights: list[float] | None = None) -> TrainingData:
    """One user per event, in time order, over 5 items."""
    order = np.argsort(days, kind="stable")
    n = len(items)
    return TrainingData(
        users=np.arange(n, dtype=np.int32),
        items=np.asarray(items, np.int32)[order],
        timestamps=(np.asarray(days)[order] * DAY).astype(np.int64),
        weights=np.asarray(weights if weights is not None else [1.0] * n, np.float32)[order],
        n_users=n,
        n_items=5,
    )


def fit_scores(data: TrainingData, params: dict[str, object]) -> np.ndarray:
    recipe = get_recipe("popularity-count")
    model = recipe.fit(data, parse_config(recipe, params))
    scores: np.ndarray = model.score(Query.single(-1))[0]
    return scores


@pytest.mark.parametrize("params", [{}, {"half_life_days": 7}, {"half_life_days": "0.5"}])
def test_contract(params: dict[str, object], tmp_path: Path) -> None:
    check_contract("popularity-count", clustered(), params, tmp_path)


def test_most_weighted_item_first() -> None:
    # item 0: three events; item 2: a single event weighing 5; item 1: two events
    data = events([0, 0, 0, 1, 1, 2], [0, 1, 2, 3, 4, 5], [1, 1, 1, 1, 1, 5])
    scores = fit_scores(data, {})
    assert list(np.argsort(-scores)[:3]) == [2, 0, 1]
    np.testing.assert_allclose(scores, [3, 2, 5, 0, 0])


def test_decay_moves_old_favourite_below_recent_one() -> None:
    # item 0 was a hit 100 days ago; item 1 is smaller but recent
    data = events([0] * 10 + [1] * 4, [0.0] * 10 + [100.0] * 4)
    assert np.argmax(fit_scores(data, {})) == 0
    decayed = fit_scores(data, {"half_life_days": 7})
    assert np.argmax(decayed) == 1
    np.testing.assert_allclose(decayed[1], 4.0)  # the reference time is the latest event
    np.testing.assert_allclose(decayed[0], 10 * 0.5 ** (100 / 7), rtol=1e-4)


def test_every_query_gets_the_same_row_and_times_are_ignored() -> None:
    recipe = get_recipe("popularity-count")
    data = clustered()
    model = recipe.fit(data, parse_config(recipe, {"half_life_days": 1}))
    query = Query(
        users=np.array([0, -1], np.int32),
        history_indptr=np.array([0, 2, 2], np.int64),
        history_items=np.array([3, 4], np.int32),
        times=np.array([0, 10**12], np.int64),
    )
    scores = model.score(query)
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], model.score(Query.single(5))[0])


@pytest.mark.parametrize("params", [{"half_life_days": 0}, {"half_life_days": -3}, {"decay": 1}])
def test_bad_hyperparameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="popularity-count"):
        parse_config(get_recipe("popularity-count"), params)


@pytest.mark.parametrize(
    ("fixed", "expected"),
    [({"decay": False}, None), ({"decay": True, "half_life_days": 30.0}, 30.0)],
)
def test_search_space_gives_valid_configs(fixed: dict[str, object], expected: float | None) -> None:
    recipe = PopularityCount()
    config = parse_config(recipe, recipe.search_space(optuna.trial.FixedTrial(fixed)))
    assert isinstance(config, PopularityConfig)
    assert config.half_life_days == expected
