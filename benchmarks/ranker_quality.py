"""Ranker quality: the learned ranker against every recipe it stacks, in one run (issue 15).

    flock /tmp/tastebud-bench.lock python benchmarks/ranker_quality.py \\
        [--datasets ml-1m-seq,ml-100k] [--data DIR] [--bases default|cheap] [--tune]

DESIGN.md's leave-last-out protocol, scored by ``evaluation.evaluate`` (the full-ranking top-k
``tastebud evaluate`` uses, history excluded). For each data set and each base recipe: a fit on
train scored on the validation item, a fit on train + validation scored on the test item (the
single-recipe rows). Then the ranker, fitted on train + validation as ``tastebud evaluate``
fits it: it holds out each user's last interaction there (the validation item) as its label and
stacks bases fitted on the rest — which is exactly ``train``, so the bases already fitted on
train are handed to it (``fitted_bases``) instead of fitting them a second time (the sequential
transformer takes ~13 minutes a fit on 2 cores); the script checks that the two data sets are
identical first. Two ranker rows: its bases as fitted (``refit_bases=false``, the default) and
the same trees over the bases refitted on train + validation (what ``refit_bases=true`` gives:
the fits the single-recipe rows made). Feature importances (gain) go to the results file
``benchmarks/results/ranker_quality-<dataset>.json``; a markdown table per data set is printed.
Every BLAS/OpenMP pool and torch use 2 threads.

``--tune``: DESIGN.md's tuning protocol for the trees' knobs, on the validation item only. The
ranker is fitted on train, as a validation trial fits it: its labels are each user's last train
item, its bases are fitted on train minus that item (once), and it is scored on the validation
item with full ranking. The candidates and feature matrices (training groups and validation
queries) are built once; each setting of ``GRID`` retrains only the trees. Results:
``benchmarks/results/ranker_tuning-<dataset>.json`` and a table per data set.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recipe_quality import load_folder
from tastebud.evaluation import evaluate, split_data
from tastebud.evaluation.splits import Split
from tastebud.recipes import Model, Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.ranker import Ranker, RankerConfig, RankerModel
from tastebud.recipes.ranker.features import ItemFacts, ItemLog
from tastebud.recipes.ranker.recipe import (
    SCORES_PER_BATCH,
    CandidateRows,
    build_groups,
    fill_below,
)
from tastebud.recipes.ranker.stacking import fit_bases, hold_out_last, train_trees

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
THREADS = 2
SEED = 0
CHEAP_BASES = {
    "next": {"recipe": "similar-items"},
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
    "pop": {"recipe": "popularity-count"},
}
PROTOCOL = "leave-last-out"
# The trees' knobs --tune tries: leaves x rows per leaf at the default rate, then a faster
# rate and no early stopping. At most 100 trees throughout (predict time); 63 leaves and a rate
# of 0.2 lost on ml-100k's validation and cost more to predict, so they are not tried.
GRID: list[dict[str, Any]] = [
    *({"num_leaves": leaves, "min_data_in_leaf": rows}
      for leaves in (7, 15, 31) for rows in (50, 200, 1000)),
    *({"num_leaves": leaves, "min_data_in_leaf": 200, "learning_rate": 0.1} for leaves in (7, 15)),
    {"num_leaves": 15, "min_data_in_leaf": 200, "early_stopping_rounds": 0},
]  # fmt: skip


def same_data(a: TrainingData, b: TrainingData) -> bool:
    """Equal interactions, in the same order."""
    return a.size == b.size and all(
        np.array_equal(getattr(a, name), getattr(b, name))
        for name in ("users", "items", "timestamps", "weights")
    )


def metrics_row(name: str, recipe: str, validation: dict[str, float] | None,
                test: dict[str, float], seconds: float) -> dict[str, Any]:  # fmt: skip
    return {"method": name, "recipe": recipe, **test, "validation": validation,
            "train_seconds": round(seconds, 1),
            "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_bases(
    split: Split, config: RankerConfig
) -> tuple[dict[str, Model], dict[str, Model], list[dict[str, Any]]]:
    """Each base fitted on train (scored on validation) and on train + validation (test)."""
    on_train: dict[str, Model] = {}
    on_all: dict[str, Model] = {}
    rows = []
    for name, spec in config.bases.items():
        recipe = get_recipe(spec.recipe)
        params = parse_config(recipe, dict(spec.params))
        say(f"{name}: fit on train")
        on_train[name] = recipe.fit(split.train, params, seed=SEED)
        validation = evaluate(on_train[name], split.validation, protocol=PROTOCOL)
        say(f"{name}: fit on train + validation")
        started = time.perf_counter()
        on_all[name] = recipe.fit(split.train_and_validation, params, seed=SEED)
        seconds = time.perf_counter() - started
        test = evaluate(on_all[name], split.test, protocol=PROTOCOL)
        rows.append(metrics_row(name, spec.recipe, validation, test, seconds))
        say(f"{name}: test ndcg@10 {test['ndcg@10']:.4f} (val {validation['ndcg@10']:.4f})")
    return on_train, on_all, rows


def run_dataset(folder: Path, bases: dict[str, Any] | None) -> dict[str, Any]:
    data = load_folder(folder)
    split = split_data(data, PROTOCOL)
    ranker = Ranker()
    params = {} if bases is None else {"bases": bases}
    config = RankerConfig.model_validate(parse_config(ranker, params).model_dump())
    held = hold_out_last(split.train_and_validation)
    if not same_data(split.train_and_validation.subset(~held.mask), split.train):
        raise SystemExit("the ranker's held-out rest differs from train: fit its bases inside")
    on_train, on_all, rows = run_bases(split, config)
    say("ranker: fit on train + validation (bases from train)")
    started = time.perf_counter()
    model = ranker.fit(split.train_and_validation, config, seed=SEED, fitted_bases=on_train)
    seconds = time.perf_counter() - started  # the trees and the rows; the bases' fit is above
    test = evaluate(model, split.test, protocol=PROTOCOL)
    rows.append(metrics_row("ranker", "ranker", None, test, seconds))
    say(f"ranker: test ndcg@10 {test['ndcg@10']:.4f}")
    refit_config = config.model_copy(update={"refit_bases": True})
    refit = RankerModel(refit_config, on_all, model.trees, model.facts, training=model.training)
    test = evaluate(refit, split.test, protocol=PROTOCOL)
    rows.append(metrics_row("ranker refit_bases=true", "ranker", None, test, seconds))
    say(f"ranker (bases refitted): test ndcg@10 {test['ndcg@10']:.4f}")
    return {
        "dataset": folder.name, "users": data.n_users, "items": data.n_items,
        "interactions": data.size, "scored": len(split.test), "rows": rows,
        "ranker": {"config": config.model_dump(mode="json"), "training": model.training,
                   "importances": model.importances()},
    }  # fmt: skip


class FrozenScores:
    """A model that answers with scores computed beforehand, one row per user."""

    def __init__(self, users: np.ndarray, scores: np.ndarray) -> None:
        self.n_items = scores.shape[1]
        self.row_of = np.full(int(users.max()) + 1, -1, dtype=np.int64)
        self.row_of[users] = np.arange(len(users))
        self.scores = scores

    def score(self, query: Query) -> np.ndarray:
        return self.scores[self.row_of[query.users]]


def validation_rows(model: RankerModel, query: Query) -> list[tuple[int, CandidateRows]]:
    """The validation queries' candidates and features, in batches as ``score`` takes them."""
    step = max(1, SCORES_PER_BATCH // max(1, model.n_items * len(model.bases)))
    return [(start, model.candidate_rows(query.rows(start, min(start + step, len(query)))))
            for start in range(0, len(query), step)]  # fmt: skip


def tune_dataset(folder: Path, bases: dict[str, Any] | None) -> dict[str, Any]:
    """Every ``GRID`` setting's trees over one set of candidates, scored on validation."""
    data = load_folder(folder)
    split = split_data(data, PROTOCOL)
    params = {} if bases is None else {"bases": bases}
    config = RankerConfig.model_validate(parse_config(Ranker(), params).model_dump())
    train, targets = split.train, split.validation
    held = hold_out_last(train)
    rest = train.subset(~held.mask)
    say("bases: fit on train minus each user's last train item")
    started = time.perf_counter()
    fitted = fit_bases(rest, config, seed=SEED)
    bases_seconds = time.perf_counter() - started
    alone = {name: evaluate(base, targets, protocol=PROTOCOL) for name, base in fitted.items()}
    say(f"bases on validation: { {n: round(m['ndcg@10'], 4) for n, m in alone.items()} }")
    facts = ItemFacts(ItemLog.from_data(train), train.item_features, train.item_created,
                      config.popularity_windows_days)  # fmt: skip
    model = RankerModel(config, fitted, None, facts)
    started = time.perf_counter()
    groups = build_groups(model, train, rest, held.rows, config, lambda fraction, message: None)
    batches = validation_rows(model, targets.query)
    rows_seconds = time.perf_counter() - started
    say(f"rows built in {rows_seconds:.0f} s: {groups.summary()}")
    results = []
    for setting in GRID:
        settings = config.model_copy(update=setting)
        started = time.perf_counter()
        booster, info = train_trees(groups, model.names, settings, seed=SEED)
        seconds = time.perf_counter() - started
        scores = np.empty((len(targets), model.n_items), dtype=np.float32)
        for start, ranked in batches:
            trees = np.asarray(booster.predict(ranked.features, num_threads=THREADS), np.float32)
            stop = start + ranked.first.shape[0]
            scores[start:stop] = fill_below(ranked.first, ranked.rows, ranked.items, trees)
        frozen = FrozenScores(targets.query.users, scores)
        metrics = evaluate(frozen, targets, protocol=PROTOCOL)  # type: ignore[arg-type]
        results.append({"setting": setting, **metrics, **info, "train_seconds": round(seconds, 1)})
        say(f"{setting}: validation ndcg@10 {metrics['ndcg@10']:.4f}, {info['trees']} trees")
    return {
        "dataset": folder.name, "scored": len(targets), "groups": groups.summary(),
        "bases_alone": alone, "grid": results, "bases_seconds": round(bases_seconds, 1),
        "rows_seconds": round(rows_seconds, 1),
    }  # fmt: skip


def tuning_table(result: dict[str, Any]) -> str:
    lines = [
        f"### {result['dataset']} ({result['scored']:,} validation users)", "",
        "| leaves | rows/leaf | rate | early stop | trees | val NDCG@10 | val HR@10 | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    defaults = RankerConfig()
    for row in result["grid"]:
        setting = defaults.model_copy(update=row["setting"])
        lines.append(
            f"| {setting.num_leaves} | {setting.min_data_in_leaf} | {setting.learning_rate} "
            f"| {setting.early_stopping_rounds or 'off'} | {row['trees']} "
            f"| {row['ndcg@10']:.4f} | {row['hr@10']:.4f} | {row['train_seconds']} |"
        )
    alone = ", ".join(f"{name} {m['ndcg@10']:.4f}" for name, m in result["bases_alone"].items())
    return "\n".join([*lines, "", f"Bases alone (same fits): {alone}.", "",
                      f"Groups: {result['groups']}"])  # fmt: skip


def table(result: dict[str, Any]) -> str:
    lines = [
        f"### {result['dataset']} ({result['scored']:,} scored users)", "",
        "| method | NDCG@10 | HR@10 | NDCG@20 | MRR@25 | coverage@10 | val NDCG@10 | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for row in result["rows"]:
        val = row["validation"]["ndcg@10"] if row["validation"] else None
        lines.append(
            f"| {row['method']} (`{row['recipe']}`) | {row['ndcg@10']:.4f} | {row['hr@10']:.4f} "
            f"| {row['ndcg@20']:.4f} | {row['mrr@25']:.4f} | {row['coverage@10']:.2f} "
            f"| {'-' if val is None else f'{val:.4f}'} | {row['train_seconds']} |"
        )
    gains = result["ranker"]["importances"]
    total = sum(gains.values()) or 1.0
    top = ", ".join(f"{name} {gain / total:.1%}" for name, gain in list(gains.items())[:10])
    lines += ["", f"Gain share: {top}.", "", f"Training: {result['ranker']['training']}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ml-1m-seq,ml-100k")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the data sets")
    parser.add_argument("--bases", choices=("default", "cheap"), default="default")
    parser.add_argument("--tune", action="store_true", help="pick the trees' knobs on validation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(THREADS)
    RESULTS.mkdir(exist_ok=True)
    bases = None if args.bases == "default" else CHEAP_BASES
    for dataset in args.datasets.split(","):
        started = time.perf_counter()
        with threadpool_limits(limits=THREADS):
            run = tune_dataset if args.tune else run_dataset
            result = run(args.data / dataset, bases)
        result |= {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "wall_seconds": round(time.perf_counter() - started, 1),
                   "bases": args.bases, "threads": THREADS}  # fmt: skip
        suffix = "" if args.bases == "default" else f"-{args.bases}"
        kind = "ranker_tuning" if args.tune else "ranker_quality"
        (RESULTS / f"{kind}-{dataset}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
        print((tuning_table if args.tune else table)(result) + "\n", flush=True)


if __name__ == "__main__":
    main()
