"""``trending-now``: what is rising now — velocity of interactions over recent windows.

The model keeps a dense (n_items x n_buckets) float32 array of weighted interaction counts in time
buckets of ``bucket_hours``, absolute in epoch time (bucket ``b`` covers ``[b, b + 1) *
bucket_seconds``). For a query at time ``t`` the *recent* window is the last ``windows`` buckets
visible at ``t`` and the *baseline* is the ``baseline_windows`` windows of the same length before
it. The score blends volume with growth::

    trend = recent * ((recent + prior) / (baseline + prior)) ** growth_weight

with ``baseline`` the per-window average, so ``growth_weight = 0`` is recent popularity, and the
``prior`` (a pseudo-count on both sides) keeps one click on a cold item from looking like a
thousand-fold rise. Items with nothing recent score ~0, ordered among themselves by the window's
total activity.

"Visible at ``t``" means only events strictly before ``t``: the buckets that end at or before
``t``, plus every bucket when ``t`` is after the latest event the model has counted (then all of
them are in the past). ``query.times`` of None means now, after the latest event. Live events
arrive through :meth:`TrendingModel.observe`; at most ``max_buckets`` buckets are kept, so memory
stays bounded and queries older than the kept span see less (or no) history.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field, model_validator

from tastebud.recipes.base import (
    FloatArray,
    Int64Array,
    IntArray,
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

# Items with no recent activity are ordered by total activity, with a bonus below this fraction
# of the smallest positive trend in the row, so it never overtakes a truly trending item.
TIE_BREAK = 1e-3


class TrendingConfig(RecipeConfig):
    """Hyperparameters of ``trending-now``."""

    bucket_hours: float = Field(default=24.0, ge=1 / 60, le=24.0 * 31, description="bucket width")
    windows: int = Field(default=7, ge=1, le=365, description="buckets in the recent window")
    baseline_windows: int = Field(
        default=4, ge=1, le=52, description="windows before the recent one that form the baseline"
    )
    growth_weight: float = Field(
        default=0.5, ge=0.0, le=4.0, description="exponent of the growth ratio; 0 = volume only"
    )
    prior: float = Field(
        default=10.0, gt=0.0, le=10_000.0, description="pseudo-count smoothing the growth ratio"
    )
    max_buckets: int = Field(
        default=400, ge=1, le=100_000, description="buckets kept in memory (older ones dropped)"
    )

    @property
    def span(self) -> int:
        """Buckets one score reads: the recent window and its baseline."""
        return self.windows * (1 + self.baseline_windows)

    @property
    def bucket_seconds(self) -> int:
        return max(1, round(self.bucket_hours * 3600))

    @model_validator(mode="after")
    def _keeps_one_span(self) -> TrendingConfig:
        if self.max_buckets < self.span:
            raise ValueError(
                f"max_buckets must be at least windows * (1 + baseline_windows) = {self.span}, "
                f"got {self.max_buckets}"
            )
        return self


class TrendingModel:
    """Bucketed counts that score the trend as of each query's time and fold in live events."""

    history_window = 0  # scores read the query's time, not its history

    def __init__(
        self,
        n_items: int,
        config: TrendingConfig,
        *,
        counts: FloatArray | None = None,
        first_bucket: int = 0,
        latest_time: int | None = None,
    ) -> None:
        self.n_items = n_items
        self.config = config
        self.counts = np.zeros((n_items, 0), np.float32) if counts is None else counts
        self.first_bucket = first_bucket  # absolute bucket index of column 0
        self.latest_time = latest_time  # newest event counted, epoch seconds

    # scoring ------------------------------------------------------------------------------------
    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items) trend scores as of each query's time (None: now)."""
        ends, inverse = np.unique(self._end_buckets(query.times, len(query)), return_inverse=True)
        scores: FloatArray = self._trend(ends)[inverse.reshape(-1)]
        return scores

    def _end_buckets(self, times: Int64Array | None, n: int) -> Int64Array:
        """One past the last bucket each query may see."""
        n_buckets = self.counts.shape[1]
        if times is None:
            return np.full(n, self.first_bucket + n_buckets, np.int64)
        times = np.asarray(times, np.int64)
        ends = times // self.config.bucket_seconds  # buckets that ended by t
        if self.latest_time is not None:
            # after the latest event every counted event is in the past, the open bucket too
            ends = np.where(times > self.latest_time, ends + 1, ends)
        return ends.astype(np.int64)

    def _trend(self, ends: Int64Array) -> FloatArray:
        """(len(ends) x n_items) trend with recent windows ending (exclusive) at ``ends``."""
        config = self.config
        columns = self.first_bucket + np.arange(self.counts.shape[1], dtype=np.int64)
        recent_start = ends - config.windows
        baseline_start = ends - config.span
        recent_mask = window_mask(columns, recent_start, ends)
        baseline_mask = window_mask(columns, baseline_start, recent_start)
        # one product reads both windows for every distinct end: (n_items x 2 * n_ends)
        sums = self.counts @ np.hstack([recent_mask, baseline_mask])
        sums = np.maximum(sums, 0.0).T  # negative event weights never make a trend
        recent, baseline = sums[: len(ends)], sums[len(ends) :] / config.baseline_windows
        growth = (recent + config.prior) / (baseline + config.prior)
        trend = recent * growth**config.growth_weight
        smallest = np.where(trend > 0, trend, np.inf).min(axis=1, keepdims=True)
        smallest[~np.isfinite(smallest)] = 1.0
        activity = recent + baseline
        share = activity / (activity.max(axis=1, keepdims=True) + 1e-12)
        scores: FloatArray = (trend + TIE_BREAK * smallest * share).astype(np.float32)
        return scores

    # live updates -------------------------------------------------------------------------------
    def observe(
        self,
        items: IntArray,
        timestamps: Int64Array,
        *,
        weights: FloatArray | None = None,
    ) -> None:
        """Count new interactions (weight 1 unless given); unknown items and events older than
        the kept buckets are ignored."""
        items = np.asarray(items, np.int64)
        timestamps = np.asarray(timestamps, np.int64)
        values = np.ones(len(items), np.float32) if weights is None else np.asarray(weights)
        known = (items >= 0) & (items < self.n_items)
        items, timestamps, values = items[known], timestamps[known], values[known]
        if len(items) == 0:
            return
        buckets = timestamps // self.config.bucket_seconds
        self._cover(int(buckets.min()), int(buckets.max()))
        kept = buckets >= self.first_bucket
        np.add.at(self.counts, (items[kept], buckets[kept] - self.first_bucket), values[kept])
        newest = int(timestamps.max())
        self.latest_time = newest if self.latest_time is None else max(self.latest_time, newest)

    def _cover(self, low: int, high: int) -> None:
        """Grow the columns to reach bucket ``high`` (and ``low`` when empty), keeping at most
        ``max_buckets`` of the newest."""
        n_buckets = self.counts.shape[1]
        first = low if n_buckets == 0 else self.first_bucket
        last = max(high, first + n_buckets - 1)
        first = max(first, last - self.config.max_buckets + 1)
        if first == self.first_bucket and last == first + n_buckets - 1:
            return
        grown = np.zeros((self.n_items, last - first + 1), np.float32)
        old_columns = self.first_bucket + np.arange(n_buckets)
        kept = old_columns >= first
        grown[:, old_columns[kept] - first] = self.counts[:, kept]
        self.counts, self.first_bucket = grown, first

    # artifacts ----------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        meta = {
            "recipe": TrendingNow.name,
            "config": self.config.model_dump(),
            "n_items": self.n_items,
            "first_bucket": self.first_bucket,
            "latest_time": self.latest_time,
        }
        # most items are quiet in most buckets: sparse on disk, dense in memory
        save_arrays(folder, meta, {"counts": sp.csr_matrix(self.counts)})


def window_mask(
    columns: Int64Array, starts: Int64Array, ends: Int64Array
) -> npt.NDArray[np.float32]:
    """(len(columns) x len(starts)) 1.0 where ``starts[j] <= columns[i] < ends[j]``."""
    inside = (columns[:, None] >= starts[None, :]) & (columns[:, None] < ends[None, :])
    return inside.astype(np.float32)


class TrendingNow:
    """The ``trending-now`` recipe."""

    name: ClassVar[str] = "trending-now"
    config_type: ClassVar[type[RecipeConfig]] = TrendingConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> TrendingModel:
        """Bucket the training interactions by time; ``seed`` is unused."""
        started = time.perf_counter()
        settings = TrendingConfig.model_validate(config.model_dump())
        model = TrendingModel(data.n_items, settings)
        model.observe(data.items, data.timestamps, weights=data.weights)
        if progress is not None:
            progress(1.0, "bucketed")
        _log.info(
            "fit done recipe=%s items=%d buckets=%d seconds=%.3f",
            self.name, data.n_items, model.counts.shape[1], time.perf_counter() - started,
        )  # fmt: skip
        return model

    def load(self, folder: Path) -> TrendingModel:
        """Read a model written by :meth:`TrendingModel.save`."""
        meta, arrays = load_arrays(folder)
        return TrendingModel(
            int(meta["n_items"]),
            TrendingConfig(**meta["config"]),
            counts=arrays["counts"].toarray().astype(np.float32),
            first_bucket=int(meta["first_bucket"]),
            latest_time=meta["latest_time"],
        )

    def search_space(self, trial: optuna.trial.BaseTrial) -> dict[str, object]:
        """Optuna search space over the bucket width, window lengths and the blend."""
        windows = trial.suggest_int("windows", 1, 14)
        baseline_windows = trial.suggest_int("baseline_windows", 1, 8)
        default_kept = TrendingConfig.model_fields["max_buckets"].default
        return {
            "bucket_hours": trial.suggest_categorical("bucket_hours", [1.0, 6.0, 24.0]),
            "windows": windows,
            "baseline_windows": baseline_windows,
            "growth_weight": trial.suggest_float("growth_weight", 0.0, 2.0),
            "prior": trial.suggest_float("prior", 0.1, 100.0, log=True),
            "max_buckets": max(default_kept, windows * (1 + baseline_windows)),
        }
