"""``popularity-count``: what is popular — summed interaction weights per item.

With ``half_life_days`` set, an interaction's weight halves every half-life before the reference
time (the latest timestamp in the training data), so recent popularity counts more. The scores are
static: every query gets the same row, and ``query.times`` is ignored (a popularity snapshot is
taken at training time; ``trending-now`` is the recipe that answers "as of this time").
This recipe is also the cold-start fallback of the others.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import Field

from tastebud.recipes.base import (
    FloatArray,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0


class PopularityConfig(RecipeConfig):
    """Hyperparameters of ``popularity-count``."""

    half_life_days: float | None = Field(
        default=None,
        gt=0.0,
        le=36_500.0,
        description="an interaction's weight halves every this many days before the latest "
        "event; None counts every interaction fully",
    )


class PopularityModel:
    """One popularity score per item, the same for every query."""

    history_window = 0  # scores read no history (seen items are excluded by serving)

    def __init__(self, popularity: FloatArray, config: PopularityConfig) -> None:
        self.popularity = np.asarray(popularity, dtype=np.float32)
        self.config = config
        self.n_items = len(self.popularity)

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): the popularity row for each query (times are ignored)."""
        return np.tile(self.popularity, (len(query), 1))

    def save(self, folder: Path) -> None:
        meta = {"recipe": PopularityCount.name, "config": self.config.model_dump()}
        save_arrays(folder, meta, {"popularity": self.popularity})


def item_popularity(data: TrainingData, *, half_life_days: float | None = None) -> FloatArray:
    """Summed weight per item, each interaction decayed by its age before the latest event."""
    if half_life_days is None or data.size == 0:
        return data.item_counts()
    age_days = (data.timestamps.max() - data.timestamps).astype(np.float64) / SECONDS_PER_DAY
    decayed = data.weights * np.exp2(-age_days / half_life_days)
    return np.bincount(data.items, weights=decayed, minlength=data.n_items).astype(np.float32)


class PopularityCount:
    """The ``popularity-count`` recipe."""

    name: ClassVar[str] = "popularity-count"
    config_type: ClassVar[type[RecipeConfig]] = PopularityConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> PopularityModel:
        """Count (optionally decayed) interaction weights per item; ``seed`` is unused."""
        started = time.perf_counter()
        settings = PopularityConfig.model_validate(config.model_dump())
        popularity = item_popularity(data, half_life_days=settings.half_life_days)
        if progress is not None:
            progress(1.0, "counted")
        seconds = time.perf_counter() - started
        _log.info(
            "fit done recipe=%s items=%d interactions=%d seconds=%.3f",
            self.name, data.n_items, data.size, seconds,
        )  # fmt: skip
        return PopularityModel(popularity, settings)

    def load(self, folder: Path) -> PopularityModel:
        """Read a model written by :meth:`PopularityModel.save`."""
        meta, arrays = load_arrays(folder)
        return PopularityModel(arrays["popularity"], PopularityConfig(**meta["config"]))

    def search_space(self, trial: optuna.trial.BaseTrial) -> dict[str, object]:
        """Optuna search space: decay on or off, and the half-life when on."""
        if not trial.suggest_categorical("decay", [False, True]):
            return {"half_life_days": None}
        return {"half_life_days": trial.suggest_float("half_life_days", 1.0, 365.0, log=True)}
