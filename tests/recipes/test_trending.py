"""trending-now: velocity over recent windows, as of each query's time, with live updates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from tastebud.errors import InvalidInput
from tastebud.recipes import LiveUpdates, Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.trending import TrendingConfig, TrendingModel, TrendingNow
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

DAY = 86_400
N_ITEMS = 10


def daily(per_day: dict[int, list[int]], *, days: int = 30) -> TrainingData:
    """``per_day[item][d]`` events of ``item`` on day ``d`` (spread over the day), one user each."""
    items, times = [], []
    for item, counts in per_day.items():
        for day, count in enumerate(counts[:days]):
            items += [item] * count
            times += list(day * DAY + np.linspace(3_600, DAY - 3_600, count).astype(int))
    order = np.argsort(times, kind="stable")
    n = len(items)
    return TrainingData(
        users=np.arange(n, dtype=np.int32),
        items=np.asarray(items, np.int32)[order],
        timestamps=np.asarray(times, np.int64)[order],
        weights=np.ones(n, np.float32),
        n_users=n,
        n_items=N_ITEMS,
    )


def fit(data: TrainingData, params: dict[str, object] | None = None) -> TrendingModel:
    recipe = TrendingNow()
    model = recipe.fit(data, parse_config(recipe, params or {}))
    return model


def now(model: TrendingModel, time: int | None = None) -> np.ndarray:
    scores: np.ndarray = model.score(Query.single(-1, time=time))[0]
    return scores


STEADY = {0: [5] * 30, 1: [3] * 30, 2: [1] * 30}


@pytest.mark.parametrize(
    "params",
    [{}, {"bucket_hours": 1, "windows": 2, "baseline_windows": 2}, {"growth_weight": 0}],
)
def test_contract(params: dict[str, object], tmp_path: Path) -> None:
    check_contract("trending-now", clustered(), params, tmp_path)


def test_burst_rises_to_the_top_after_observe_but_not_before_it() -> None:
    model = fit(daily(STEADY))
    assert isinstance(model, LiveUpdates)
    assert np.argmax(now(model)) == 0
    burst_start = 30 * DAY + 600
    model.observe(np.full(40, 7, np.int32), burst_start + np.arange(40, dtype=np.int64) * 60)
    assert np.argmax(now(model)) == 7
    assert np.argmax(now(model, burst_start + DAY)) == 7  # an explicit time after it sees it
    before = now(model, burst_start - 1)
    assert np.argmax(before) == 0
    assert before[7] == 0.0


def test_query_time_counts_only_events_strictly_before_it() -> None:
    # item 3 is busy only on days 20-22; item 0 is steady throughout
    data = daily({0: [5] * 30, 3: [0] * 20 + [30, 30, 30]})
    model = fit(data, {"windows": 2, "baseline_windows": 2})
    assert now(model, 20 * DAY)[3] == 0.0  # day 20 has not happened yet
    assert np.argmax(now(model, 22 * DAY)) == 3  # days 20 and 21 are the recent window
    assert np.argmax(now(model)) == 0  # by day 30 the spike is long over
    # one batch mixes times; each row matches its single-query score
    times = np.array([20 * DAY, 22 * DAY, 30 * DAY], np.int64)
    batch = model.score(
        Query(np.full(3, -1, np.int32), np.zeros(4, np.int64), np.zeros(0, np.int32), times)
    )
    for row, time in zip(batch, times, strict=True):
        np.testing.assert_allclose(row, now(model, int(time)))


def test_growth_weight_prefers_rising_over_big_and_steady() -> None:
    # item 0: 10 a day throughout; item 4: 2 a day, then 8 a day over the last 3 days
    data = daily({0: [10] * 30, 4: [2] * 27 + [8] * 3})
    rising = now(fit(data, {"windows": 3, "baseline_windows": 4, "growth_weight": 1}))
    assert np.argmax(rising) == 4
    volume = now(fit(data, {"windows": 3, "baseline_windows": 4, "growth_weight": 0}))
    assert np.argmax(volume) == 0


def test_one_click_on_a_cold_item_is_not_trending() -> None:
    data = daily({**STEADY, 9: [0] * 29 + [1]})
    scores = now(fit(data))
    assert scores[9] > 0.0  # it counts,
    assert scores[9] < scores[2]  # but ranks below the quiet but steady item
    assert now(fit(data, {"prior": 0.01}))[9] > scores[2]  # without the prior it would not


def test_observe_ignores_unknown_items_and_keeps_memory_bounded() -> None:
    model = fit(daily(STEADY), {"max_buckets": 40})
    before = now(model).copy()
    model.observe(np.array([N_ITEMS, N_ITEMS + 5, -1], np.int32), np.full(3, 29 * DAY, np.int64))
    np.testing.assert_array_equal(now(model), before)
    far = 10_000 * DAY
    model.observe(np.array([5, 5], np.int32), np.array([far, far + 1], np.int64))
    assert model.counts.shape == (N_ITEMS, 40)
    assert np.argmax(now(model)) == 5  # everything older fell out of the kept buckets
    model.observe(np.array([6], np.int32), np.array([DAY], np.int64))  # too old: dropped
    assert model.counts.sum() == 2.0


def test_save_and_load_after_observe(tmp_path: Path) -> None:
    model = fit(daily(STEADY))
    model.observe(np.array([7, 7, 7], np.int32), np.full(3, 31 * DAY, np.int64))
    model.save(tmp_path / "model")
    loaded = TrendingNow().load(tmp_path / "model")
    np.testing.assert_allclose(now(loaded), now(model))
    np.testing.assert_allclose(now(loaded, 20 * DAY), now(model, 20 * DAY))
    assert loaded.latest_time == model.latest_time


def test_empty_data_scores_zero() -> None:
    empty = daily({}, days=0)
    assert (now(fit(empty)) == 0.0).all()


@pytest.mark.parametrize(
    "params",
    [
        {"windows": 0},
        {"bucket_hours": 0},
        {"prior": 0},
        {"growth_weight": -1},
        {"windows": 10, "baseline_windows": 9, "max_buckets": 50},
        {"bucket_size": 3},
    ],
)
def test_bad_hyperparameters(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match="trending-now"):
        parse_config(get_recipe("trending-now"), params)


def test_search_space_gives_valid_configs() -> None:
    recipe = TrendingNow()
    fixed = {"windows": 14, "baseline_windows": 8, "bucket_hours": 6.0, "growth_weight": 0.5}
    trial = optuna.trial.FixedTrial({**fixed, "prior": 2.0})
    config = parse_config(recipe, recipe.search_space(trial))
    assert isinstance(config, TrendingConfig)
    assert config.windows == 14
    assert config.max_buckets >= config.span
