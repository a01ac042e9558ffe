"""user-personalization: EASE, ALS and BPR on planted clusters, cold users, reactivity,
exploration, impressions as negatives and configuration errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from tastebud.errors import InvalidInput
from tastebud.recipes import Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.factorization import als_user_factors, fit_als
from tastebud.recipes.user_personalization import UserPersonalizationModel

from .conftest import clustered
from .contract import check_contract

NAME = "user-personalization"
# small models for 60 users x 40 items
PARAMS: dict[str, dict[str, object]] = {
    "ease": {"algorithm": "ease", "l2": 10.0},
    "als": {"algorithm": "als", "factors": 8, "iterations": 10},
    "bpr": {"algorithm": "bpr", "factors": 8, "iterations": 100, "learning_rate": 0.05},
}
ALGORITHMS = sorted(PARAMS)
CLUSTER_A = 20  # items < 20 belong to cluster A, users < 30 too


def fit(data: TrainingData, **params: object) -> UserPersonalizationModel:
    recipe = get_recipe(NAME)
    model = recipe.fit(data, parse_config(recipe, params), seed=3)
    assert isinstance(model, UserPersonalizationModel)
    return model


def top_unseen(scores: np.ndarray, history: np.ndarray, k: int) -> np.ndarray:
    scores = scores.astype(np.float64).copy()
    scores[history] = -np.inf
    return np.argsort(-scores, kind="stable")[:k]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_contract(algorithm: str, clustered_data: TrainingData, tmp_path: Path) -> None:
    check_contract(NAME, clustered_data, PARAMS[algorithm], tmp_path)


def test_contract_with_defaults(clustered_data: TrainingData, tmp_path: Path) -> None:
    model = check_contract(NAME, clustered_data, {}, tmp_path)
    assert isinstance(model, UserPersonalizationModel)
    assert model.algorithm == "ease"  # auto: a small catalogue gets EASE


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_known_user_gets_its_cluster_first(algorithm: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, **PARAMS[algorithm])
    for user in (0, 45):
        history = clustered_data.items[clustered_data.users == user]
        top = top_unseen(model.score(Query.single(user, history))[0], history, 5)
        assert ((top < CLUSTER_A) == (user < 30)).all(), (user, top)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cold_user_is_served_from_its_history(algorithm: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, **PARAMS[algorithm])
    history = np.array([20, 21, 22, 23], np.int32)  # cluster B
    top = top_unseen(model.score(Query.single(-1, history))[0], history, 5)
    assert (top >= CLUSTER_A).all(), top


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_new_event_changes_the_scores(algorithm: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, **PARAMS[algorithm])
    history = clustered_data.items[clustered_data.users == 0]  # a cluster-A user
    before = model.score(Query.single(0, history))[0]
    after = model.score(Query.single(0, np.append(history, 25)))[0]  # clicks a cluster-B item
    assert after[CLUSTER_A:].mean() - before[CLUSTER_A:].mean() > 0.01 * np.ptp(before)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nothing_to_go_on_gives_popularity(algorithm: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, **PARAMS[algorithm])
    scores = model.score(Query.single(-1))[0]
    counts = clustered_data.item_counts()
    np.testing.assert_allclose(scores, counts / counts.max(), rtol=1e-6)


def test_unknown_history_items_are_ignored(clustered_data: TrainingData) -> None:
    model = fit(clustered_data, **PARAMS["ease"])
    plain = model.score(Query.single(-1, [20, 21]))
    with_new_item = model.score(Query.single(-1, [20, 21, 999]))  # added after training
    np.testing.assert_array_equal(plain, with_new_item)


def with_new_item(data: TrainingData) -> TrainingData:
    """The clustered data plus item 40, created at the latest event and never interacted with."""
    created = np.append(np.arange(data.n_items) * 1_000, data.timestamps.max()).astype(np.int64)
    return dataclasses.replace(
        data, n_items=data.n_items + 1, item_created=created, item_features=None
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exploration_brings_in_the_new_item(algorithm: str) -> None:
    data = with_new_item(clustered())
    history = data.items[data.users == 0]
    tops = {}
    for weight in (0.0, 0.5):
        model = fit(
            data, **PARAMS[algorithm], exploration_weight=weight, exploration_item_age_cutoff=1.0
        )
        tops[weight] = top_unseen(model.score(Query.single(0, history))[0], history, 5)
    new_item = data.n_items - 1
    assert new_item not in tops[0.0]
    assert new_item in tops[0.5]
    assert (np.delete(tops[0.5], tops[0.5] == new_item)[:3] < CLUSTER_A).all()  # still personal


def test_exploration_weight_one_ranks_by_the_bonus_alone() -> None:
    data = with_new_item(clustered())
    model = fit(data, **PARAMS["ease"], exploration_weight=1.0, exploration_item_age_cutoff=1.0)
    scores = model.score(Query.single(0, data.items[data.users == 0]))[0]
    np.testing.assert_allclose(scores, model.exploration_bonus, rtol=1e-6)
    assert scores.argmax() == data.n_items - 1  # brand new and never seen: bonus 1


def with_impressions(data: TrainingData, user: int, item: int) -> TrainingData:
    """``item`` shown to every cluster-A user who never interacted with it, ``user`` among them."""
    shown_to = np.arange(30, dtype=np.int32)
    clicked = data.user_item_matrix().toarray()[shown_to, item] > 0
    shown_to = shown_to[~clicked]
    assert user in shown_to
    return dataclasses.replace(
        data, negative_users=shown_to, negative_items=np.full(len(shown_to), item, np.int32)
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_impressions_lower_the_impressed_item(algorithm: str, clustered_data: TrainingData) -> None:
    user = 0
    history = clustered_data.items[clustered_data.users == user]
    item = next(i for i in range(CLUSTER_A) if i not in history)  # the most popular unseen one
    impressed = with_impressions(clustered_data, user, item)
    query = Query.single(user, history)
    plain = fit(clustered_data, **PARAMS[algorithm]).score(query)[0]
    lowered = fit(impressed, **PARAMS[algorithm]).score(query)[0]
    assert lowered[item] < plain[item] - 0.05 * np.ptp(plain)
    ignored = fit(impressed, **PARAMS[algorithm], impression_negative_weight=0.0).score(query)[0]
    np.testing.assert_allclose(ignored, plain, rtol=1e-4, atol=1e-5)


def test_a_later_click_cancels_the_impression(clustered_data: TrainingData) -> None:
    user = 0
    history = clustered_data.items[clustered_data.users == user]
    item = next(i for i in range(CLUSTER_A) if i not in history)
    model = fit(with_impressions(clustered_data, user, item), **PARAMS["ease"])
    reference = fit(clustered_data, **PARAMS["ease"])
    query = Query.single(user, np.append(history, item))
    np.testing.assert_allclose(model.score(query), reference.score(query), rtol=1e-5)


def test_als_fold_in_matches_implicit() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(0)
    matrix = sp.random(80, 30, density=0.2, format="csr", random_state=1, dtype=np.float32)
    matrix.data = np.round(matrix.data * 3) + 0.5
    matrix.data[rng.random(matrix.nnz) < 0.2] *= -1  # some dislikes
    users, items = fit_als(matrix, factors=6, regularization=0.3, alpha=2.0, iterations=5, seed=0)
    with threadpool_limits(limits=1, user_api="blas"):
        reference = AlternatingLeastSquares(factors=6, regularization=0.3, alpha=2.0)
    reference.item_factors = items
    expected = reference.recalculate_user(np.arange(80), matrix)
    mine = als_user_factors(sp.csr_matrix(matrix * 2.0), items, regularization=0.3)
    np.testing.assert_allclose(mine, expected, rtol=1e-4, atol=1e-5)
    assert users.shape == expected.shape


@pytest.mark.parametrize("alpha", [1.0, 4.0])
def test_one_als_query_scores_as_a_batch_does(alpha: float, clustered_data: TrainingData) -> None:
    """A real-time request (one query) takes a path without sparse matrices: same scores."""
    model = fit(clustered_data, **PARAMS["als"], alpha=alpha)
    histories = [[1, 2, 2, 5], [], [], [3, 7, 39, 1_000, -1]]  # known and unknown items
    users = np.array([0, 4, -1, -1], np.int32)  # known, known without history, cold, cold
    batch = Query(users=users, history_indptr=np.cumsum([0, *map(len, histories)]),
                  history_items=np.concatenate(histories).astype(np.int32))  # fmt: skip
    together = model.score(batch)
    for row in range(len(users)):
        alone = model.score(batch.rows(row, row + 1))
        np.testing.assert_allclose(alone, together[row : row + 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_mapped_model_scores_as_the_fitted_one(
    algorithm: str, clustered_data: TrainingData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tastebud.recipes.mapped.MAP_FROM_BYTES", 0)  # map every array
    model = fit(clustered_data, **PARAMS[algorithm])
    model.save(tmp_path)
    loaded = get_recipe(NAME).load(tmp_path)
    mapped = [a for a in loaded.arrays.values() if isinstance(a, np.ndarray) and a.size > 1]
    assert mapped and all(isinstance(a.base, np.memmap) for a in mapped)
    query = Query.single(0, np.array([1, 2, 3], np.int32))
    np.testing.assert_array_equal(loaded.score(query), model.score(query))
    again = get_recipe(NAME).load(tmp_path)  # a second process maps what the first derived
    np.testing.assert_array_equal(again.score(query), model.score(query))


def test_ease_refuses_a_huge_catalogue() -> None:
    data = TrainingData(
        users=np.array([0, 1], np.int32),
        items=np.array([0, 40_000], np.int32),
        timestamps=np.array([1, 2], np.int64),
        weights=np.ones(2, np.float32),
        n_users=2,
        n_items=40_001,
    )
    recipe = get_recipe(NAME)
    with pytest.raises(InvalidInput, match="als"):
        recipe.fit(data, parse_config(recipe, {"algorithm": "ease"}))


@pytest.mark.parametrize(
    "params",
    [
        {"factors": 0},
        {"algorithm": "svd"},
        {"exploration_weight": 2},
        {"l2": -1},
        {"impression_negative_weight": -0.5},
        {"iterations": 0},
        {"unknown": 1},
    ],
)
def test_bad_hyperparameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match=NAME):
        parse_config(get_recipe(NAME), params)


def test_strings_are_coerced() -> None:
    config = parse_config(get_recipe(NAME), {"factors": "64", "algorithm": "als"})
    assert config.model_dump()["factors"] == 64


def test_search_space_gives_valid_configs() -> None:
    import optuna

    recipe = get_recipe(NAME)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = recipe.search_space(trial)  # type: ignore[attr-defined]
        parse_config(recipe, params)
        seen.add(params["algorithm"])
        study.tell(trial, 0.0)
    assert seen == {"ease", "als", "bpr"}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_progress_is_reported(algorithm: str, clustered_data: TrainingData) -> None:
    reports: list[tuple[float, str]] = []
    recipe = get_recipe(NAME)
    config = parse_config(recipe, PARAMS[algorithm])
    recipe.fit(clustered_data, config, progress=lambda f, m: reports.append((f, m)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    if algorithm != "ease":
        assert any("iteration" in message for _, message in reports)
