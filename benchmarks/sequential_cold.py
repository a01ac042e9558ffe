"""New items in ``sequential``: the age mix, id dropout and text metadata on ml-100k (issue 17).

    ./dev bench sequential_cold [--stage validation|test|both] [--only NAME,...] [--seeds 0,1]

ml-100k has real timestamps. Time runs from the first to the last rating; a *cut* at a fraction
of it splits the data. The model trains on every event before the cut; the catalogue (titles,
genres, year) is known in full, as a shop knows a product before its first sale. The *cold
targets* are the events after the cut on items whose first event is after the cut (on ml-100k:
43 items, 126 events after 90% of the time); each is scored from the user's whole history before
it (events after the cut included, as serving would see them), history excluded, full ranking
over the catalogue (HR@10, NDCG@10), and again among the cold items only. The *warm* figure is
each user's first event after the cut on an item seen before it (does the mix cost anything).

- validation (to choose settings): cut at 70% of the time, targets before 90%;
- test (reported once): cut at 90%, targets up to the end.

Settings compared (``CONFIGS``): ids + categorical metadata as before (``base``), the age mix
with id dropout, and the items' titles embedded (``tastebud.text``, cached under
``.tastebud/artifacts/text-embeddings``). Results: ``benchmarks/results/sequential_cold.json``
and a markdown table on stdout. torch and BLAS use 2 threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from threadpoolctl import threadpool_limits

from tastebud.recipes import Query, TrainingData
from tastebud.recipes.sequential import Sequential, SequentialConfig
from tastebud.text.items import CACHE_FOLDER
from tastebud.training.data import build_training_data, read_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ml-100k"
RESULTS = Path(__file__).parent / "results" / "sequential_cold.json"
TEXT_CACHE = ROOT / ".tastebud" / "artifacts" / CACHE_FOLDER
THREADS = 2
K = 10
STAGES = {"validation": (0.7, 0.9), "test": (0.9, 1.0)}  # (cut, end) as fractions of the time
# Everything else is the recipe's default, but 10 epochs (the shared 2-core machine ran an ml-100k
# epoch in ~30 s) and no time budget, so the machine's load changes the wall time, not the result.
COMMON: dict[str, Any] = {"epochs": 10, "time_budget_seconds": None, "text_metadata": False}
CONFIGS: dict[str, dict[str, Any]] = {
    "base": {},
    "mix+drop0.1": {"age_mix": True, "id_dropout": 0.1},
    "mix+drop0.3": {"age_mix": True, "id_dropout": 0.3},
    "text": {"text_metadata": True},
    "mix+drop0.1+text": {"age_mix": True, "id_dropout": 0.1, "text_metadata": True},
    "mix+drop0.3+text": {"age_mix": True, "id_dropout": 0.3, "text_metadata": True},
}


@dataclass(frozen=True)
class Targets:
    """Events to predict: their rows in ``data`` and whether their item is cold."""

    rows: npt.NDArray[np.int64]
    cold_items: npt.NDArray[np.bool_]  # (n_items,) first event inside the window


def window_targets(data: TrainingData, cut: int, end: int) -> tuple[Targets, Targets]:
    """(cold, warm) targets of the window ``[cut, end)``: every event on a cold item, and each
    user's first event on a warm one."""
    first = np.full(data.n_items, np.iinfo(np.int64).max)
    np.minimum.at(first, data.items, data.timestamps)
    cold_items = (first >= cut) & (first < end)
    inside = (data.timestamps >= cut) & (data.timestamps < end)
    cold_rows = np.flatnonzero(inside & cold_items[data.items])
    warm = np.flatnonzero(inside & ~cold_items[data.items])
    _, first_of_user = np.unique(data.users[warm], return_index=True)
    return Targets(cold_rows, cold_items), Targets(np.sort(warm[first_of_user]), cold_items)


def queries(data: TrainingData, rows: npt.NDArray[np.int64]) -> Query:
    """One query per target row: the user's events before it (data order), asked at its time."""
    histories = []
    for row in rows:
        user = data.users[row]
        earlier = np.flatnonzero(data.users[:row] == user)
        histories.append(earlier)
    indptr = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(h) for h in histories], out=indptr[1:])
    taken = np.concatenate(histories) if histories else np.zeros(0, np.int64)
    return Query(
        users=data.users[rows], history_indptr=indptr, history_items=data.items[taken],
        times=data.timestamps[rows], history_timestamps=data.timestamps[taken],
        history_event_types=None if data.event_types is None else data.event_types[taken],
        event_type_names=data.event_type_names,
        history_values=None if data.values is None else data.values[taken],
    )  # fmt: skip


def ranks(scores: npt.NDArray[np.float32], query: Query, targets: npt.NDArray[np.int32],
          among: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:  # fmt: skip
    """0-based rank of each target among the items (``among``: only those), history excluded."""
    scores = scores.copy()
    for q in range(len(query)):
        seen = query.history_items[query.history_indptr[q] : query.history_indptr[q + 1]]
        scores[q, seen] = -np.inf
    if among is not None:
        scores[:, ~among] = -np.inf
    target_scores = scores[np.arange(len(targets)), targets]
    out: npt.NDArray[np.int64] = (scores > target_scores[:, None]).sum(1)
    return out


def metrics(rank: npt.NDArray[np.int64]) -> dict[str, float]:
    hit = rank < K
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return {
        "hr@10": float(hit.mean()), "ndcg@10": float(ndcg.mean()),
        "hr@100": float((rank < 100).mean()), "median_rank": float(np.median(rank) + 1),
        "n": len(rank),
    }  # fmt: skip


def run(data: TrainingData, stage: str, name: str, seed: int) -> dict[str, Any]:
    low, high = STAGES[stage]
    start, stop = int(data.timestamps.min()), int(data.timestamps.max())
    cut, end = start + low * (stop - start), start + high * (stop - start) + 1
    cold, warm = window_targets(data, int(cut), int(end))
    config = SequentialConfig(**(COMMON | CONFIGS[name]))
    started = time.perf_counter()
    model = Sequential().fit(data.subset(data.timestamps < cut), config, seed=seed)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "stage": stage, "config": name, "seed": seed, "fit_seconds": round(seconds, 1),
        "validation_ndcg@10": model.training["validation_ndcg@10"],
        "epochs": len(model.training["curve"]), "cold_items": int(cold.cold_items.sum()),
    }  # fmt: skip
    for label, targets in (("cold", cold), ("warm", warm)):
        query = queries(data, targets.rows)
        scores = model.score(query)
        items = data.items[targets.rows]
        result[label] = metrics(ranks(scores, query, items))
        if label == "cold":
            result["cold_among_cold"] = metrics(ranks(scores, query, items, cold.cold_items))
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| stage | config | seed | cold HR@10 | cold NDCG@10 | cold HR@100 | cold median rank "
        "| among cold HR@10 | warm HR@10 | warm NDCG@10 | own val NDCG@10 | fit s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r['stage']} | {r['config']} | {r['seed']} | {r['cold']['hr@10']:.3f} "
            f"| {r['cold']['ndcg@10']:.3f} | {r['cold'].get('hr@100', float('nan')):.3f} "
            f"| {r['cold'].get('median_rank', float('nan')):.0f} "
            f"| {r['cold_among_cold']['hr@10']:.3f} "
            f"| {r['warm']['hr@10']:.3f} | {r['warm']['ndcg@10']:.3f} "
            f"| {r['validation_ndcg@10']:.3f} | {r['fit_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=["validation", "test", "both"], default="both")
    parser.add_argument("--only", default=",".join(CONFIGS), help="configs, comma-separated")
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(THREADS)
    names = [name for name in args.only.split(",") if name]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"--only: unknown config(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    stages = list(STAGES) if args.stage == "both" else [args.stage]
    interactions = read_table(args.data / "interactions.csv.gz")
    items = read_table(args.data / "items.csv", dataset="items")
    data, _, _ = build_training_data(
        interactions, items, item_textual=("TITLE",), text_cache=TEXT_CACHE
    )
    results = []
    with threadpool_limits(limits=THREADS):
        for stage in stages:
            for name in names:
                for seed in [int(s) for s in args.seeds.split(",")]:
                    results.append(run(data, stage, name, seed))
                    print(table(results[-1:]).splitlines()[-1], flush=True)
                    save(results)  # after each fit: an interrupted run keeps what it measured
    print(table(results))


def save(results: list[dict[str, Any]]) -> None:
    """Merge ``results`` into the results file (a run replaces its stage, config and seed)."""
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    fresh = {(r["stage"], r["config"], r["seed"]) for r in results}
    keep = [r for r in previous["runs"] if (r["stage"], r["config"], r["seed"]) not in fresh]
    RESULTS.write_text(json.dumps({
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()}, {THREADS} threads", "runs": keep + results,
    }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
