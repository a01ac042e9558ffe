"""personalized-ranking: the user-personalization model under its own name, ordering a list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastebud.recipes import Query, TrainingData, get_recipe, parse_config

from .contract import check_contract
from .test_user_personalization import ALGORITHMS, PARAMS

NAME = "personalized-ranking"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_contract(algorithm: str, clustered_data: TrainingData, tmp_path: Path) -> None:
    check_contract(NAME, clustered_data, PARAMS[algorithm], tmp_path)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_orders_a_candidate_list_by_taste(algorithm: str, clustered_data: TrainingData) -> None:
    recipe = get_recipe(NAME)
    model = recipe.fit(clustered_data, parse_config(recipe, PARAMS[algorithm]), seed=1)
    candidates = np.array([25, 3, 33, 9, 38, 15], np.int32)  # B, A, B, A, B, A
    for user, first_half in ((0, True), (50, False)):
        history = clustered_data.items[clustered_data.users == user]
        scores = model.score(Query.single(user, history))[0, candidates]
        ranked = candidates[np.argsort(-scores, kind="stable")]
        assert ((ranked[:3] < 20) == first_half).all(), (user, ranked)


def test_same_scores_as_user_personalization(clustered_data: TrainingData) -> None:
    query = Query.single(4, clustered_data.items[clustered_data.users == 4])
    scores = []
    for name in (NAME, "user-personalization"):
        recipe = get_recipe(name)
        model = recipe.fit(clustered_data, parse_config(recipe, PARAMS["als"]), seed=5)
        scores.append(model.score(query))
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)


def test_saved_model_names_its_recipe(clustered_data: TrainingData, tmp_path: Path) -> None:
    recipe = get_recipe(NAME)
    recipe.fit(clustered_data, parse_config(recipe, PARAMS["ease"])).save(tmp_path)
    assert '"recipe": "personalized-ranking"' in (tmp_path / "model.json").read_text()
