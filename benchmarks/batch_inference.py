"""Batch inference over every user of ml-1m-seq: wall time of ``tastebud batch recommend``.

    ./dev bench batch_inference [--home DIR] [--recipes ease,als,sequential] [--workers 2]

Imports ml-1m-seq (interactions and items) into a fresh embedded store (SQLite under
``--home``, a temporary folder by default), trains each solution (``sequential`` under a short
time budget, ``--train-seconds``: scoring cost depends on the architecture, not on how long it
trained), then times one batch job per solution: all 6,040 users, top 25, from a JSON Lines
file to a JSON Lines file, the same code path as the CLI (history read from the store, seen
items excluded). Goals (issue 13): <= 10 s for EASE/ALS, <= 60 s for ``sequential`` on 2
cores. It also checks, on ``--check`` users, that each batch answer equals the real-time
answer, and times the real-time path one user at a time for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tastebud.batch import BatchSpec
from tastebud.engine import Engine
from tastebud.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m-seq"
RESULTS = Path(__file__).resolve().parent / "results" / "batch_inference.json"
K = 25
SOLUTIONS: dict[str, dict[str, Any]] = {
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
    "als": {"recipe": "user-personalization", "params": {"algorithm": "als"}},
    "sequential": {"recipe": "sequential", "params": {}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--recipes", default="ease,als,sequential")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", type=int, default=300)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="tastebud-batch-"))
    report: dict[str, Any] = {
        "machine": f"{os.cpu_count()} cores", "load": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip
    with Engine(Settings(home=home)) as engine:
        engine.init()
        group = "default"
        report["import_seconds"] = load(engine, group)
        users = [str(u) for u in engine.store.vocabulary(group, "user").ids(
            range(len(engine.store.vocabulary(group, "user"))))]  # fmt: skip
        source = home / "users.jsonl"
        source.write_text("".join(json.dumps({"userId": u}) + "\n" for u in users))
        for name in args.recipes.split(","):
            report[name] = bench_solution(engine, group, name, source, users, args)
            print(name, json.dumps(report[name]), flush=True)
    report["load_after"] = os.getloadavg()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


def load(engine: Engine, group: str) -> float:
    started = time.perf_counter()
    engine.put_schema(group, "items", {"TITLE": "textual", "GENRES": "categorical",
                                       "YEAR": "numerical"})  # fmt: skip
    engine.import_file(group, "interactions", DATA / "interactions.csv.gz", mode="full")
    engine.import_file(group, "items", DATA / "items.csv", mode="full")
    return round(time.perf_counter() - started, 1)


def bench_solution(
    engine: Engine, group: str, name: str, source: Path, users: list[str], args: Any
) -> dict[str, Any]:
    body = dict(SOLUTIONS[name]) | {"evaluate": False}
    if name == "sequential":
        body["params"] = {"time_budget_seconds": args.train_seconds}
    engine.create_solution(group, name, body, replace=True)
    started = time.perf_counter()
    version = engine.train(group, name)
    row: dict[str, Any] = {"train_seconds": round(time.perf_counter() - started, 1)}
    output = source.with_name(f"{name}.jsonl")
    result = engine.batch.run(BatchSpec(group=group, kind="recommend", input=source,
                                        output=output, solution=name, num_results=K))  # fmt: skip
    row |= {"users": result.lines, "errors": result.errors,
            "batch_seconds": round(result.seconds, 2),
            "users_per_second": round(result.lines / result.seconds)}  # fmt: skip
    if args.workers > 1:
        pooled = engine.batch.run(BatchSpec(
            group=group, kind="recommend", input=source, output=output.with_suffix(".pool.jsonl"),
            solution=name, num_results=K, executor="processes", workers=args.workers,
            shard_lines=len(users) // args.workers + 1))  # fmt: skip
        row["processes_seconds"] = round(pooled.seconds, 2)
    answers = [json.loads(line) for line in output.read_text().splitlines()]
    started = time.perf_counter()
    same = 0
    for line in answers[: args.check]:
        live = engine.recommender.recommend(group, {"version_id": version.id},
                                            user_id=line["input"]["userId"], k=K)  # fmt: skip
        same += [r.id for r in live.results] == line["output"]["recommendedItems"]
    per_user = (time.perf_counter() - started) / max(1, min(args.check, len(answers)))
    row |= {"checked": min(args.check, len(answers)), "equal_to_real_time": same,
            "real_time_ms_per_user": round(1e3 * per_user, 2),
            "real_time_all_users_seconds": round(per_user * len(users), 1)}  # fmt: skip
    return row


if __name__ == "__main__":
    main()
