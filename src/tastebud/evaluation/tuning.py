"""Hyperparameter search with Optuna on the validation phase of a :class:`Split`.

A recipe opts in by defining ``search_space(self, trial: optuna.Trial) -> dict[str, object]``,
which suggests values and returns hyperparameters. Values the caller fixed (``--param``) override
whatever the space suggests. Trials run in this process, one after another, with a seeded TPE
sampler, so the same seed gives the same trials.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from tastebud.errors import InvalidInput
from tastebud.evaluation.evaluate import TUNING_METRIC, EvaluationProtocol, fit_and_evaluate
from tastebud.evaluation.splits import Split
from tastebud.recipes import Recipe, parse_config
from tastebud.recipes.base import ProgressFn

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

SearchSpace = Callable[["optuna.Trial"], dict[str, object]]


def search_space_of(recipe: Recipe) -> SearchSpace:
    """The recipe's ``search_space`` method.

    Raises:
        InvalidInput: the recipe defines none.
    """
    space = getattr(recipe, "search_space", None)
    if not callable(space):
        raise InvalidInput(
            f"recipe {recipe.name} has no search space; drop --tune and set its "
            "hyperparameters with --param"
        )
    return cast(SearchSpace, space)


def tune(
    recipe: Recipe,
    split: Split,
    *,
    fixed: Mapping[str, object] | None = None,
    n_trials: int,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> dict[str, object]:
    """Search ``recipe``'s hyperparameters for the best validation metric.

    The metric is ``ndcg@10`` for leave-last-out and
    ``normalized_discounted_cumulative_gain_at_10`` for time-holdout; each trial fits on
    ``split.train`` and scores ``split.validation``.

    Returns:
        The best trial's hyperparameters, ``fixed`` included.

    Raises:
        InvalidInput: the recipe has no search space, or ``n_trials`` < 1.
    """
    import optuna

    space = search_space_of(recipe)
    if n_trials < 1:
        raise InvalidInput(f"--tune needs at least 1 trial, got {n_trials}")
    protocol = cast(EvaluationProtocol, split.protocol)
    metric = TUNING_METRIC[protocol]
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        params = {**space(trial), **(fixed or {})}
        trial.set_user_attr("params", params)
        config = parse_config(recipe, params)
        values, _ = fit_and_evaluate(
            recipe, config, split.train, split.validation, protocol=protocol, seed=seed
        )
        if progress is not None:
            progress((trial.number + 1) / n_trials, f"trial {trial.number + 1}/{n_trials}")
        _log.info("trial done recipe=%s number=%d %s=%.5f", recipe.name, trial.number, metric,
                  values[metric])  # fmt: skip
        return values[metric]

    sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    if fixed:
        # Fixed values also steer the search space's branches (e.g. algorithm=als searches
        # ALS's hyperparameters, not EASE's), instead of being overridden after the fact.
        pinned = {name: _number_or_text(value) for name, value in fixed.items()}
        with warnings.catch_warnings():  # "experimental" since 2.4, stable in practice
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.PartialFixedSampler(pinned, sampler)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    best: dict[str, object] = study.best_trial.user_attrs["params"]
    _log.info("tuning done recipe=%s trials=%d best=%.5f", recipe.name, n_trials, study.best_value)
    return best


def _number_or_text(value: object) -> object:
    """``"128"`` -> 128, ``"0.1"`` -> 0.1 (``--param`` values arrive as text)."""
    if not isinstance(value, str):
        return value
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            continue
    return value
