"""ranker: LambdaMART over other recipes' scores and point-in-time features."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp

from tastebud.errors import InvalidInput
from tastebud.evaluation import evaluate, split_data
from tastebud.recipes import Query, ScoresItems, TrainingData, get_recipe, parse_config
from tastebud.recipes.ranker import RankerConfig, RankerModel
from tastebud.recipes.ranker.candidates import BaseScores
from tastebud.recipes.ranker.features import (
    ItemFacts,
    ItemLog,
    feature_names,
    item_values,
    pair_features,
)
from tastebud.recipes.ranker.recipe import fill_below, latest_events
from tastebud.recipes.ranker.stacking import hold_out_last, label_grades
from tests.recipes.conftest import clustered
from tests.recipes.contract import check_contract

CHEAP = {
    "next": {"recipe": "similar-items"},
    "pop": {"recipe": "popularity-count"},
}
POPULARITY_ONLY = {"pop": {"recipe": "popularity-count"}}
SMALL_TREES = {"n_estimators": 40, "min_data_in_leaf": 5, "early_stopping_rounds": 0,
               "threads": 1}  # fmt: skip


def fit(data: TrainingData, **params: object) -> RankerModel:
    recipe = get_recipe("ranker")
    model = recipe.fit(data, parse_config(recipe, {"bases": CHEAP, **SMALL_TREES, **params}))
    assert isinstance(model, RankerModel)
    return model


def test_contract(tmp_path: Path) -> None:
    data = clustered(n_users=80)
    model = check_contract("ranker", data, {"bases": CHEAP, **SMALL_TREES}, tmp_path)
    folder = tmp_path / "artifact"
    assert (folder / "trees.txt").read_text().startswith("tree")  # LightGBM's own text model
    assert (folder / "bases" / "next" / "model.json").exists()
    meta = json.loads((folder / "model.json").read_text())
    assert meta["feature_names"][:3] == ["next.score", "next.rank", "next.gap"]
    assert set(meta["importances"]) == set(meta["feature_names"])
    assert isinstance(model, ScoresItems)


def test_candidates_score_above_every_other_item_in_the_first_bases_order() -> None:
    data = clustered(n_users=80)
    model = fit(data, candidates=3)
    query = Query.single(0, data.items[data.users == 0][:4], time=int(data.timestamps.max()))
    scores = model.score(query)[0]
    scored = model._score_bases(query)
    candidates = np.flatnonzero(scored.in_top()[0])
    others = np.setdiff1d(np.arange(data.n_items), candidates)
    assert 3 <= len(candidates) <= 6
    assert scores[candidates].min() > scores[others].max()
    first = scored.scores["next"][0, others]
    order = others[np.argsort(-first, kind="stable")]
    assert np.all(np.diff(scores[order]) <= 0)  # non-candidates follow the first base
    listed = model.score_items(query, candidates)
    np.testing.assert_allclose(listed, scores[candidates], rtol=1e-6)


def test_score_items_scores_items_outside_the_candidates() -> None:
    data = clustered(n_users=80)
    model = fit(data, candidates=2)
    query = Query.single(0, data.items[data.users == 0][:4])
    everything = np.arange(data.n_items, dtype=np.int32)
    listed = model.score_items(query, everything)
    assert listed.shape == (data.n_items,) and listed.dtype == np.float32
    assert len(np.unique(listed)) > 3  # trees, not the below-candidate fill


def planted_signal(n_users: int = 240) -> TrainingData:
    """Two taste clusters (``clustered``), which popularity alone cannot tell apart, with the
    users' events interleaved in time (so that popularity before a time does not either)."""
    data = clustered(n_users=n_users, n_items=40, per_user=12, seed=3)
    times = np.random.default_rng(3).permutation(data.size).astype(np.int64) + 1_000_000
    order = np.argsort(times)
    return dataclasses.replace(
        data, users=data.users[order], items=data.items[order], timestamps=times[order],
        weights=data.weights[order], item_created=None,
    )  # fmt: skip


def test_the_ranker_beats_its_weak_base_on_a_planted_signal() -> None:
    data = planted_signal()
    split = split_data(data, "leave-last-out")
    popularity = get_recipe("popularity-count").fit(split.train_and_validation,
                                                    parse_config(get_recipe("popularity-count"),
                                                                 {}))  # fmt: skip
    recipe = get_recipe("ranker")
    config = parse_config(recipe, {"bases": POPULARITY_ONLY, **SMALL_TREES, "candidates": 40})
    ranker = recipe.fit(split.train_and_validation, config)
    weak = evaluate(popularity, split.test, protocol="leave-last-out")["ndcg@10"]
    stacked = evaluate(ranker, split.test, protocol="leave-last-out")["ndcg@10"]
    assert stacked > weak + 0.05, (stacked, weak)
    assert isinstance(ranker, RankerModel)
    top = list(ranker.importances())[:3]
    assert {"genre_share", "genre_share_recent", "category_gap"} & set(top), top


def label_lookup(data: TrainingData) -> tuple[npt.NDArray[np.int32], list[tuple[object, ...]]]:
    """Each user's last item, and a record of the lookup calls."""
    last = np.full(data.n_users, -1, np.int32)
    last[data.users] = data.items  # the data is in time order: the last write is the latest
    return last, []


def test_a_planted_declared_feature_is_learned_and_read_online() -> None:
    data = planted_signal(120)
    last, calls = label_lookup(data)

    def offline(users, items, times, names):  # type: ignore[no-untyped-def]
        calls.append(("offline", len(users), names))
        assert len(users) == len(items) == len(times)
        return (items == last[users]).astype(np.float32)[:, None] * np.ones((1, len(names)), "f4")

    with_lookup = dataclasses.replace(data, feature_lookup=offline)
    model = fit(with_lookup, bases=POPULARITY_ONLY, features=["planted"], candidates=40)
    assert next(iter(model.importances())) == "feature.planted"
    assert calls and calls[0][0] == "offline" and calls[0][2] == ("planted",)

    wanted = 7

    def online(row, items, names):  # type: ignore[no-untyped-def]
        calls.append(("online", row, names))
        return (items == wanted).astype(np.float32)[:, None]

    history = data.items[data.users == 0][:3]
    query = Query(users=np.array([0], np.int32), history_indptr=np.array([0, 3], np.int64),
                  history_items=history, feature_lookup=online)  # fmt: skip
    scores = model.score(query)[0]
    scores[history] = -np.inf
    assert int(np.argmax(scores)) == wanted
    assert calls[-1] == ("online", 0, ("planted",))
    plain = model.score(Query.single(0, history))  # no lookup: the column is missing (NaN)
    assert np.isfinite(plain).all()


def test_a_failing_lookup_propagates() -> None:
    data = planted_signal(60)
    model = fit(data, bases=POPULARITY_ONLY, features=["down"])

    def broken(row, items, names):  # type: ignore[no-untyped-def]
        raise ConnectionError("feature store down")

    query = Query(users=np.array([0], np.int32), history_indptr=np.array([0, 0], np.int64),
                  history_items=np.zeros(0, np.int32), feature_lookup=broken)  # fmt: skip
    with pytest.raises(ConnectionError):
        model.score(query)


def test_rows_shift_the_lookups_row_numbers() -> None:
    seen: list[int] = []

    def lookup(row, items, names):  # type: ignore[no-untyped-def]
        seen.append(row)
        return np.zeros((len(items), len(names)), np.float32)

    query = Query(users=np.arange(4, dtype=np.int32), history_indptr=np.zeros(5, np.int64),
                  history_items=np.zeros(0, np.int32), feature_lookup=lookup)  # fmt: skip
    part = query.rows(2, 4)
    assert part.feature_lookup is not None
    part.feature_lookup(1, np.array([3], np.int32), ("x",))
    assert seen == [3]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"bases": {}}, "at least one base"),
        ({"bases": {"x": {"recipe": "nope"}}}, "unknown recipe 'nope'"),
        ({"bases": {"x": {"recipe": "ranker"}}}, "cannot stack another ranker"),
        ({"bases": {"x": {"recipe": "popularity-count", "params": {"half_life_days": -1}}}},
         "half_life_days"),
        ({"bases": {"a b": {"recipe": "popularity-count"}}}, "letters, digits"),
        ({"grades": {"click": 99}}, "0..30"),
        ({"features": ["x", "x"]}, "distinct"),
        ({"candidates": 0}, "candidates"),
        ({"num_leafs": 3}, "num_leafs"),
        ({"bases": "{nope"}, "not valid JSON"),
    ],
)  # fmt: skip
def test_config_errors_name_the_problem(params: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_config(get_recipe("ranker"), params)


def test_command_line_text_is_parsed() -> None:
    params = {"bases": '{"pop": {"recipe": "popularity-count"}}', "features": "a, b",
              "grades": '{"buy": 3}', "candidates": "50"}  # fmt: skip
    config = parse_config(get_recipe("ranker"), params)
    assert isinstance(config, RankerConfig)
    assert list(config.bases) == ["pop"] and config.features == ("a", "b")
    assert config.grades == {"buy": 3} and config.candidates == 50


def test_default_bases_are_documented_ones() -> None:
    config = RankerConfig()
    assert list(config.bases) == ["seq", "next", "ease", "pop"]
    assert config.candidates == 200


def test_hold_out_last_and_graded_labels() -> None:
    data = TrainingData(
        users=np.array([0, 1, 0, 0, 2], np.int32), items=np.array([1, 2, 3, 4, 5], np.int32),
        timestamps=np.array([1, 2, 3, 3, 4], np.int64), weights=np.ones(5, np.float32),
        n_users=3, n_items=6, event_types=np.array([0, 0, 1, 1, 0], np.int32),
        event_type_names=("click", "purchase"), values=np.array([1, 2, 3, 4.4, 5], np.float32),
    )  # fmt: skip
    held = hold_out_last(data)
    assert held.rows.tolist() == [3]  # user 0's latest (a tie: the later row); 1 and 2 have one
    config = RankerConfig(bases=POPULARITY_ONLY, grades={"purchase": 3})  # type: ignore[arg-type]
    assert label_grades(data, held.rows, config).tolist() == [3]
    by_value = RankerConfig(bases=POPULARITY_ONLY, grade_by="value")  # type: ignore[arg-type]
    assert label_grades(data, held.rows, by_value).tolist() == [4]
    with pytest.raises(InvalidInput, match="two interactions"):
        hold_out_last(data.subset(data.users != 0))


def test_item_log_counts_only_earlier_events() -> None:
    data = TrainingData(
        users=np.zeros(5, np.int32), items=np.array([0, 1, 0, 0, 2], np.int32),
        timestamps=np.array([10, 20, 30, 40, 50], np.int64), weights=np.ones(5, np.float32),
        n_users=1, n_items=3,
    )  # fmt: skip
    log = ItemLog.from_data(data)
    items = np.array([0, 0, 0, 0, 2, 1], np.int32)
    times = np.array([5, 30, 31, 999, 50, 21], np.int64)
    assert log.count_before(items, times).tolist() == [0, 1, 2, 3, 0, 1]
    first = log.first_time(items, times)
    assert np.isnan(first[0]) and first[1:4].tolist() == [10, 10, 10] and np.isnan(first[4])


def test_latest_events_keeps_each_querys_newest_events() -> None:
    query = Query(users=np.array([0, 1], np.int32), history_indptr=np.array([0, 4, 5], np.int64),
                  history_items=np.array([1, 2, 3, 4, 9], np.int32),
                  history_timestamps=np.arange(5, dtype=np.int64))  # fmt: skip
    cut = latest_events(query, 2)
    assert cut.history_indptr.tolist() == [0, 2, 3]
    assert cut.history_items.tolist() == [3, 4, 9]
    assert cut.history_timestamps is not None and cut.history_timestamps.tolist() == [2, 3, 4]
    assert latest_events(query, None) is query


def test_fill_below_orders_non_candidates_under_the_lowest_candidate() -> None:
    first = np.array([[5.0, 1.0, -np.inf, 3.0, 2.0]], np.float32)
    out = fill_below(first, np.array([0], np.int32), np.array([1], np.int32),
                     np.array([0.5], np.float32))  # fmt: skip
    assert out[0, 1] == 0.5
    assert out[0, [0, 3, 4, 2]].tolist() == sorted(out[0, [0, 3, 4, 2]].tolist(), reverse=True)
    assert out[0, [0, 2, 3, 4]].max() < 0.5


def test_history_features_by_hand() -> None:
    """genre shares, category gap and history counts against values worked out by hand."""
    # Items 0..4 carry the values {A}, {A, B}, {B}, {C}, {} (columns 0, 1, 2).
    genres = sp.csr_matrix(np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]],
                                    np.float32))  # fmt: skip
    log = ItemLog.from_keys(np.zeros(0, np.int64), 0, 2, 0, n_items=5)
    facts = ItemFacts(log, genres, None, ())
    # Query 0 (oldest first): item 3, item 0, then item 2 ten times; query 1: no history.
    history = np.array([3, 0] + [2] * 10, np.int32)
    query = Query(users=np.array([0, 1], np.int32), history_indptr=np.array([0, 12, 12]),
                  history_items=history)  # fmt: skip
    rows = np.array([0, 0, 0, 0, 0, 1], np.int32)
    items = np.array([1, 3, 4, 0, 2, 1], np.int32)
    scores = np.zeros((2, 5), np.float32)
    scored = BaseScores({"b": scores}, {"b": scores}, {"b": np.zeros(2, np.float32)},
                        np.ones((2, 5), np.bool_))  # fmt: skip
    matrix = pair_features(facts, query, scored, rows, items, np.zeros((6, 0), np.float32))
    names = feature_names(["b"], (), ())
    column = {name: matrix[:, names.index(name)].tolist() for name in names}
    nan = float("nan")
    third = float(np.float32(1 / 3))
    # All history: {3, 0, 2}, a third each of A, B, C. The last 10 events: item 2 only (B).
    assert column["genre_share"] == pytest.approx([third, third, nan, third, third, nan],
                                                  nan_ok=True)  # fmt: skip
    assert column["genre_share_recent"] == pytest.approx([0.5, 0, nan, 0, 1, nan], nan_ok=True)
    # Events since the newest one carrying a value: B 1, A 11 (item 0), C 12 (item 3).
    assert column["category_gap"] == pytest.approx([1, 12, nan, 11, 1, nan], nan_ok=True)
    assert column["history_count"] == [0, 1, 0, 1, 10, 0]
    assert column["history_length"] == [12, 12, 12, 12, 12, 0]


def test_item_values_reads_the_rows_scipy_would_slice() -> None:
    rng = np.random.default_rng(3)
    matrix = sp.random(50, 7, density=0.3, format="csr", random_state=4)
    items = rng.integers(0, 50, size=200).astype(np.int32)
    got = item_values(matrix, items)
    sliced = matrix[items]
    assert got.values.tolist() == sliced.indices.tolist()
    assert got.counts.tolist() == np.diff(sliced.indptr).tolist()
    assert got.owner.tolist() == np.repeat(np.arange(len(items)), np.diff(sliced.indptr)).tolist()


def test_a_saved_model_keeps_its_bases_order(tmp_path: Path) -> None:
    """model.json sorts its keys; the first base (not the alphabetically first) still orders
    the non-candidates after loading, and the trees read the same columns."""
    model = fit(clustered(n_users=60), bases={"pop": CHEAP["pop"], "next": CHEAP["next"]})
    model.save(tmp_path / "m")
    loaded = get_recipe("ranker").load(tmp_path / "m")
    assert isinstance(loaded, RankerModel)
    assert list(loaded.bases) == ["pop", "next"] and loaded.names == model.names
    query = Query.single(0, [1, 2, 3])
    np.testing.assert_allclose(loaded.score(query), model.score(query), rtol=1e-6)


def test_a_query_without_a_time_reads_the_same_popularity_as_one_asked_just_after() -> None:
    """Served queries (no time) read per-item popularity computed once; it must equal the
    point-in-time search at the newest event + 1."""
    data = clustered(n_users=60)
    model = fit(data)
    latest = int(data.timestamps.max())
    untimed = Query.single(0, [1, 2, 3])
    timed = dataclasses.replace(untimed, times=np.array([latest + 1], np.int64))
    items = np.arange(model.n_items, dtype=np.int32)
    np.testing.assert_array_equal(model.score_items(untimed, items),
                                  model.score_items(timed, items))  # fmt: skip
    earlier = dataclasses.replace(untimed, times=np.array([int(data.timestamps.min())], np.int64))
    assert not np.array_equal(model.score_items(untimed, items), model.score_items(earlier, items))
