"""Data-parallel training of ``sequential``: 1 process x N threads against N processes x 1 thread.

    ./dev bench sequential_ddp [--dataset ml-100k] [--epochs 20] [--processes 2] [--json FILE]
                               [--data ../shared/data]

Fits the recipe on all of ``../shared/data/<dataset>`` (interactions and items) with its
defaults but a fixed plan of ``--epochs`` (no early stop, no time budget, so both runs follow
the same learning-rate schedule): once in this process on ``--processes`` torch threads, then
on ``--processes`` ranks of one thread each (PyTorch DDP over gloo; this script started again
per rank, as ``tastebud train --nproc`` starts ``tastebud.train``). Reports the epochs per
second (the epochs over the training loop's time, each epoch's validation included; and
after the first epoch, which also pays one-off costs), the
whole fit's wall time, and the validation NDCG@10 (the recipe's own held-out last items, 2,048
users) at the last epoch and at the best.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from recipe_quality import load_folder
from tastebud.recipes import TrainingData, parse_config
from tastebud.recipes.sequential import Sequential
from tastebud.recipes.sequential.distributed import joined
from tastebud.train import run_ranks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def fit_figures(data: TrainingData, epochs: int, threads: int) -> dict[str, Any]:
    """One fit of ``epochs`` on ``threads`` torch threads: its pace and validation NDCG@10."""
    import torch  # after the recipe package, which sets OpenMP's wait policy before torch loads

    recipe = Sequential()
    config = parse_config(
        recipe, {"epochs": epochs, "patience": epochs, "time_budget_seconds": None}
    )
    torch.set_num_threads(threads)
    started = time.perf_counter()
    with threadpool_limits(limits=threads):
        model = recipe.fit(data, config, seed=0)
    wall = time.perf_counter() - started
    curve = model.training["curve"]
    return {
        "threads": threads, "epochs": len(curve), "fit_seconds": round(wall, 1),
        "loop_seconds": round(curve[-1]["seconds"], 1),
        "epochs_per_second": round(len(curve) / curve[-1]["seconds"], 4),
        # after the first epoch, which also pays one-off costs (lazy imports, allocations)
        "steady_epochs_per_second": round(
            (len(curve) - 1) / max(curve[-1]["seconds"] - curve[0]["seconds"], 1e-9), 4
        ),
        "last_val_ndcg@10": round(curve[-1]["ndcg"], 4),
        "best_val_ndcg@10": round(model.training["validation_ndcg@10"], 4),
        "best_epoch": model.training["best_epoch"],
        "curve": [(round(e["seconds"], 1), round(e["ndcg"], 4)) for e in curve],
    }  # fmt: skip


def rank_main(args: argparse.Namespace) -> None:
    """One rank of the data-parallel fit (RANK, WORLD_SIZE, MASTER_* from the launcher)."""
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    data = load_folder(args.data / args.dataset)
    with joined(rank, size, "gloo"):
        figures = fit_figures(data, args.epochs, threads=1)
    if rank == 0:
        Path(args.rank_output).write_text(json.dumps(figures))


def _summary(figures: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in figures.items() if k != "curve"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--rank-output", help=argparse.SUPPRESS)  # set on the ranks
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs: at least 2 (the pace after the first epoch is reported)")
    if args.rank_output:
        rank_main(args)
        return
    n = args.processes
    single = fit_figures(load_folder(args.data / args.dataset), args.epochs, threads=n)
    print(
        f"1 process x {n} threads: {json.dumps({k: v for k, v in single.items() if k != 'curve'})}"
    )
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "rank0.json"
        command = [sys.executable, __file__, "--dataset", args.dataset, "--data", str(args.data),
                   "--epochs", str(args.epochs), "--rank-output", str(output)]  # fmt: skip
        if any(run_ranks(command, n, {})):
            raise SystemExit("a rank failed")
        team = json.loads(output.read_text())
    print(
        f"{n} processes x 1 thread: {json.dumps({k: v for k, v in team.items() if k != 'curve'})}"
    )
    figures = {"dataset": args.dataset, "epochs": args.epochs, "processes": n,
               "single_process": single, "data_parallel": team,
               "speed-up": round(team["epochs_per_second"] / single["epochs_per_second"], 3),
               "steady speed-up": round(team["steady_epochs_per_second"]
                                        / single["steady_epochs_per_second"], 3),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    print(f"speed-up (epochs/s): {figures['speed-up']}; after epoch 1: "
          f"{figures['steady speed-up']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
