"""similar-users: people like this person, by shared interactions, ALS vectors or both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastebud.errors import InvalidInput
from tastebud.recipes import Query, TrainingData, UserSimilarity, get_recipe, parse_config
from tastebud.recipes.base import IntArray
from tastebud.recipes.similar_users import SimilarUsersModel

from .contract import check_contract

NAME = "similar-users"
METHODS = ["interactions", "vectors", "hybrid"]
SMALL_ALS = {"factors": 8, "iterations": 10}


def fit(data: TrainingData, method: str, **params: object) -> SimilarUsersModel:
    recipe = get_recipe(NAME)
    config = parse_config(recipe, {"method": method, **SMALL_ALS, **params})
    model = recipe.fit(data, config, seed=4)
    assert isinstance(model, SimilarUsersModel)
    assert isinstance(model, UserSimilarity)
    return model


def history_of(data: TrainingData, user: int) -> IntArray:
    return np.asarray(data.items[data.users == user], dtype=np.int32)


@pytest.mark.parametrize("method", METHODS)
def test_contract(method: str, clustered_data: TrainingData, tmp_path: Path) -> None:
    check_contract(NAME, clustered_data, {"method": method, **SMALL_ALS}, tmp_path)


@pytest.mark.parametrize("method", METHODS)
def test_nearest_users_share_the_cluster(method: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, method)
    users = np.array([0, 7, 40], np.int32)
    histories = [history_of(clustered_data, int(user)) for user in users]
    query = Query(
        users=users,
        history_indptr=np.cumsum([0, *map(len, histories)]).astype(np.int64),
        history_items=np.concatenate(histories).astype(np.int32),
    )
    similarity = model.similar_users(query)
    assert similarity.shape == (3, clustered_data.n_users)
    assert similarity.dtype == np.float32
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :10]
    assert (nearest[:2] < 30).all(), nearest
    assert (nearest[2] >= 30).all(), nearest
    # a user is its own best match here: similar_users keeps self, serving drops it
    np.testing.assert_array_equal(nearest[:, 0], users)


@pytest.mark.parametrize("method", METHODS)
def test_cold_user_is_matched_by_its_history(method: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, method)
    similarity = model.similar_users(Query.single(-1, [20, 21, 23, 26]))[0]
    nearest = np.argsort(-similarity, kind="stable")[:10]
    assert (nearest >= 30).all(), nearest


@pytest.mark.parametrize("method", METHODS)
def test_known_user_without_history_uses_its_training_row(
    method: str, clustered_data: TrainingData
) -> None:
    model = fit(clustered_data, method)
    empty = model.similar_users(Query.single(5))
    full = model.similar_users(Query.single(5, history_of(clustered_data, 5)))
    np.testing.assert_allclose(empty, full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_new_events_move_the_match(method: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, method)
    history = history_of(clustered_data, 0)
    before = model.similar_users(Query.single(0, history))[0]
    after = model.similar_users(Query.single(0, np.append(history, [20, 21, 22])))[0]
    assert after[30:].mean() > before[30:].mean()


@pytest.mark.parametrize("method", METHODS)
def test_score_recommends_what_neighbours_liked(method: str, clustered_data: TrainingData) -> None:
    model = fit(clustered_data, method, neighbours=10)
    for user in (3, 50):
        history = history_of(clustered_data, user)
        scores = model.score(Query.single(user, history))[0].astype(np.float64)
        scores[history] = -np.inf
        top = np.argsort(-scores, kind="stable")[:4]
        assert ((top < 20) == (user < 30)).all(), (user, top)


def test_min_shared_drops_thin_overlaps(clustered_data: TrainingData) -> None:
    loose = fit(clustered_data, "interactions", min_shared=1)
    strict = fit(clustered_data, "interactions", min_shared=8)
    query = Query.single(0, history_of(clustered_data, 0))
    shared = (clustered_data.user_item_matrix() @ clustered_data.user_item_matrix()[0].T).toarray()
    thin = shared.ravel() < 8
    assert (thin & (shared.ravel() > 0)).any()  # some cluster-A users share only 6 or 7 items
    assert loose.similar_users(query)[0, thin].any()
    assert not strict.similar_users(query)[0, thin].any()
    assert strict.similar_users(query)[0, ~thin].all()


def test_nobody_similar_gives_popularity(clustered_data: TrainingData) -> None:
    model = fit(clustered_data, "interactions")
    assert not model.similar_users(Query.single(-1)).any()
    counts = clustered_data.item_counts()
    np.testing.assert_allclose(model.score(Query.single(-1))[0], counts / counts.max())


def test_hybrid_is_the_weighted_blend(clustered_data: TrainingData) -> None:
    query = Query.single(-1, [1, 2, 3, 30])
    parts = {m: fit(clustered_data, m).similar_users(query) for m in METHODS[:2]}
    hybrid = fit(clustered_data, "hybrid", vector_weight=0.25).similar_users(query)
    expected = 0.25 * parts["vectors"] + 0.75 * parts["interactions"]
    np.testing.assert_allclose(hybrid, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params",
    [{"method": "graph"}, {"min_shared": 0}, {"vector_weight": 1.5}, {"factors": 0}],
)
def test_bad_hyperparameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(InvalidInput, match=NAME):
        parse_config(get_recipe(NAME), params)


def test_search_space_gives_valid_configs() -> None:
    import optuna

    recipe = get_recipe(NAME)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    methods = set()
    for _ in range(20):
        trial = study.ask()
        params = recipe.search_space(trial)  # type: ignore[attr-defined]
        parse_config(recipe, params)
        methods.add(params["method"])
        study.tell(trial, 0.0)
    assert methods == set(METHODS)
