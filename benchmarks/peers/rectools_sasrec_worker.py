"""Fit RecTools' SASRec on one training set and write each target user's top-k list.

    benchmarks/.venv-rectools/bin/python benchmarks/peers/rectools_sasrec_worker.py \
        INPUT.npz OUTPUT.npz [--minutes 14] [--epochs 200] [--k 100] ...

Runs only inside the RecTools venv (rectools 0.19.0, pandas, torch, pytorch-lightning), which
``benchmarks/peer_sasrec.py`` creates and drives; that script does the split and the scoring.

INPUT.npz holds the interactions (``users``, ``items``, ``timestamps``, ``order``: the rank of
the row within its user's time order, ties in file order) and the ``targets`` (user indexes to
recommend for). OUTPUT.npz gets ``users`` (one row per target user RecTools answered for),
``items`` (``(len(users), k)`` item indexes, best first, -1 where the list is shorter),
``epochs`` (optimizer steps / batches per epoch: a time stop can end one part-way),
``steps``, ``fit_seconds``, ``stopped_by_time`` and ``versions`` (a JSON string).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import typing as tp
from importlib import metadata

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
from rectools import Columns
from rectools.dataset import Dataset
from rectools.models import SASRecModel

THREADS = 2
SEED = 0
VERSIONS = ("rectools", "torch", "pytorch-lightning", "pandas", "numpy", "scipy")


class EpochReport(pl.Callback):
    """Prints each finished epoch (loss, seconds since fit start) and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.started = time.perf_counter()
        self.completed = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.completed += 1
        loss = trainer.callback_metrics.get("train_loss")
        shown = f"{float(loss):.4f}" if loss is not None else "?"
        seconds = time.perf_counter() - self.started
        print(f"    sasrec epoch {self.completed} loss {shown} at {seconds:.1f}s",
              file=sys.stderr, flush=True)  # fmt: skip


def make_trainer(max_epochs: int, minutes: float | None) -> pl.Trainer:
    """The trainer RecTools deep-copies for ``fit``: CPU, deterministic, no files written, and
    stopped by whichever comes first of ``max_epochs`` and ``minutes`` of training."""
    return pl.Trainer(
        max_epochs=max_epochs,
        max_time=None if minutes is None else {"seconds": round(minutes * 60)},
        accelerator="cpu",
        devices=1,
        deterministic=True,
        enable_checkpointing=False,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[EpochReport()],
    )


def interactions_frame(arrays: tp.Mapping[str, np.ndarray]) -> pd.DataFrame:
    """RecTools' interaction columns. SASRec orders each session by a stable sort on datetime;
    adding the within-user rank as microseconds makes that order the file's time order, ties
    included (ranks grow with time, so no event can overtake a later second)."""
    seconds = pd.to_datetime(arrays["timestamps"].astype(np.int64), unit="s")
    offsets = pd.to_timedelta(arrays["order"].astype(np.int64), unit="us")
    frame = pd.DataFrame(
        {
            Columns.User: arrays["users"].astype(np.int64),
            Columns.Item: arrays["items"].astype(np.int64),
            Columns.Weight: np.ones(len(arrays["users"]), dtype=np.float32),
            Columns.Datetime: seconds + offsets,
        }
    )
    # The sequences RecTools builds must be the split's: datetime strictly rising with order.
    by_order = frame.assign(order=arrays["order"]).sort_values([Columns.User, "order"])
    same_user = np.diff(by_order[Columns.User].to_numpy()) == 0
    rising = np.diff(by_order[Columns.Datetime].to_numpy().astype(np.int64)) > 0
    if not rising[same_user].all():
        raise ValueError("datetime does not follow the within-user order")
    return frame


def build_model(args: argparse.Namespace) -> SASRecModel:
    return SASRecModel(
        loss="softmax",  # full softmax cross-entropy over the catalogue: SASRec+
        n_factors=args.factors,
        n_blocks=args.blocks,
        n_heads=args.heads,
        session_max_len=args.max_len,
        dropout_rate=args.dropout,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        deterministic=True,
        recommend_torch_device="cpu",
        get_trainer_func=make_trainer,
        get_trainer_func_kwargs={"max_epochs": args.epochs, "minutes": args.minutes},
    )


def top_lists(recos: pd.DataFrame, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(users, items)``: one row per user, items by RecTools' rank, -1 past the list's end."""
    recos = recos.sort_values([Columns.User, Columns.Rank], kind="stable")
    users, first = np.unique(recos[Columns.User].to_numpy(), return_index=True)
    items = np.full((len(users), k), -1, dtype=np.int32)
    rows = np.searchsorted(users, recos[Columns.User].to_numpy())
    slots = np.arange(len(recos)) - first[rows]
    items[rows, slots] = recos[Columns.Item].to_numpy()
    return users.astype(np.int32), items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--minutes", type=float, default=14.0, help="training budget; 0: none")
    parser.add_argument("--epochs", type=int, default=200, help="most epochs")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--heads", type=int, default=1)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    args = parser.parse_args()
    args.minutes = args.minutes or None

    torch.set_num_threads(args.threads)
    pl.seed_everything(SEED, workers=True, verbose=False)
    arrays = dict(np.load(args.input))
    dataset = Dataset.construct(interactions_frame(arrays))
    model = build_model(args)
    started = time.perf_counter()
    model.fit(dataset)
    fit_seconds = time.perf_counter() - started
    trainer = model.fit_trainer
    assert trainer is not None
    # A time stop cuts the last epoch short, so count optimizer steps, not finished epochs.
    steps = int(trainer.global_step)
    epochs = steps / max(1, int(trainer.num_training_batches))
    stopped_by_time = epochs < args.epochs
    print(f"    sasrec fit: {steps} steps, {epochs:.2f} epochs in {fit_seconds:.1f}s"
          f"{' (time budget reached)' if stopped_by_time else ''}",
          file=sys.stderr, flush=True)  # fmt: skip

    started = time.perf_counter()
    recos = model.recommend(
        users=arrays["targets"].astype(np.int64), dataset=dataset, k=args.k,
        filter_viewed=True, on_unsupported_targets="warn",
    )  # fmt: skip
    users, items = top_lists(recos, args.k)
    print(f"    sasrec recommend: {len(users)} users in {time.perf_counter() - started:.1f}s",
          file=sys.stderr, flush=True)  # fmt: skip
    versions = {package: metadata.version(package) for package in VERSIONS}
    np.savez(
        args.output, users=users, items=items, epochs=epochs, steps=steps, fit_seconds=fit_seconds,
        stopped_by_time=stopped_by_time, versions=json.dumps(versions),
        threads=torch.get_num_threads(),
    )  # fmt: skip


if __name__ == "__main__":
    main()
