"""Score a model on a split with full ranking, and run a whole offline evaluation.

Every item is ranked (no sampled negatives); items in the query's history are excluded; top-k
uses ``np.argpartition`` in bounded batches. Ties are broken towards the lower item index, so
results do not depend on the partition algorithm.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal, get_args

import numpy as np
from threadpoolctl import threadpool_limits

from tastebud.errors import InvalidInput
from tastebud.evaluation import metrics
from tastebud.evaluation.splits import Split, Targets, leave_last_out, time_holdout
from tastebud.recipes import (
    Model,
    Query,
    Recipe,
    RecipeConfig,
    TrainingData,
    get_recipe,
    parse_config,
)
from tastebud.recipes.base import FloatArray, IntArray, ProgressFn

_log = logging.getLogger(__name__)

EvaluationProtocol = Literal["leave-last-out", "time-holdout"]
PROTOCOLS: tuple[str, ...] = get_args(EvaluationProtocol)
# The metric tuning maximizes, per protocol.
TUNING_METRIC = {
    "leave-last-out": "ndcg@10",
    "time-holdout": "normalized_discounted_cumulative_gain_at_10",
}
_DEPTH = 25  # the deepest cut-off any metric reads
_SCORES_PER_BATCH = 1 << 24


def rank_top_k(
    model: Model,
    query: Query,
    k: int,
    *,
    exclude_history: bool = True,
    batch_size: int | None = None,
) -> IntArray:
    """The k best items per query, best first, as an ``(len(query), k)`` int32 array.

    Scores every item, sets history items (when ``exclude_history``) and NaN scores to -inf,
    and marks slots with no rankable item left as -1. Equal scores rank the lower index first.
    Only ``batch_size`` rows of scores exist at a time (default: about 16M scores, at most
    1024 rows).
    """
    if batch_size is None:
        batch_size = max(1, min(1024, _SCORES_PER_BATCH // max(1, int(model.n_items))))
    ranked = np.full((len(query), k), -1, dtype=np.int32)
    for start in range(0, len(query), batch_size):
        stop = min(start + batch_size, len(query))
        batch = query.rows(start, stop)
        scores = np.array(model.score(batch), dtype=np.float32)  # a writable copy
        if scores.shape[0] != len(batch):
            raise ValueError(f"model scored {scores.shape[0]} rows for {len(batch)} queries")
        scores[np.isnan(scores)] = -np.inf
        if exclude_history:
            rows = np.repeat(np.arange(len(batch)), np.diff(batch.history_indptr))
            scores[rows, batch.history_items] = -np.inf
        ranked[start:stop] = _top_k(scores, k)
    return ranked


def _top_k(scores: FloatArray, k: int) -> IntArray:
    """Top-k columns per row, best first; ties towards the lower index; -inf slots are -1."""
    n_rows, n_items = scores.shape
    depth = min(k, n_items)
    out = np.full((n_rows, k), -1, dtype=np.int32)
    if depth == 0 or n_rows == 0:
        return out
    partition = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    threshold = np.take_along_axis(scores, partition, axis=1).min(axis=1, keepdims=True)
    above = scores > threshold
    # among items equal to the threshold, take the lowest indexes until depth is reached
    at = scores == threshold
    room = depth - above.sum(axis=1, keepdims=True)
    chosen = above | (at & (np.cumsum(at, axis=1) <= room))
    items = np.nonzero(chosen)[1].reshape(n_rows, depth)  # ascending index within a row
    order = np.argsort(-np.take_along_axis(scores, items, axis=1), axis=1, kind="stable")
    items = np.take_along_axis(items, order, axis=1)
    finite = np.take_along_axis(scores, items, axis=1) > -np.inf
    out[:, :depth] = np.where(finite, items, -1)
    return out


def evaluate(model: Model, targets: Targets, *, protocol: EvaluationProtocol) -> dict[str, float]:
    """Metrics of ``model`` on ``targets`` (full ranking, history excluded).

    leave-last-out: ``ndcg@10, hr@10, ndcg@20, hr@20, mrr@25, coverage@10``. time-holdout:
    ``precision_at_{5,10,25}``, ``normalized_discounted_cumulative_gain_at_{5,10,25}``,
    ``mean_reciprocal_rank_at_25`` and ``coverage`` (share of items in any top-25 list).
    """
    if len(targets) == 0:
        raise InvalidInput("no users to score")
    ranked = rank_top_k(model, targets.query, _DEPTH)
    n_items = int(model.n_items)
    if protocol == "leave-last-out":
        return _leave_last_out_metrics(ranked, targets.items, n_items)
    if protocol == "time-holdout":
        return _time_holdout_metrics(ranked, targets.relevant(), n_items)
    raise InvalidInput(f"unknown protocol {protocol!r}; expected {' or '.join(PROTOCOLS)}")


def _leave_last_out_metrics(ranked: IntArray, target: IntArray, n_items: int) -> dict[str, float]:
    return {
        "ndcg@10": metrics.ndcg_at_k(ranked, target, 10),
        "hr@10": metrics.hit_rate_at_k(ranked, target, 10),
        "ndcg@20": metrics.ndcg_at_k(ranked, target, 20),
        "hr@20": metrics.hit_rate_at_k(ranked, target, 20),
        "mrr@25": metrics.mrr_at_k(ranked, target, 25),
        "coverage@10": metrics.coverage_at_k(ranked, n_items, 10),
    }


def _time_holdout_metrics(
    ranked: IntArray, relevant: list[IntArray], n_items: int
) -> dict[str, float]:
    values = {f"precision_at_{k}": metrics.precision_at_k(ranked, relevant, k) for k in (5, 10, 25)}
    for k in (5, 10, 25):
        ndcg = metrics.normalized_dcg_at_k(ranked, relevant, k)
        values[f"normalized_discounted_cumulative_gain_at_{k}"] = ndcg
    values["mean_reciprocal_rank_at_25"] = metrics.mean_reciprocal_rank_at_k(ranked, relevant, 25)
    values["coverage"] = metrics.coverage_at_k(ranked, n_items, 25)
    return values


def split_data(data: TrainingData, protocol: EvaluationProtocol) -> Split:
    """The split ``protocol`` prescribes, refusing one with nobody to score.

    Raises:
        InvalidInput: unknown protocol, or no user to score in validation or test.
    """
    if protocol == "leave-last-out":
        split = leave_last_out(data)
        if len(split.test) == 0:
            raise InvalidInput(
                f"leave-last-out scores users with at least 3 interactions; none of the "
                f"{int((np.bincount(data.users) > 0).sum())} users has that many"
            )
        return split
    if protocol == "time-holdout":
        split = time_holdout(data)
        if len(split.validation) == 0 or len(split.test) == 0:
            raise InvalidInput("time-holdout: no user has a new item in a held-out window")
        return split
    raise InvalidInput(f"unknown protocol {protocol!r}; expected {' or '.join(PROTOCOLS)}")


def fit_and_evaluate(
    recipe: Recipe,
    config: RecipeConfig,
    data: TrainingData,
    targets: Targets,
    *,
    protocol: EvaluationProtocol,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> tuple[dict[str, float], float]:
    """Fit ``recipe`` on ``data`` and score it on ``targets``: ``(metrics, fit seconds)``."""
    started = time.perf_counter()
    model = recipe.fit(data, config, seed=seed, progress=progress)
    seconds = time.perf_counter() - started
    _log.info("fit done recipe=%s interactions=%d seconds=%.2f", recipe.name, data.size, seconds)
    return evaluate(model, targets, protocol=protocol), seconds


def run_evaluation(
    data: TrainingData,
    recipe: str | Recipe,
    params: dict[str, object],
    *,
    protocol: EvaluationProtocol = "leave-last-out",
    seed: int = 0,
    tune_trials: int = 0,
    progress: ProgressFn | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """Validate, optionally tune, then refit on train + validation and report test metrics.

    Returns:
        The test metrics at the top level, plus ``validation`` (metrics of the fit on
        ``train``), ``train_seconds`` (the final fit), ``users`` (scored in test),
        ``validation_users``, ``recipe``, ``params`` (every hyperparameter used),
        ``protocol``, ``seed`` and ``tune_trials``.

    Raises:
        InvalidInput: unknown recipe or protocol, bad hyperparameters, or nobody to score.
    """
    report = progress or _silent
    chosen = get_recipe(recipe) if isinstance(recipe, str) else recipe
    config = parse_config(chosen, params)  # fail fast on a bad --param
    split = split_data(data, protocol)
    with threadpool_limits(limits=threads):
        if tune_trials > 0:
            from tastebud.evaluation.tuning import tune

            tuned = tune(
                chosen, split, fixed=params, n_trials=tune_trials, seed=seed,
                progress=_stage(report, 0.0, 0.6, "tune"),
            )  # fmt: skip
            config = parse_config(chosen, tuned)
        start = 0.6 if tune_trials > 0 else 0.0
        middle = (start + 1.0) / 2
        validation, _ = fit_and_evaluate(
            chosen, config, split.train, split.validation, protocol=protocol, seed=seed,
            progress=_stage(report, start, middle, "fit on train"),
        )  # fmt: skip
        test, seconds = fit_and_evaluate(
            chosen, config, split.train_and_validation, split.test, protocol=protocol,
            seed=seed, progress=_stage(report, middle, 1.0, "fit on train + validation"),
        )  # fmt: skip
    report(1.0, "done")
    return {
        **test,
        "train_seconds": seconds,
        "users": len(split.test),
        "validation_users": len(split.validation),
        "recipe": chosen.name,
        "params": config.model_dump(mode="json"),
        "protocol": protocol,
        "seed": seed,
        "tune_trials": tune_trials,
        "validation": validation,
    }


def _silent(fraction: float, message: str) -> None:
    """A progress callback that reports nothing."""


def _stage(report: ProgressFn, low: float, high: float, stage: str) -> ProgressFn:
    """Report that ``stage`` starts; return a callback mapping its 0..1 onto ``low..high``."""
    report(low, stage)

    def scaled(fraction: float, message: str) -> None:
        report(low + (high - low) * min(max(fraction, 0.0), 1.0), f"{stage}: {message}")

    return scaled
