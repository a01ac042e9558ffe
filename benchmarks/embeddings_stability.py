"""Embedding stability across retrains (issue 17, part 5): how far apart two versions' vectors
are before and after the orthogonal alignment, and that the alignment changes no answer.

    flock /tmp/tastebud-bench.lock flock -s /tmp/tastebud-quiet.lock \\
        .venv/bin/python benchmarks/embeddings_stability.py [--datasets ml-100k,ml-1m-seq]
        [--models als,bpr,sequential] [--sequential-seconds 60] [--data DIR]

For each data set and model, two pairs of versions: the same data with seeds 0 and 1 ("seed"),
and the first 95% of the interactions by time then all of them with the same seed ("+5%
data"). The second version of a pair is aligned to the first (``embeddings.alignment.align``,
what training does). Reported per pair:

- the mean cosine of the shared items' vectors, raw and aligned;
- the new version's top 10 per user from its raw vectors and from its aligned vectors (user and
  item vectors both rotated): the share of users whose list is identical (it must be all);
- a downstream system holding the *old* version's user vectors and the *new* item vectors: the
  overlap of the top 10 they give with the new version's own top 10, raw and aligned;
- the time to fit the rotation and apply it to every item and user vector.

Top 10 over every item, history not excluded: the lists compare vectors, not recommendations.
Every thread pool at 2 threads. Prints a markdown table and writes
``benchmarks/results/embeddings_stability.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from recipe_quality import load_folder
from tastebud.embeddings.alignment import Reference, align
from tastebud.ids import Vocabulary
from tastebud.recipes import Embeddings, Query, TrainingData, get_recipe, parse_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
THREADS = 2
K = 10
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "als": ("user-personalization", {"algorithm": "als"}),  # 128 factors, the defaults
    "bpr": ("user-personalization", {"algorithm": "bpr"}),
    "sequential": ("sequential", {}),  # defaults, with --sequential-seconds as the budget
}


def fit(data: TrainingData, model: str, seed: int, seconds: float) -> Embeddings:
    recipe_name, params = MODELS[model]
    if recipe_name == "sequential":
        params = params | {"time_budget_seconds": seconds}
    recipe = get_recipe(recipe_name)
    fitted = recipe.fit(data, parse_config(recipe, params), seed=seed)
    assert isinstance(fitted, Embeddings)
    return fitted


def histories(data: TrainingData) -> Query:
    """Every user with its whole history in time order."""
    order = np.lexsort((np.arange(data.size), data.timestamps, data.users))
    counts = np.bincount(data.users, minlength=data.n_users)
    indptr = np.zeros(data.n_users + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Query(
        users=np.arange(data.n_users, dtype=np.int32), history_indptr=indptr,
        history_items=data.items[order], history_timestamps=data.timestamps[order],
        times=np.full(data.n_users, int(data.timestamps.max()) + 1, np.int64),
    )  # fmt: skip


def top_k(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    scores = users.astype(np.float32) @ items.astype(np.float32).T
    best = np.argpartition(-scores, K, axis=1)[:, :K]
    order = np.argsort(-np.take_along_axis(scores, best, 1), axis=1, kind="stable")
    return np.take_along_axis(best, order, 1)


def overlap(left: np.ndarray, right: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(left, right, strict=True)]))


def compare(old: Embeddings, new: Embeddings, query: Query, n_items: int) -> dict[str, Any]:
    """The table's figures for ``new`` aligned to ``old`` (same item indexes)."""
    ids = Vocabulary([str(i) for i in range(n_items)])
    old_items, new_items = old.item_embeddings(), new.item_embeddings()
    assert old_items is not None and new_items is not None
    old_users, _ = old.user_embeddings(query)
    new_users, present = new.user_embeddings(query)
    started = time.perf_counter()
    space = align("sv-new", recipe="x", items=ids, vectors=new_items,
                  previous=Reference("sv-old", "x", "space-old", ids, old_items))  # fmt: skip
    aligned_items, aligned_users = space.apply(new_items), space.apply(new_users)
    seconds = time.perf_counter() - started
    own = top_k(new_users[present], new_items)
    via_aligned = top_k(aligned_users[present], aligned_items)
    return {
        "shared_items": space.shared_items, "dimensions": int(new_items.shape[1]),
        "cosine_raw": space.cosine_before, "cosine_aligned": space.cosine_after,
        "identical_top10": float(np.mean((own == via_aligned).all(axis=1))),
        "top10_overlap_aligned_vs_raw": overlap(own, via_aligned),
        "stale_users_overlap_raw": overlap(top_k(old_users[present], new_items), own),
        "stale_users_overlap_aligned": overlap(top_k(old_users[present], aligned_items), own),
        "align_seconds": seconds, "users": int(present.sum()),
    }  # fmt: skip


def run(folder: Path, dataset: str, model: str, seconds: float) -> list[dict[str, Any]]:
    data = load_folder(folder / dataset)
    cut = np.argsort(data.timestamps, kind="stable")[: int(0.95 * data.size)]
    earlier = data.subset(np.isin(np.arange(data.size), cut))
    query = histories(data)
    rows = []
    started = time.perf_counter()
    base = fit(data, model, 0, seconds)
    for pair, old in (("seed 0 -> 1", base), ("95% -> +5% data", fit(earlier, model, 0, seconds))):
        new = fit(data, model, 1, seconds) if pair.startswith("seed") else base
        row = {"dataset": dataset, "model": model, "pair": pair} | fit_facts(old, new)
        rows.append(row | compare(old, new, query, data.n_items))
        logging.info("done %s", rows[-1])
    rows[-1]["fit_seconds_total"] = time.perf_counter() - started
    return rows


def fit_facts(old: Embeddings, new: Embeddings) -> dict[str, Any]:
    """The sequential fits' epochs and validation NDCG@10 (how trained the compared models are)."""
    facts: dict[str, Any] = {}
    for name, model in (("old", old), ("new", new)):
        training = getattr(model, "training", None) or {}
        if training:
            facts[f"{name}_epochs"] = len(training.get("curve", []))
            facts[f"{name}_val_ndcg@10"] = training.get("validation_ndcg@10")
    return facts


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| data set | model | versions | shared items (d) | cosine raw | cosine aligned | "
        "top-10 identical (aligned vs raw) | stale user vectors: top-10 overlap raw / aligned "
        "| align ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['model']} | {r['pair']} | {r['shared_items']:,} "
            f"({r['dimensions']}) | {r['cosine_raw']:.3f} | {r['cosine_aligned']:.3f} | "
            f"{r['identical_top10']:.1%} of {r['users']:,} users | "
            f"{r['stale_users_overlap_raw']:.3f} / {r['stale_users_overlap_aligned']:.3f} | "
            f"{1000 * r['align_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="ml-100k")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the data sets")
    parser.add_argument("--models", default="als,bpr,sequential")
    parser.add_argument("--sequential-seconds", type=float, default=60.0)
    parser.add_argument("--only", default="", help="DATASET:MODEL pairs to run, comma-separated")
    parser.add_argument("--output", default="embeddings_stability.json", help="results file name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(THREADS)
    wanted = {tuple(p.split(":")) for p in args.only.split(",") if p}
    rows: list[dict[str, Any]] = []
    with threadpool_limits(limits=THREADS):
        for dataset in args.datasets.split(","):
            for model in args.models.split(","):
                if not wanted or (dataset, model) in wanted:
                    rows += run(args.data, dataset, model, args.sequential_seconds)
    RESULTS.mkdir(exist_ok=True)
    out = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "rows": rows}
    (RESULTS / args.output).write_text(json.dumps(out, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
