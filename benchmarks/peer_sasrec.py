"""Peer SASRec: RecTools' SASRec on the very split and metric code of ``recipe_quality``.

    ./dev bench peer_sasrec [--datasets ml-1m-seq] [--minutes 14] [--epochs N]

RecTools (``rectools[torch]==0.19.0``) pins numpy < 2 and brings pandas, pytorch-lightning and
its own ``implicit`` fork, so it lives in ``benchmarks/.venv-rectools`` (created here on first
use, reinstalled only when that folder or its stamp is gone) and runs as a subprocess:
``benchmarks/peers/rectools_sasrec_worker.py``. This process loads the data like
``recipe_quality`` and splits it with ``split_data(data, "leave-last-out")``. For each fit (train
-> validation item, train + validation -> test item) it hands the interactions and the target
users to the worker, which fits ``SASRecModel`` (softmax cross-entropy over the catalogue, i.e.
SASRec+; 64 factors, 2 blocks, 1 head, sequences of 128, dropout 0.2, lr 1e-3, batch 128) until
``--epochs`` or ``--minutes`` of training run out, and writes the top 100 unseen items per user.
Those lists are scored by tastebud's own ``evaluate`` (full ranking, history excluded).

Results: ``benchmarks/results/peer_sasrec-<dataset>.json`` (same ``rows`` layout as
``recipe_quality``, plus epochs and seconds per fit) and a markdown table on stdout, whose row
sits beside ``sequential`` in ``recipe_quality``'s. Torch and every BLAS pool use 2 threads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from tastebud.evaluation import evaluate, split_data
from tastebud.evaluation.splits import Targets
from tastebud.recipes import Query, TrainingData
from tastebud.recipes.base import FloatArray, IntArray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recipe_quality import (
    RESULTS,
    ROOT,
    SEED,
    THREADS,
    Row,
    ScoreModel,
    leave_last_out_table,
    load,
    machine_facts,
)

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv-rectools"
WORKER = HERE / "peers" / "rectools_sasrec_worker.py"
REQUIREMENTS = ("rectools[torch]==0.19.0", "torch==2.13.0")  # torch: the project's own pin
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MAX_EPOCHS = 200  # effectively "until the time budget runs out" on ml-1m-seq
METHOD = "rectools:sasrec"


@dataclass(frozen=True)
class Settings:
    """What the worker is told; the defaults are the brief's SASRec+ configuration."""

    minutes: float = 14.0  # training budget per fit; 0: none
    epochs: int = MAX_EPOCHS
    k: int = 100
    factors: int = 64
    blocks: int = 2
    heads: int = 1
    max_len: int = 128
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 128

    def worker_args(self) -> list[str]:
        return [f"--{name.replace('_', '-')}={value}" for name, value in asdict(self).items()]

    def label(self) -> str:
        model = (f"RecTools SASRec (peer; softmax CE, {self.factors} factors, {self.blocks} "
                 f"blocks, len {self.max_len})")  # fmt: skip
        epochs = f"{self.epochs} epoch{'s' * (self.epochs != 1)}"
        if not self.minutes:
            return f"{model}, {epochs}"
        if self.epochs < MAX_EPOCHS:
            return f"{model}, at most {epochs} in a {self.minutes:g}-minute budget"
        return f"{model}, {self.minutes:g}-minute budget"


@dataclass
class Fit:
    """One worker run: the lists it wrote and what the fit cost."""

    phase: str
    users: IntArray
    items: IntArray
    epochs: float  # optimizer steps / batches per epoch
    steps: int
    fit_seconds: float
    wall_seconds: float
    stopped_by_time: bool
    versions: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "epochs": round(self.epochs, 2), "steps": self.steps,
            "fit_seconds": round(self.fit_seconds, 1),
            "worker_wall_seconds": round(self.wall_seconds, 1),
            "stopped_by_time": self.stopped_by_time, "users_listed": len(self.users),
        }  # fmt: skip


# the RecTools venv ------------------------------------------------------------------------------
def ensure_venv() -> Path:
    """The venv's python, installing RecTools first when the stamp of these pins is missing."""
    python = VENV / "bin" / "python"
    pins = hashlib.sha1(" ".join(REQUIREMENTS).encode()).hexdigest()[:12]
    stamp = VENV / f".installed-{pins}"
    if stamp.exists():
        return python
    if not python.exists():
        subprocess.run([os.environ.get("PYTHON", "python3"), "-m", "venv", str(VENV)], check=True)
    print(f"installing {' '.join(REQUIREMENTS)} into {VENV.relative_to(ROOT)} ...",
          file=sys.stderr, flush=True)  # fmt: skip
    subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    for old in VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return python


# fitting ----------------------------------------------------------------------------------------
def within_user_order(data: TrainingData) -> IntArray:
    """Each row's rank in its user's sequence, in the split's order (time, ties in row order),
    so the worker can rebuild exactly the sequence ``leave_last_out`` cut."""
    order = np.lexsort((np.arange(data.size), data.timestamps, data.users))
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(data.size, dtype=np.int32)
    rank[order] = np.arange(data.size) - starts[data.users[order]]
    return rank


def fit_peer(python: Path, data: TrainingData, targets: Targets, settings: Settings,
             phase: str) -> Fit:  # fmt: skip
    """Run the worker on ``data`` for the users of ``targets``."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(THREADS))}
    with tempfile.TemporaryDirectory(prefix="peer_sasrec-") as folder:
        source, answer = Path(folder) / "interactions.npz", Path(folder) / "lists.npz"
        np.savez(source, users=data.users, items=data.items, timestamps=data.timestamps,
                 order=within_user_order(data), targets=targets.users)  # fmt: skip
        print(f"  {phase}: fitting on {data.size:,} interactions for {len(targets):,} users",
              file=sys.stderr, flush=True)  # fmt: skip
        started = time.perf_counter()
        command = [str(python), str(WORKER), str(source), str(answer), *settings.worker_args()]
        subprocess.run(command, check=True, env=env)
        wall = time.perf_counter() - started
        with np.load(answer) as out:
            return Fit(
                phase, out["users"], out["items"], float(out["epochs"]), int(out["steps"]),
                float(out["fit_seconds"]), wall, bool(out["stopped_by_time"]),
                json.loads(str(out["versions"])),
            )  # fmt: skip


# scoring ----------------------------------------------------------------------------------------
def list_model(n_users: int, n_items: int, fit: Fit) -> ScoreModel:
    """Listed items score k, k-1, ..., 1 (best first); everything else -inf, which
    ``rank_top_k`` leaves as an empty slot rather than padding with arbitrary low-index items."""
    row_of = np.full(n_users, -1, dtype=np.int64)
    row_of[fit.users] = np.arange(len(fit.users))
    k = fit.items.shape[1]
    rank_scores = np.arange(k, 0, -1, dtype=np.float32)

    def scorer(query: Query) -> FloatArray:
        scores = np.full((len(query), n_items), -np.inf, dtype=np.float32)
        rows = np.where(query.users >= 0, row_of[np.maximum(query.users, 0)], -1)
        listed = np.flatnonzero(rows >= 0)
        items = fit.items[rows[listed]]
        valid = items >= 0
        query_rows = np.broadcast_to(listed[:, None], items.shape)
        scores[query_rows[valid], items[valid]] = np.broadcast_to(rank_scores, items.shape)[valid]
        return scores

    return ScoreModel(n_items, scorer)


def list_checks(fit: Fit, targets: Targets, n_items: int) -> dict[str, int]:
    """What would make the comparison unfair: target users without a list, lists shorter than
    the 25 ``evaluate`` reads, listed items from the user's history (RecTools filters them)."""
    query = targets.query
    history = sp.csr_matrix(
        (np.ones(len(query.history_items), dtype=np.int8), query.history_items,
         query.history_indptr), shape=(len(query), n_items),
    )  # fmt: skip
    row_of = {int(user): row for row, user in enumerate(fit.users)}
    rows = np.array([row_of.get(int(user), -1) for user in targets.users])
    have = rows >= 0
    items = fit.items[rows[have]]
    valid = items >= 0
    query_rows = np.broadcast_to(np.flatnonzero(have)[:, None], items.shape)
    seen = np.asarray(history[query_rows[valid], items[valid]]).ravel()
    return {
        "users_without_list": int((~have).sum()),
        "lists_shorter_than_25": int((valid.sum(axis=1) < 25).sum()),
        "listed_history_items": int(seen.sum()),
    }


# running ----------------------------------------------------------------------------------------
def run_dataset(dataset: str, settings: Settings, python: Path, facts: dict[str, Any]) -> None:
    started = time.perf_counter()
    data = load(dataset)
    split = split_data(data, "leave-last-out")
    print(f"{dataset}: loaded and split in {time.perf_counter() - started:.1f}s",
          file=sys.stderr, flush=True)  # fmt: skip
    phases = (("fit on train", split.train, split.validation),
              ("fit on train + validation", split.train_and_validation, split.test))  # fmt: skip
    fits, metrics, checks = [], [], []
    for phase, training, targets in phases:
        fit = fit_peer(python, training, targets, settings, phase)
        model = list_model(data.n_users, data.n_items, fit)
        with threadpool_limits(limits=THREADS):
            metrics.append(evaluate(model, targets, protocol="leave-last-out"))
        checks.append(list_checks(fit, targets, data.n_items))
        fits.append(fit)
        print(f"  {phase}: {fit.epochs:.2f} epochs, fit {fit.fit_seconds:.0f}s, "
              f"NDCG@10 {metrics[-1]['ndcg@10']:.4f}, checks {checks[-1]}",
              file=sys.stderr, flush=True)  # fmt: skip
    seconds = time.perf_counter() - started
    row = Row(
        METHOD, settings.label(), "leave-last-out", params=asdict(settings),
        validation=metrics[0], test=metrics[1], train_seconds=fits[1].fit_seconds,
        wall_seconds=seconds, load_1min=round(os.getloadavg()[0], 2), users=len(split.test),
    )  # fmt: skip
    print(f"\n## {dataset}: {data.n_users:,} users, {data.n_items:,} items, "
          f"{data.size:,} interactions; {seconds:.0f} s\n")  # fmt: skip
    print(leave_last_out_table(dataset, [row]) + "\n", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    body = {
        "dataset": dataset, "machine": facts, "peer_versions": fits[-1].versions, "seed": SEED,
        "settings": asdict(settings), "total_seconds": round(seconds, 1),
        "data": {"users": data.n_users, "items": data.n_items, "interactions": data.size},
        "rows": [row.as_json()],
        "fits": [fit.as_json() | check for fit, check in zip(fits, checks, strict=True)],
    }  # fmt: skip
    path = RESULTS / f"peer_sasrec-{dataset}.json"
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-1m-seq")
    parser.add_argument("--minutes", type=float, default=Settings.minutes,
                        help="training budget per fit (0: none, --epochs only)")  # fmt: skip
    parser.add_argument("--epochs", type=int, default=MAX_EPOCHS, help="most epochs per fit")
    args = parser.parse_args()
    settings = Settings(minutes=args.minutes, epochs=args.epochs)
    started = time.perf_counter()
    python = ensure_venv()
    facts = machine_facts()
    print(f"# peer SASRec (RecTools), {facts['date']}\n")
    print(f"machine: {facts['cpu_count']} CPUs, {facts['platform']}; thread limit {THREADS}; "
          f"load {facts['load_1_5_15']}")  # fmt: skip
    for dataset in args.datasets.split(","):
        run_dataset(dataset, settings, python, facts)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
