"""Ranker quality: the learned ranker against every recipe it stacks, in one run (issue 15).

    flock /tmp/tastebud-bench.lock python benchmarks/ranker_quality.py \\
        [--datasets ml-1m-seq,ml-100k] [--data DIR] [--bases default|cheap]

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

from tastebud.evaluation import evaluate, split_data
from tastebud.evaluation.splits import Split
from tastebud.recipes import Model, TrainingData, get_recipe, parse_config
from tastebud.recipes.ranker import Ranker, RankerConfig, RankerModel
from tastebud.recipes.ranker.stacking import hold_out_last
from tastebud.training.data import build_training_data, read_table

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


def load(folder: Path) -> TrainingData:
    interactions = read_table(folder / "interactions.csv.gz")
    items = read_table(folder / "items.csv", dataset="items")
    data, _, _ = build_training_data(interactions, items)
    return data


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
    data = load(folder)
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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(THREADS)
    RESULTS.mkdir(exist_ok=True)
    bases = None if args.bases == "default" else CHEAP_BASES
    for dataset in args.datasets.split(","):
        started = time.perf_counter()
        with threadpool_limits(limits=THREADS):
            result = run_dataset(args.data / dataset, bases)
        result |= {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                   "wall_seconds": round(time.perf_counter() - started, 1),
                   "bases": args.bases, "threads": THREADS}  # fmt: skip
        suffix = "" if args.bases == "default" else f"-{args.bases}"
        out = RESULTS / f"ranker_quality-{dataset}{suffix}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(table(result) + "\n", flush=True)


if __name__ == "__main__":
    main()
