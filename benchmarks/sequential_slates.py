"""Multi-token prediction and "next session" slates (issue 17, part 3).

    ./dev bench sequential_slates [--datasets ml-100k,ml-1m-seq] [--predict-next 3]
                                  [--budget SECONDS] [--param KEY=VALUE ...] [--data DIR]
                                  [--tag NAME]

Split (``leave_last_out(data, count=3)``): each user's last 3 interactions are held out as the
"next 3 items" (users with at least 7); the 3 before them are the split's validation, unused
here, as the recipe keeps its own validation items for early stopping. Two ``sequential``
models are fitted on the rest with the defaults (plus ``--param``s): ``predict_next=1`` and
``predict_next=K``, each within ``--budget`` seconds (default: the recipe's 840). The test
users are ranked over every item, history excluded, and scored (``evaluation/horizon.py``):

- ``ndcg@10_next_3``: binary gain, each of the next 3 items found in the top 10 counts once,
  over the ideal DCG of min(3, 10) = 3 hits; ``hit_rate@10_next_3``: any of them found;
- ``ndcg@10_next_item``: the same ranking against the next item alone.

Rankings: the k=1 model's next-item scores (its answer; it refuses horizon 3), the k=K model's
next-item head alone (horizon 1) and its slate (horizon K). Results:
``benchmarks/results/sequential_slates-<dataset>.json`` and a table on stdout. torch and
every BLAS pool use 2 threads.
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

import torch
from threadpoolctl import threadpool_limits

from recipe_quality import load_folder
from tastebud.evaluation.horizon import next_items_metrics
from tastebud.evaluation.splits import leave_last_out
from tastebud.recipes import get_recipe, parse_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
THREADS = 2
SEED = 0
HELD = 3  # the next items each user's test holds


def run(data_root: Path, dataset: str, predict_next: int, params: dict[str, Any]) -> dict[str, Any]:
    data = load_folder(data_root / dataset)
    split = leave_last_out(data, count=HELD)
    recipe = get_recipe("sequential")
    report: dict[str, Any] = {
        "dataset": dataset, "users": data.n_users, "items": data.n_items,
        "interactions": data.size, "scored_users": len(split.test), "held_out": HELD,
        "params": params, "models": {},
    }  # fmt: skip
    for k in sorted({1, predict_next}):
        config = parse_config(recipe, {**params, "predict_next": k})
        started = time.perf_counter()
        model = recipe.fit(split.train_and_validation, config, seed=SEED)
        seconds = time.perf_counter() - started
        rankings = {"horizon 1": next_items_metrics(model, split.test)}
        if k > 1:
            rankings[f"horizon {k}"] = next_items_metrics(model, split.test, horizon=k)
        report["models"][f"k={k}"] = {
            "fit_seconds": round(seconds, 1), "training": model.training, "rankings": rankings,
        }  # fmt: skip
        logging.info("done dataset=%s k=%d seconds=%.0f %s", dataset, k, seconds, rankings)
    return report


def table(report: dict[str, Any]) -> str:
    lines = [
        f"### {report['dataset']} ({report['scored_users']} scored users, last {HELD} held out)",
        "",
        "| model | ranking | ndcg@10 next 3 | hit@10 next 3 | ndcg@10 next item | fit s | "
        "best epoch / epochs |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, model in report["models"].items():
        training = model["training"]
        epochs = f"{training['best_epoch']} / {len(training['curve'])} ({training['stopped']})"
        for ranking, m in model["rankings"].items():
            lines.append(
                f"| {name} | {ranking} | {m[f'ndcg@10_next_{HELD}']:.4f} | "
                f"{m[f'hit_rate@10_next_{HELD}']:.4f} | {m['ndcg@10_next_item']:.4f} | "
                f"{model['fit_seconds']:.0f} | {epochs} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="ml-100k")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the data sets")
    parser.add_argument("--predict-next", type=int, default=3)
    parser.add_argument("--budget", type=float, default=None, help="seconds per fit")
    parser.add_argument("--param", action="append", default=[], help="KEY=VALUE (JSON value)")
    parser.add_argument("--tag", default="", help="suffix of the results file's name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    params: dict[str, Any] = {}
    for pair in args.param:
        key, value = pair.split("=", 1)
        params[key] = json.loads(value)
    if args.budget is not None:
        params["time_budget_seconds"] = args.budget
    torch.set_num_threads(THREADS)
    RESULTS.mkdir(exist_ok=True)
    with threadpool_limits(limits=THREADS):
        for dataset in args.datasets.split(","):
            report = run(args.data, dataset, args.predict_next, params)
            report["machine"] = {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "torch": torch.__version__,
            }  # fmt: skip
            path = RESULTS / f"sequential_slates-{dataset}{args.tag and '-' + args.tag}.json"
            path.write_text(json.dumps(report, indent=1))
            print(table(report), flush=True)


if __name__ == "__main__":
    main()
