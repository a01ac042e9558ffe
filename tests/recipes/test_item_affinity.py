"""item-affinity: every user's affinity to an item; cluster-A items find cluster-A users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tastebud.recipes import TrainingData, UserAffinity, get_recipe, parse_config

from .contract import check_contract
from .test_user_personalization import ALGORITHMS, PARAMS

NAME = "item-affinity"


def fit(data: TrainingData, algorithm: str) -> UserAffinity:
    recipe = get_recipe(NAME)
    model = recipe.fit(data, parse_config(recipe, PARAMS[algorithm]), seed=2)
    assert isinstance(model, UserAffinity)
    return model


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_contract(algorithm: str, clustered_data: TrainingData, tmp_path: Path) -> None:
    check_contract(NAME, clustered_data, PARAMS[algorithm], tmp_path)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_item_finds_the_users_of_its_cluster(
    algorithm: str, clustered_data: TrainingData
) -> None:
    model = fit(clustered_data, algorithm)
    items = np.array([2, 15, 22, 35], np.int32)  # A, A, B, B
    affinity = model.users_for_items(items)
    assert affinity.shape == (len(items), clustered_data.n_users)
    assert affinity.dtype == np.float32
    top_users = np.argsort(-affinity, axis=1, kind="stable")[:, :10]
    assert (top_users[:2] < 30).all(), top_users
    assert (top_users[2:] >= 30).all(), top_users


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_users_who_lack_the_item_rank_by_taste(
    algorithm: str, clustered_data: TrainingData
) -> None:
    """A segment for an item: among users who never touched it, its cluster comes first."""
    model = fit(clustered_data, algorithm)
    item = 17  # a rarely-touched cluster-A item
    touched = np.unique(clustered_data.users[clustered_data.items == item])
    affinity = model.users_for_items(np.array([item], np.int32))[0].astype(np.float64)
    affinity[touched] = -np.inf
    assert len(touched) < 20
    top_users = np.argsort(-affinity, kind="stable")[:10]
    assert (top_users < 30).all(), top_users


def test_unknown_item_gets_zero_affinity(clustered_data: TrainingData) -> None:
    model = fit(clustered_data, "ease")
    affinity = model.users_for_items(np.array([3, 999, -1], np.int32))
    assert np.abs(affinity[0]).sum() > 0
    assert not affinity[1:].any()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_affinity_survives_save_and_load(
    algorithm: str, clustered_data: TrainingData, tmp_path: Path
) -> None:
    model = fit(clustered_data, algorithm)
    model.save(tmp_path)  # type: ignore[attr-defined]
    reloaded = get_recipe(NAME).load(tmp_path)
    assert isinstance(reloaded, UserAffinity)
    items = np.arange(clustered_data.n_items, dtype=np.int32)
    np.testing.assert_allclose(
        reloaded.users_for_items(items), model.users_for_items(items), rtol=1e-6
    )
