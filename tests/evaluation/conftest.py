"""Planted-answer data and a tiny recipe for the evaluation tests.

In :func:`chain_data` user u walks the item ring ``u, u+1, u+2, ...``; the successor recipe
scores ``last history item + offset`` highest, so with ``offset=1`` it is always right.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tastebud.recipes import Query, RecipeConfig, TrainingData
from tastebud.recipes.base import FloatArray, ProgressFn

if TYPE_CHECKING:
    import optuna


def chain_data(*, n_users: int = 6, length: int = 5, n_items: int = 30) -> TrainingData:
    """User u's j-th interaction is item ``(u + j) % n_items`` at time ``10 * j + u``."""
    users = np.repeat(np.arange(n_users), length)
    steps = np.tile(np.arange(length), n_users)
    times = 10 * steps + users
    order = np.argsort(times, kind="stable")
    return TrainingData(
        users=users[order].astype(np.int32),
        items=((users + steps) % n_items)[order].astype(np.int32),
        timestamps=times[order].astype(np.int64),
        weights=np.ones(len(users), np.float32),
        n_users=n_users,
        n_items=n_items,
    )


class SuccessorConfig(RecipeConfig):
    offset: int = 1


class SuccessorModel:
    """Scores item ``last + offset`` 1, everything else by a small ramp favouring high indexes."""

    def __init__(self, n_items: int, offset: int) -> None:
        self.n_items = n_items
        self.offset = offset
        self.queries: list[Query] = []

    def score(self, query: Query) -> FloatArray:
        self.queries.append(query)
        scores = np.tile(np.arange(self.n_items, dtype=np.float32) / 1e3, (len(query), 1))
        for row in range(len(query)):
            history = query.history(row)
            if len(history):
                scores[row, (history[-1] + self.offset) % self.n_items] = 1.0
        return scores

    def save(self, folder: Path) -> None:
        raise NotImplementedError


class SuccessorRecipe:
    name: ClassVar[str] = "successor"
    config_type: ClassVar[type[RecipeConfig]] = SuccessorConfig

    def __init__(self) -> None:
        self.fitted_sizes: list[int] = []

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> SuccessorModel:
        self.fitted_sizes.append(data.size)
        assert isinstance(config, SuccessorConfig)
        return SuccessorModel(data.n_items, config.offset)

    def load(self, folder: Path) -> SuccessorModel:
        raise NotImplementedError


class TunableSuccessorRecipe(SuccessorRecipe):
    name: ClassVar[str] = "tunable-successor"

    def search_space(self, trial: optuna.Trial) -> dict[str, object]:
        return {"offset": trial.suggest_int("offset", 0, 3)}
