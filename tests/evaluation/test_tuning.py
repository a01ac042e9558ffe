"""Optuna search on the validation phase: finds the planted optimum, keeps fixed values."""

from __future__ import annotations

import pytest

from tastebud.errors import InvalidInput
from tastebud.evaluation import leave_last_out, run_evaluation
from tastebud.evaluation.tuning import tune
from tastebud.recipes import get_recipe
from tests.evaluation.conftest import SuccessorRecipe, TunableSuccessorRecipe, chain_data
from tests.recipes.conftest import clustered


def test_tuning_finds_the_planted_offset() -> None:
    split = leave_last_out(chain_data())
    # offsets 0..3: only 1 predicts the next item; 12 seeded trials cover all four values
    assert tune(TunableSuccessorRecipe(), split, n_trials=12, seed=0) == {"offset": 1}


def test_fixed_params_are_not_searched() -> None:
    recipe = TunableSuccessorRecipe()
    best = tune(recipe, leave_last_out(chain_data()), fixed={"offset": "2"}, n_trials=3, seed=0)
    assert best == {"offset": "2"}


def test_run_evaluation_with_tuning_reports_the_tuned_params() -> None:
    recipe = TunableSuccessorRecipe()
    result = run_evaluation(chain_data(), recipe, {}, tune_trials=12, seed=0)
    assert result["params"] == {"offset": 1}
    assert result["ndcg@10"] == 1.0 and result["tune_trials"] == 12
    assert len(recipe.fitted_sizes) == 12 + 2  # the trials, then validation and final fits


def test_same_seed_same_trials() -> None:
    split = leave_last_out(chain_data())
    first = tune(TunableSuccessorRecipe(), split, n_trials=2, seed=5)
    assert tune(TunableSuccessorRecipe(), split, n_trials=2, seed=5) == first


def test_recipe_without_search_space() -> None:
    with pytest.raises(InvalidInput, match="recipe successor has no search space"):
        tune(SuccessorRecipe(), leave_last_out(chain_data()), n_trials=2)


def test_a_fixed_value_steers_the_search_space_branch() -> None:
    recipe = get_recipe("user-personalization")
    best = tune(recipe, leave_last_out(clustered()), fixed={"algorithm": "als"}, n_trials=3)
    assert best["algorithm"] == "als"
    assert "alpha" in best and "l2" not in best  # ALS's own hyperparameters were searched
