"""Recipe quality: tastebud's recipes beside ``implicit`` and a most-popular baseline.

    ./dev bench recipe_quality [--datasets ml-1m-seq,ml-100k] [--only NAME,...] [--tune-trials N]

For each data set (``../shared/data/<name>/interactions.csv.gz`` with ``items.csv``, relative to
the repository root) this runs, in one process, the leave-last-out protocol of DESIGN.md (full
ranking, history excluded): every method is fitted on train and scored on the validation item,
then refitted on train + validation and scored on the test item. tastebud's recipes go through
``run_evaluation``; the peers (``implicit``'s ALS and BPR, a five-line most-popular) are fitted
here and scored with the same split and the same ``evaluate``. ``--tune-trials N`` (default 20)
also tunes ``user-personalization`` ALS with Optuna on the validation item. On ml-100k, which has
real timestamps, the time-holdout protocol runs as well (the managed service's metric names).

``--only`` keeps the methods whose key, or key prefix before ``:``, is listed (keys:
``popularity-count``, ``trending-now``, ``similar-items:cosine``, ``similar-items:sequential``,
``user-personalization:ease|als|bpr|als-tuned``, ``sequential``, ``implicit:als``,
``implicit:bpr``, ``baseline:most-popular``). Results:
``benchmarks/results/recipe_quality-<dataset>.json`` (with the sequential transformer's learning
curve: validation NDCG@10 of its own held-out items against wall time, per fit) and a markdown
table per data set on stdout. Every BLAS/OpenMP pool, and torch, is limited to 2 threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from tastebud.evaluation import EvaluationProtocol, evaluate, run_evaluation, split_data
from tastebud.evaluation.splits import Split
from tastebud.recipes import Query, TrainingData, get_recipe
from tastebud.recipes.base import FloatArray
from tastebud.training.data import build_training_data, read_table

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the repository (from a git worktree one level deeper: ../../shared/data)
DATA = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data")
             if p.is_dir()), ROOT.parent / "shared" / "data")  # fmt: skip
RESULTS = Path(__file__).parent / "results"
THREADS = 2
SEED = 0
DATASETS = ("ml-1m-seq", "ml-100k")
TIME_HOLDOUT_DATASETS = ("ml-100k",)  # the ones with real timestamps

# Hand-tuned settings (on the validation item only); anything not listed is the recipe's default.
# BPR uses the implicit peer's settings (implicit's defaults but 64 factors), so the two compare.
HAND_TUNED: dict[str, dict[str, object]] = {
    "popularity-count": {},
    "trending-now": {},
    "similar-items:cosine": {"mode": "cosine"},
    "similar-items:sequential": {"mode": "sequential"},
    "user-personalization:ease": {"algorithm": "ease", "l2": 250.0},
    "user-personalization:als": {
        "algorithm": "als", "factors": 128, "regularization": 0.1, "alpha": 1.0, "iterations": 15,
    },
    "user-personalization:bpr": {
        "algorithm": "bpr", "factors": 64, "learning_rate": 0.01, "regularization": 0.01,
        "iterations": 100,
    },
    "sequential": {},  # the recipe's defaults: what `tastebud evaluate --recipe sequential` runs
}  # fmt: skip
# Tuned with Optuna when --tune-trials > 0: key -> (hand-tuned key, hyperparameters held fixed).
TUNED: dict[str, tuple[str, dict[str, object]]] = {
    "user-personalization:als-tuned": ("user-personalization:als", {"algorithm": "als"}),
}
PEER_PARAMS: dict[str, dict[str, object]] = {
    "implicit:als": {"factors": 128, "regularization": 0.1, "alpha": 1.0, "iterations": 15},
    "implicit:bpr": {"factors": 64},  # implicit's defaults otherwise (lr 0.01, reg 0.01, 100 it.)
    "baseline:most-popular": {},
}
TIME_HOLDOUT_KEYS = (
    "popularity-count", "trending-now", "similar-items:sequential",
    "user-personalization:ease", "user-personalization:als", "baseline:most-popular",
)  # fmt: skip
LABELS = {
    "popularity-count": "tastebud popularity-count",
    "trending-now": "tastebud trending-now",
    "similar-items:cosine": "tastebud similar-items, mode=cosine",
    "similar-items:sequential": "tastebud similar-items, mode=sequential",
    "user-personalization:ease": "tastebud user-personalization EASE, lambda 250",
    "user-personalization:als": "tastebud user-personalization ALS, 128 factors, reg 0.1, alpha 1",
    "user-personalization:bpr": "tastebud user-personalization BPR, 64 factors",
    "user-personalization:als-tuned": "tastebud user-personalization ALS, Optuna-tuned",
    "sequential": "tastebud sequential (transformer, defaults: 15-minute CPU budget per fit)",
    "implicit:als": "implicit ALS, 128 factors, reg 0.1, alpha 1 (peer)",
    "implicit:bpr": "implicit BPR, 64 factors (peer)",
    "baseline:most-popular": "most popular, interaction counts (peer)",
}
# The published reference on ml-1m-seq: (method, NDCG@10, HR@10, coverage@10, train s).
REFERENCE = (
    ("most popular", "0.020", "0.040", "0.06", "< 0.1"),
    ("item-kNN cosine from the user's history", "0.039", "0.073", "0.14", "1.7"),
    ("implicit BPR, 64 factors", "0.042", "0.084", "0.84", "26"),
    ("implicit ALS, 128 factors, reg 0.1, alpha 1", "0.046", "0.094", "0.42", "3.2"),
    ("EASE, lambda 250", "0.053", "0.109", "0.41", "3.6"),
    ("next-item transitions (item i followed by j within 3 steps), scored from the last 3 items",
     "0.143", "0.250", "0.70", "0.1"),
)  # fmt: skip
LEAVE_LAST_OUT_METRICS = ("ndcg@10", "hr@10", "ndcg@20", "hr@20", "mrr@25", "coverage@10")
TIME_HOLDOUT_METRICS = (
    "precision_at_10", "normalized_discounted_cumulative_gain_at_10",
    "mean_reciprocal_rank_at_25", "coverage",
)  # fmt: skip
TUNING_METRIC = {
    "leave-last-out": "ndcg@10",
    "time-holdout": "normalized_discounted_cumulative_gain_at_10",
}


# peers ------------------------------------------------------------------------------------------
@dataclass
class ScoreModel:
    """A tiny Model: ``score`` maps a query to ``(len(query), n_items)`` scores."""

    n_items: int
    scorer: Callable[[Query], FloatArray]

    def score(self, query: Query) -> FloatArray:
        return self.scorer(query)

    def save(self, folder: Path) -> None:
        raise NotImplementedError("benchmark peers are not saved")


def most_popular(data: TrainingData, seed: int) -> ScoreModel:
    """Interaction counts, the same for everybody."""
    counts = np.bincount(data.items, minlength=data.n_items).astype(np.float32)
    return ScoreModel(data.n_items, lambda query: np.tile(counts, (len(query), 1)))


def factor_model(data: TrainingData, users: np.ndarray, items: np.ndarray) -> ScoreModel:
    """Known users score ``user_factors @ item_factors.T``; unknown ones (-1) score zeros."""
    users, items = np.asarray(users, np.float32), np.asarray(items, np.float32)

    def scorer(query: Query) -> FloatArray:
        vectors = users[np.maximum(query.users, 0)] * (query.users >= 0)[:, None]
        return np.asarray(vectors @ items.T, dtype=np.float32)

    return ScoreModel(data.n_items, scorer)


def implicit_als(data: TrainingData, seed: int) -> ScoreModel:
    """``implicit``'s own CPU ALS on the user-item matrix."""
    from implicit.cpu.als import AlternatingLeastSquares

    params: dict[str, Any] = PEER_PARAMS["implicit:als"]
    with threadpool_limits(limits=1, user_api="blas"):  # implicit runs its own threads
        model = AlternatingLeastSquares(
            **params, random_state=seed, num_threads=THREADS, calculate_training_loss=False
        )
        model.fit(data.user_item_matrix(), show_progress=False)
    return factor_model(data, model.user_factors, model.item_factors)


def implicit_bpr(data: TrainingData, seed: int) -> ScoreModel:
    """``implicit``'s own CPU BPR on the user-item matrix."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    params: dict[str, Any] = PEER_PARAMS["implicit:bpr"]
    model = BayesianPersonalizedRanking(**params, random_state=seed, num_threads=THREADS)
    model.fit(data.user_item_matrix(), show_progress=False)
    return factor_model(data, model.user_factors, model.item_factors)


PEERS: dict[str, Callable[[TrainingData, int], ScoreModel]] = {
    "implicit:als": implicit_als,
    "implicit:bpr": implicit_bpr,
    "baseline:most-popular": most_popular,
}


# running ----------------------------------------------------------------------------------------
@dataclass
class Row:
    """One method on one protocol: what the JSON file holds."""

    method: str
    label: str
    protocol: str
    params: dict[str, object] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    train_seconds: float | None = None
    wall_seconds: float = 0.0
    load_1min: float = 0.0
    users: int | None = None
    tune_trials: int = 0
    error: str | None = None
    curve: list[dict[str, float]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        tuning = TUNING_METRIC[self.protocol]
        return {
            "method": self.method, "label": self.label, "protocol": self.protocol,
            "params": self.params, f"validation_{tuning}": self.validation.get(tuning),
            **self.test, "validation": self.validation, "train_seconds": self.train_seconds,
            "wall_seconds": round(self.wall_seconds, 2), "load_1min": self.load_1min,
            "users": self.users, "tune_trials": self.tune_trials, "error": self.error,
            **({"curve": self.curve} if self.curve else {}),
        }  # fmt: skip


class EpochLog(logging.Handler):
    """Collects the sequential recipe's ``epoch done`` log records: the learning curve of each
    fit (``fit`` 1 on train, 2 on train + validation), against wall time."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.points: list[dict[str, float]] = []
        self.fit = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("epoch done") and isinstance(record.args, tuple):
            epoch, loss, ndcg, seconds = record.args
            if epoch == 1:
                self.fit += 1
            self.points.append({"fit": self.fit, "epoch": epoch, "loss": round(loss, 4),
                                "validation_ndcg@10": round(ndcg, 4),
                                "seconds": round(seconds, 1)})  # fmt: skip


def run_peer(split: Split, key: str) -> Row:
    """Fit a peer on train (validation metrics), then on train + validation (test metrics)."""
    fit = PEERS[key]
    protocol: EvaluationProtocol = split.protocol  # type: ignore[assignment]
    with threadpool_limits(limits=THREADS):
        validation = evaluate(fit(split.train, SEED), split.validation, protocol=protocol)
        started = time.perf_counter()
        model = fit(split.train_and_validation, SEED)
        seconds = time.perf_counter() - started
        test = evaluate(model, split.test, protocol=protocol)
    return Row(
        key, LABELS[key], protocol, params=PEER_PARAMS[key], validation=validation,
        test=test, train_seconds=seconds, users=len(split.test),
    )  # fmt: skip


def run_recipe(data: TrainingData, key: str, protocol: str, tune_trials: int) -> Row:
    """One recipe configuration through ``run_evaluation`` (optionally tuned first)."""
    hand_key, fixed = TUNED.get(key, (key, HAND_TUNED.get(key, {})))
    # Fixed values (e.g. algorithm=als) also pin the search space's branch during tuning.
    recipe = get_recipe(hand_key.split(":")[0])
    epochs = EpochLog()
    logger = logging.getLogger("tastebud.recipes.sequential")
    logger.addHandler(epochs)
    logger.setLevel(logging.INFO)
    try:
        result = run_evaluation(
            data, recipe, dict(fixed), protocol=protocol,
            seed=SEED, tune_trials=tune_trials, threads=THREADS, progress=_trial_progress,
        )  # fmt: skip
    finally:
        logger.removeHandler(epochs)
    metrics = {name: result[name] for name in result if _is_metric(name, protocol)}
    return Row(
        key, LABELS[key], protocol, params=result["params"], validation=result["validation"],
        test=metrics, train_seconds=result["train_seconds"], users=result["users"],
        tune_trials=tune_trials, curve=epochs.points,
    )  # fmt: skip


def _trial_progress(fraction: float, message: str) -> None:
    """Show each finished tuning trial (tuning runs for minutes)."""
    if message.startswith("tune: trial"):
        print(f"    {message} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)


def _is_metric(name: str, protocol: str) -> bool:
    if protocol == "leave-last-out":
        return "@" in name
    return name.startswith(("precision_at", "normalized_", "mean_reciprocal")) or name == "coverage"


def run_method(data: TrainingData, splits: dict[str, Split], key: str, protocol: str,
               tune_trials: int) -> Row:  # fmt: skip
    """Run one method, turning any failure into a row that names the error."""
    started = time.perf_counter()
    try:
        if key in PEERS:
            row = run_peer(splits[protocol], key)
        else:
            row = run_recipe(data, key, protocol, tune_trials)
    except Exception as exc:  # a recipe missing or broken must not stop the benchmark
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
        print(f"  ! {key} ({protocol}) failed: {message}", file=sys.stderr)
        traceback.print_exc(limit=3, file=sys.stderr)
        params = PEER_PARAMS.get(key) or HAND_TUNED.get(key) or TUNED.get(key, ("", {}))[1]
        row = Row(key, LABELS[key], protocol, params=dict(params), error=message)
    row.wall_seconds = time.perf_counter() - started
    row.load_1min = round(os.getloadavg()[0], 2)
    _progress(row)
    return row


def _progress(row: Row) -> None:
    metric = TUNING_METRIC[row.protocol]
    if row.error:
        status = "ERROR"
    else:
        status = f"val {row.validation[metric]:.4f} test {row.test[metric]:.4f}"
    fit = row.train_seconds or 0.0
    line = f"  {row.protocol:15} {row.method:32} {status:30} fit {fit:6.1f}s"
    line += f" wall {row.wall_seconds:6.1f}s load {row.load_1min:.2f}"
    print(line, file=sys.stderr, flush=True)


def plan(dataset: str, only: list[str] | None, tune_trials: int) -> list[tuple[str, str, int]]:
    """(method key, protocol, tune trials) to run on ``dataset``, in table order."""
    keys = ["baseline:most-popular", "popularity-count", "trending-now", "similar-items:cosine",
            "similar-items:sequential", "implicit:bpr", "user-personalization:bpr",
            "implicit:als", "user-personalization:als", "user-personalization:ease",
            "sequential"]  # fmt: skip
    runs = [(key, "leave-last-out", 0) for key in keys]
    if tune_trials > 0:
        runs += [(key, "leave-last-out", tune_trials) for key in TUNED]
    if dataset in TIME_HOLDOUT_DATASETS:
        runs += [(key, "time-holdout", 0) for key in TIME_HOLDOUT_KEYS]
    return [run for run in runs if only is None or _selected(run[0], only)]


def _selected(key: str, only: list[str]) -> bool:
    return any(key == name or key.split(":")[0] == name for name in only)


def load(dataset: str) -> TrainingData:
    return load_folder(DATA / dataset)


def load_folder(folder: Path) -> TrainingData:
    """A data set folder's interactions and item metadata as training data."""
    interactions = read_table(folder / "interactions.csv.gz")
    items = read_table(folder / "items.csv", dataset="items")
    data, _, _ = build_training_data(interactions, items)
    return data


# reporting --------------------------------------------------------------------------------------
def machine_facts() -> dict[str, Any]:
    versions = {}
    for package in ("numpy", "scipy", "implicit", "polars", "optuna", "threadpoolctl", "torch"):
        versions[package] = metadata.version(package)
    with threadpool_limits(limits=THREADS):
        pools = [f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()]
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(), "versions": versions,
        "thread_limit": THREADS, "thread_pools": pools,
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.1:
        return "< 0.1"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _label(row: Row) -> str:
    if row.tune_trials and not row.error:
        shown = {k: v for k, v in row.params.items() if k in TUNED_SHOWN}
        settings = ", ".join(f"{k}={_short(v)}" for k, v in shown.items())
        return f"{row.label} ({row.tune_trials} trials: {settings})"
    return row.label


TUNED_SHOWN = ("factors", "regularization", "alpha", "iterations")


def _short(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def leave_last_out_table(dataset: str, rows: list[Row]) -> str:
    header = (f"| method ({dataset}, leave-last-out, tuned on the validation item) "
              "| NDCG@10 | HR@10 | coverage@10 | train s | val NDCG@10 |")  # fmt: skip
    lines = [header, "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row.error:
            lines.append(f"| {_label(row)} | error | | | | |")
            continue
        t = row.test
        lines.append(
            f"| {_label(row)} | {t['ndcg@10']:.3f} | {t['hr@10']:.3f} | {t['coverage@10']:.2f} "
            f"| {_seconds(row.train_seconds)} | {row.validation['ndcg@10']:.3f} |"
        )
    if dataset == "ml-1m-seq":
        lines += [f"| reference: {m} | {n} | {h} | {c} | {s} | |" for m, n, h, c, s in REFERENCE]
    return "\n".join(lines)


def time_holdout_table(dataset: str, rows: list[Row]) -> str:
    names = " | ".join(TIME_HOLDOUT_METRICS)
    lines = [f"| method ({dataset}, time-holdout, last 10% by time) | {names} | train s |",
             "| --- |" + " --- |" * (len(TIME_HOLDOUT_METRICS) + 1)]  # fmt: skip
    for row in rows:
        if row.error:
            lines.append(f"| {_label(row)} | error |" + " |" * len(TIME_HOLDOUT_METRICS))
            continue
        values = " | ".join(f"{row.test[name]:.4f}" for name in TIME_HOLDOUT_METRICS)
        lines.append(f"| {_label(row)} | {values} | {_seconds(row.train_seconds)} |")
    return "\n".join(lines)


def report(dataset: str, data: TrainingData, rows: list[Row], seconds: float) -> None:
    """Print the tables and errors of one data set."""
    scored = {row.protocol: row.users for row in rows if row.users}
    print(f"\n## {dataset}: {data.n_users:,} users, {data.n_items:,} items, "
          f"{data.size:,} interactions; scored users {scored}; {seconds:.0f} s\n")  # fmt: skip
    by_protocol = {p: [r for r in rows if r.protocol == p] for p in TUNING_METRIC}
    if by_protocol["leave-last-out"]:
        print(leave_last_out_table(dataset, by_protocol["leave-last-out"]) + "\n")
    if by_protocol["time-holdout"]:
        print(time_holdout_table(dataset, by_protocol["time-holdout"]) + "\n")
    for row in rows:
        if row.error:
            print(f"- error in {row.method} ({row.protocol}): {row.error}")
    sys.stdout.flush()


def run_dataset(dataset: str, only: list[str] | None, tune_trials: int,
                facts: dict[str, Any]) -> None:  # fmt: skip
    started = time.perf_counter()
    data = load(dataset)
    runs = plan(dataset, only, tune_trials)
    protocols = sorted({protocol for _, protocol, _ in runs})
    splits = {protocol: split_data(data, protocol) for protocol in protocols}  # type: ignore[arg-type]
    print(f"{dataset}: loaded in {time.perf_counter() - started:.1f}s; running {len(runs)} rows",
          file=sys.stderr, flush=True)  # fmt: skip
    rows = [run_method(data, splits, key, protocol, trials) for key, protocol, trials in runs]
    seconds = time.perf_counter() - started
    report(dataset, data, rows, seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    body = {
        "dataset": dataset, "machine": facts, "seed": SEED, "total_seconds": round(seconds, 1),
        "data": {"users": data.n_users, "items": data.n_items, "interactions": data.size},
        "rows": [row.as_json() for row in rows],
        "reference": [dict(zip(("method", "ndcg@10", "hr@10", "coverage@10", "train_seconds"),
                               ref, strict=True)) for ref in REFERENCE]
        if dataset == "ml-1m-seq" else [],
    }  # fmt: skip
    path = RESULTS / f"recipe_quality-{dataset}.json"
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--only", default=None, help="method keys or key prefixes, comma-separated")
    parser.add_argument("--tune-trials", type=int, default=20, help="Optuna trials for ALS")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    started = time.perf_counter()
    facts = machine_facts()
    print(f"# recipe quality, {facts['date']}\n")
    print(f"machine: {facts['cpu_count']} CPUs, {facts['platform']}, {facts['processor']}; "
          f"Python {facts['python']}; "
          + ", ".join(f"{k} {v}" for k, v in facts["versions"].items())
          + f"; thread limit {THREADS} ({', '.join(facts['thread_pools'])}); "
          f"load {facts['load_1_5_15']}")  # fmt: skip
    torch.set_num_threads(THREADS)
    with threadpool_limits(limits=THREADS):
        for dataset in args.datasets.split(","):
            run_dataset(dataset, only, args.tune_trials, facts)
    print(f"\ntotal {time.perf_counter() - started:.0f} s, load at end "
          f"{[round(x, 2) for x in os.getloadavg()]}")  # fmt: skip


if __name__ == "__main__":
    main()
