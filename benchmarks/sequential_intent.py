"""Intent heads of the ``sequential`` recipe: intent accuracy against simple baselines, and the
next-item NDCG@10 with and without the heads (issue 17, part 2).

    ./dev bench sequential_intent [--datasets ml-100k,ml-1m-seq] [--budget 840] [--weight 0.5]

For each data set (``../shared/data/<name>``) the leave-last-out split of DESIGN.md: both arms
(the recipe's defaults, and the defaults with ``intent_heads: true``) are fitted once, with the
same seed and time budget, on train + validation, and scored on each user's test item (full
ranking, history excluded). The validation figure that decides the default is each fit's own
held-out NDCG@10 (2,048 users' last training item: never the test item).

Intent accuracy on the test positions: the genre head's most probable value is one of the
test item's genres, against the user's last genre (the last item's genre that is most frequent
overall), the user's most frequent genre and the most frequent genre overall. The event-type
head needs two event types; both MovieLens sets have one (``rating``), so it is reported as
absent there (the planted tests cover it). Results: ``benchmarks/results/sequential_intent-
<dataset>.json`` and a markdown table on stdout. torch and BLAS use 2 threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recipe_quality import load
from tastebud.evaluation import evaluate
from tastebud.evaluation.splits import Targets, leave_last_out
from tastebud.recipes import TrainingData, get_recipe, parse_config
from tastebud.recipes.sequential import SequentialModel

RESULTS = Path(__file__).parent / "results"
THREADS = 2
SEED = 0


def genre_matrix(data: TrainingData, field: str) -> tuple[np.ndarray, list[str]]:
    """(I, G) 0/1 of each item's values of ``field``, and the value names."""
    assert data.item_features is not None
    columns = [i for i, n in enumerate(data.feature_names) if n.partition("=")[0] == field]
    names = [data.feature_names[i].partition("=")[2] for i in columns]
    return data.item_features[:, columns].toarray() > 0, names


def baselines(targets: Targets, genres: np.ndarray, overall: np.ndarray) -> dict[str, np.ndarray]:
    """Each baseline's predicted genre per test row (-1: none)."""
    query, rank = targets.query, np.argsort(np.argsort(-overall))  # 0 = most frequent overall
    last, frequent = np.full(len(targets), -1), np.full(len(targets), -1)
    for row in range(len(targets)):
        history = query.history_items[query.history_indptr[row] : query.history_indptr[row + 1]]
        if len(history) == 0:
            continue
        own = np.flatnonzero(genres[history[-1]])
        if len(own):
            last[row] = own[np.argmin(rank[own])]
        counts = genres[history].sum(0) - rank / (2.0 * len(rank))  # ties: overall order
        frequent[row] = int(np.argmax(counts)) if genres[history].any() else -1
    return {
        "last genre": last, "most frequent genre (user)": frequent,
        "most frequent genre (overall)": np.full(len(targets), int(np.argmax(overall))),
    }  # fmt: skip


def accuracy(predicted: np.ndarray, targets: Targets, genres: np.ndarray) -> float:
    """Share of test rows (with a genre) whose predicted genre is one of the target's."""
    wanted = genres[targets.items]
    has = wanted.any(1)
    hit = (predicted >= 0) & wanted[np.arange(len(predicted)), np.maximum(predicted, 0)]
    return float(hit[has].mean())


def head_predictions(model: SequentialModel, targets: Targets, names: list[str]) -> np.ndarray:
    """The genre head's most probable value per test row (-1: no history)."""
    field = model.intent_labels.fields[0]
    intents = model.predict_intent(targets.query, top=1)
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[next(iter(i[field]))] if i else -1 for i in intents])


def run(dataset: str, budget: float | None, weight: float, epochs: int | None) -> dict[str, Any]:
    data = load(dataset)
    split = leave_last_out(data)
    recipe = get_recipe("sequential")
    arms: dict[str, Any] = {}
    intent = {"intent_heads": True, "intent_weight": weight}
    for arm, extra in (("without", {}), ("with intent heads", intent)):
        started = time.perf_counter()
        # --epochs: exactly that many for both arms, whatever the machine's load (no time cap,
        # no early stop); else the time budget, which a loaded machine turns into fewer epochs
        fixed = {} if epochs is None else {"epochs": epochs, "patience": epochs}
        config = parse_config(recipe, {"time_budget_seconds": budget, **fixed, **extra})
        model = recipe.fit(split.train_and_validation, config, seed=SEED)
        assert isinstance(model, SequentialModel)
        seconds = time.perf_counter() - started
        metrics = evaluate(model, split.test, protocol="leave-last-out")
        arms[arm] = {
            "test_ndcg@10": metrics["ndcg@10"], "test_hr@10": metrics["hr@10"],
            "validation_ndcg@10": model.training["validation_ndcg@10"],
            "best_epoch": model.training["best_epoch"], "epochs": len(model.training["curve"]),
            "stopped": model.training["stopped"], "fit_seconds": round(seconds, 1),
        }  # fmt: skip
        if model.has_intent:
            field = model.intent_labels.fields[0]
            genres, names = genre_matrix(data, field)
            overall = genres[split.train_and_validation.items].sum(0).astype(float)
            predicted = {"intent heads": head_predictions(model, split.test, names)}
            predicted |= baselines(split.test, genres, overall)
            arms[arm]["field"] = field
            arms[arm]["genre_accuracy"] = {
                name: round(accuracy(p, split.test, genres), 4) for name, p in predicted.items()
            }
            arms[arm]["event_types"] = list(model.intent_labels.event_types) or "one type: none"
        logging.info("%s %s %s", dataset, arm, arms[arm])
    return {
        "dataset": dataset, "budget_seconds": budget, "epochs": epochs, "intent_weight": weight,
        "seed": SEED,
        "test_users": len(split.test), "arms": arms,
        "date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} vCPU, torch {torch.__version__}, {THREADS} threads",
    }  # fmt: skip


def table(result: dict[str, Any]) -> str:
    plan = (f"{result['epochs']} epochs" if result["epochs"] is not None
            else f"budget {result['budget_seconds']:.0f} s")  # fmt: skip
    rows = [f"### {result['dataset']} ({plan} per fit)", "",
            "| arm | test NDCG@10 | test HR@10 | validation NDCG@10 | epochs | fit s |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for arm, r in result["arms"].items():
        rows.append(
            f"| {arm} | {r['test_ndcg@10']:.4f} | {r['test_hr@10']:.4f} | "
            f"{r['validation_ndcg@10']:.4f} | {r['epochs']} | {r['fit_seconds']} |"
        )
    for arm in result["arms"].values():
        for name, value in arm.get("genre_accuracy", {}).items():
            rows.append(f"| genre accuracy: {name} | {value:.4f} | | | | |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ml-100k,ml-1m-seq")
    parser.add_argument("--budget", type=float, default=840.0, help="seconds per fit")
    parser.add_argument("--epochs", type=int, help="exactly this many epochs per fit, no budget")
    parser.add_argument("--weight", type=float, default=0.5, help="intent_weight (lambda)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(THREADS)
    RESULTS.mkdir(exist_ok=True)
    with threadpool_limits(THREADS):
        for dataset in args.datasets.split(","):
            budget = None if args.epochs is not None else args.budget
            result = run(dataset, budget, args.weight, args.epochs)
            suffix = "" if args.epochs is None else f"-{args.epochs}-epochs"
            path = RESULTS / f"sequential_intent-{dataset}{suffix}.json"
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(table(result), flush=True)


if __name__ == "__main__":
    main()
