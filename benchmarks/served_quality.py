"""Served quality: what the serving path answers, scored as ``evaluate`` scores (issue 14).

    ./dev bench served_quality [--only popularity-count,similar-items,ease,als,sequential]
                               [--sequential-seconds 120] [--sample 200] [--data FOLDER]

Leave-last-out on ml-1m-seq (``../shared/data/ml-1m-seq``, relative to the repository root; the
split of ``evaluation.splits.leave_last_out``): every user's interactions but the last are
imported into a fresh embedded store (SQLite), each recipe is trained there as a solution, and
every scored user is answered through the serving path with the default settings — a batch job
(``engine.batch.run``, proven equal to real time by ``tests/batch``), and the real-time
``engine.recommender.recommend`` for ``--sample`` users (the heaviest half, a random half),
checked equal to the batch answer and timed. The held-out item is scored with
``evaluation.metrics``; the *evaluated* figure is ``evaluation.evaluate`` on the same trained
model with the split's own test queries (whole history, history excluded, full ranking, asked
at the held-out event's time); ``evaluated_at_now`` asks the same queries at the current time,
as served requests are (only a time-aware model, sequential, can tell the two apart).

Results: ``benchmarks/results/served_quality-ml-1m-seq.json`` and a markdown table on stdout.
BLAS/OpenMP pools and torch are limited to 2 threads.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from threadpoolctl import threadpool_limits

from tastebud.batch import BatchSpec
from tastebud.engine import Engine
from tastebud.evaluation import evaluate, metrics
from tastebud.evaluation.splits import Targets, leave_last_out
from tastebud.ids import Vocabulary
from tastebud.recipes import Query
from tastebud.serving.versions import LoadedVersion
from tastebud.settings import Settings
from tastebud.training.data import build_training_data, read_table

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ml-1m-seq"
RESULTS = Path(__file__).parent / "results" / "served_quality-ml-1m-seq.json"
THREADS = 2
GROUP = "ml-1m-seq"
SOLUTIONS: dict[str, dict[str, Any]] = {
    "popularity-count": {"recipe": "popularity-count"},
    "similar-items": {"recipe": "similar-items"},  # its defaults: sequential mode, 20 items
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease", "l2": 250.0}},
    "als": {
        "recipe": "user-personalization",
        "params": {
            "algorithm": "als",
            "factors": 128,
            "regularization": 0.1,
            "alpha": 1.0,
            "iterations": 15,
        },
    },
    "sequential": {"recipe": "sequential", "params": {}},  # budget: --sequential-seconds
}


def split_frames(path: Path) -> tuple[pl.DataFrame, Targets, Vocabulary, Vocabulary]:
    """The rows to import (all but each scored user's last), and the test targets."""
    interactions = read_table(path)
    data, users, items = build_training_data(interactions)
    split = leave_last_out(data)
    kept = split.train_and_validation
    frame = pl.DataFrame({
        "USER_ID": users.ids(kept.users.tolist()), "ITEM_ID": items.ids(kept.items.tolist()),
        "TIMESTAMP": kept.timestamps, "EVENT_TYPE": ["rating"] * kept.size,
    })  # fmt: skip
    return frame, split.test, users, items


def in_version(
    targets: Targets, version: LoadedVersion, users: Vocabulary, items: Vocabulary
) -> Targets:
    """``targets`` with the split's user and item indexes turned into ``version``'s."""
    query = targets.query

    def item_index(indexes: np.ndarray) -> np.ndarray:
        return version.items.indices(items.ids(indexes.tolist())).astype(np.int32)

    history = item_index(query.history_items)
    if (history < 0).any():
        raise RuntimeError("a training item is unknown to the version")
    remapped = Query(
        users=version.users.indices(users.ids(query.users.tolist())).astype(np.int32),
        history_indptr=query.history_indptr, history_items=history, times=query.times,
        history_timestamps=query.history_timestamps, contexts=query.contexts,
        history_event_types=query.history_event_types, event_type_names=query.event_type_names,
        history_values=query.history_values,
    )  # fmt: skip
    return Targets(
        users=remapped.users, relevant_indptr=targets.relevant_indptr,
        relevant_items=item_index(targets.relevant_items), times=targets.times, query=remapped,
    )  # fmt: skip


def served(
    engine: Engine, name: str, user_ids: list[str], folder: Path
) -> tuple[list[list[str]], float]:
    """Top-10 ids per user from a batch job, and its seconds."""
    lines = folder / f"{name}-in.jsonl"
    lines.write_text("".join(json.dumps({"userId": u}) + "\n" for u in user_ids))
    output = folder / f"{name}-out.jsonl"
    spec = BatchSpec(group=GROUP, kind="recommend", input=lines, output=output, solution=name,
                     num_results=10)  # fmt: skip
    result = engine.batch.run(spec)
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    if result.errors or [a["input"]["userId"] for a in answers] != user_ids:
        raise RuntimeError(f"batch job {name}: {result.errors} errors, {result.samples}")
    return [a["output"]["recommendedItems"] for a in answers], result.seconds


def real_time(
    engine: Engine, name: str, sample: list[str], batch: dict[str, list[str]]
) -> dict[str, Any]:
    """The real-time answers of ``sample``: how many differ from the batch's, and latency."""
    differ, seconds = 0, []
    for user in sample:
        started = time.perf_counter()
        answer = engine.recommender.recommend(GROUP, {"solution": name}, user_id=user, k=10)
        seconds.append(time.perf_counter() - started)
        differ += [r.id for r in answer.results] != batch[user]
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[int(0.95 * (len(ms) - 1))]
    # What a request reads of the heaviest users' histories now, and what it read before
    # (the latest 200 events, as Event objects, for every recipe).
    version = engine.recommender.resolve_version(GROUP, solution=name)
    heavy = sample[: len(sample) // 2]
    reads, before = [], []
    for user in heavy:
        started = time.perf_counter()
        engine.recommender.read_history(GROUP, version, user, filtered=False)
        reads.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        engine.store.recent_events(GROUP, user, 200)
        before.append(1000 * (time.perf_counter() - started))
    return {"users": len(sample), "differ_from_batch": differ,
            "median_ms": statistics.median(ms), "p95_ms": p95,
            "heavy_read_median_ms": statistics.median(reads),
            "heavy_read_200_events_median_ms": statistics.median(before)}  # fmt: skip


def run(
    names: list[str], sequential_seconds: float, sample_size: int, data: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    frame, targets, users, items = split_frames(data / "interactions.csv.gz")
    user_ids = users.ids(targets.users.tolist())
    counts = frame.group_by("USER_ID").len()
    heaviest = counts.sort("len", descending=True)["USER_ID"].head(sample_size // 2).to_list()
    rng = np.random.default_rng(0)
    sample = heaviest + [u for u in rng.permutation(user_ids).tolist() if u not in heaviest][
        : sample_size - len(heaviest)]  # fmt: skip
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        settings = Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'db'}")
        engine = Engine(settings)
        try:
            csv = folder / "train.csv"
            frame.write_csv(csv)
            engine.create_group(GROUP)
            load = time.perf_counter()
            engine.import_file(GROUP, "interactions", csv, mode="full")
            print(f"imported {frame.height} interactions in {time.perf_counter() - load:.0f} s")
            for name in names:
                body = SOLUTIONS[name]
                if name == "sequential":
                    body = body | {"params": {"time_budget_seconds": sequential_seconds}}
                engine.create_solution(GROUP, name, body | {"evaluate": False})
                fit = time.perf_counter()
                engine.train(GROUP, name)
                fit_seconds = time.perf_counter() - fit
                version = engine.recommender.resolve_version(GROUP, solution=name)
                mapped = in_version(targets, version, users, items)
                answers, batch_seconds = served(engine, name, user_ids, folder)
                ranked = np.array([version.items.indices(a) for a in answers], np.int32)
                served_metrics = {
                    "ndcg@10": metrics.ndcg_at_k(ranked, mapped.items, 10),
                    "hr@10": metrics.hit_rate_at_k(ranked, mapped.items, 10),
                }
                evaluated = evaluate(version.model, mapped, protocol="leave-last-out")
                # Served requests happen now; evaluate asks at the held-out event's time. Only a
                # time-aware model (sequential: the request's gap and hour) sees the difference.
                now = dataclasses.replace(
                    mapped, query=dataclasses.replace(mapped.query, times=None)
                )
                at_now = evaluate(version.model, now, protocol="leave-last-out")
                checks = real_time(engine, name, sample, dict(zip(user_ids, answers, strict=True)))
                rows[name] = {
                    "served": served_metrics,
                    "evaluated": {k: evaluated[k] for k in ("ndcg@10", "hr@10")},
                    "difference": {k: served_metrics[k] - evaluated[k] for k in served_metrics},
                    "evaluated_at_now": {k: at_now[k] for k in served_metrics},
                    "fit_seconds": fit_seconds, "batch_seconds": batch_seconds,
                    "real_time": checks, "params": body.get("params", {}),
                    "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "load": os.getloadavg(),
                }  # fmt: skip
                print(f"{name}: {json.dumps(rows[name])}", flush=True)
        finally:
            engine.close()
    return {
        "dataset": "ml-1m-seq", "users": len(user_ids), "imported": frame.height,
        "rows": rows, "seconds": time.perf_counter() - started,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_at_end": os.getloadavg()},
    }  # fmt: skip


def table(report: dict[str, Any]) -> str:
    lines = [
        "| recipe | served NDCG@10 | evaluated NDCG@10 | diff | served HR@10 | evaluated HR@10 "
        "| diff | real time = batch | real-time median / p95 ms | history read, heavy users: "
        "now / 200 events (ms) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in report["rows"].items():
        s, e, d, r = row["served"], row["evaluated"], row["difference"], row["real_time"]
        lines.append(
            f"| {name} | {s['ndcg@10']:.4f} | {e['ndcg@10']:.4f} | {d['ndcg@10']:+.4f} "
            f"| {s['hr@10']:.4f} | {e['hr@10']:.4f} | {d['hr@10']:+.4f} "
            f"| {r['users'] - r['differ_from_batch']}/{r['users']} "
            f"| {r['median_ms']:.2f} / {r['p95_ms']:.2f} "
            f"| {r['heavy_read_median_ms']:.2f} / {r['heavy_read_200_events_median_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SOLUTIONS))
    parser.add_argument("--sequential-seconds", type=float, default=120.0)
    parser.add_argument("--sample", type=int, default=200, help="real-time users checked")
    parser.add_argument("--data", type=Path, default=DATA, help="the ml-1m-seq folder")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(THREADS)
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(SOLUTIONS)
    if unknown:
        parser.error(f"unknown --only {sorted(unknown)}; choose from {', '.join(SOLUTIONS)}")
    with threadpool_limits(limits=THREADS):
        report = run(names, args.sequential_seconds, args.sample, args.data)
    report["command"] = "./dev bench served_quality " + " ".join(
        f"--only {args.only} --sequential-seconds {args.sequential_seconds:g} "
        f"--sample {args.sample}".split()
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    previous_rows = previous.get("rows", {}) if isinstance(previous, dict) else {}
    report["rows"] = previous_rows | report["rows"]  # a partial run (--only) keeps the others
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))


if __name__ == "__main__":
    main()
