"""Latency of the ``sequential`` recipe answering one user over the ml-1m-seq catalog.

    ./dev bench sequential_latency [--model DIR] [--save DIR] [--users 2000] [--threads 2]

Loads a model saved by ``SequentialModel.save`` (``--model``), or trains one with the recipe's
defaults under a short time budget (``--train-seconds``, 60): latency depends on the
architecture (window length, width, blocks, token features), not on how long it trained.
Then, one request at a time for ``--users`` users with their full histories (events with
types and times, as serving reads them), it times ``model.score`` alone and
``recommend_items`` (score, history exclusion, top 25: the whole serving path after the
event read), and reports p50/p90/p99 wall time and process CPU time (all threads) in ms.
Goal (issue 5): under 5 ms per user on this CPU. torch uses ``--threads`` threads (2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tastebud.ids import Vocabulary
from tastebud.recipes import TrainingData, parse_config
from tastebud.recipes.sequential import Sequential, SequentialModel
from tastebud.serving import recommend_items
from tastebud.serving.recommend import user_query
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Event
from tastebud.training.data import build_training_data, read_table

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-1m-seq"
K = 25
HISTORY = 200  # events serving reads per user (TASTEBUD_SERVING__HISTORY_LENGTH)


def load_data() -> tuple[TrainingData, Vocabulary, Vocabulary]:
    interactions = read_table(DATA / "interactions.csv.gz")
    items = read_table(DATA / "items.csv", dataset="items")
    return build_training_data(interactions, items)


def model_for(data: TrainingData, folder: Path | None, seconds: float) -> SequentialModel:
    recipe = Sequential()
    if folder is not None and (folder / "model.json").exists():
        return recipe.load(folder)
    config = parse_config(recipe, {"time_budget_seconds": seconds, "epochs": 1})
    return recipe.fit(data, config, seed=0)


def user_events(data: TrainingData, items: Vocabulary, user: int) -> list[Event]:
    """The user's latest ``HISTORY`` events, oldest first, as the store hands them over."""
    rows = np.flatnonzero(data.users == user)[-HISTORY:]
    names = data.event_type_names
    return [
        Event(
            item_id=str(items.id(int(data.items[row]))),
            timestamp=int(data.timestamps[row]),
            event_type=None if data.event_types is None else names[data.event_types[row]],
        )
        for row in rows
    ]


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, process CPU ms: every torch thread) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return 1e3 * (time.perf_counter() - wall), 1e3 * (time.process_time() - cpu)


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100)
    return {"p50": round(cuts[49], 3), "p90": round(cuts[89], 3), "p99": round(cuts[98], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a saved model folder")
    parser.add_argument("--save", type=Path, default=None, help="save the trained model here")
    parser.add_argument("--train-seconds", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, users, items = load_data()
    model = model_for(data, args.model, args.train_seconds)
    if args.save is not None:
        model.save(args.save)
    version = LoadedVersion(
        id="bench", recipe="sequential", meta={}, model=model, users=users, items=items,
        popularity=data.item_counts(), item_features=None,
        deleted_users=np.zeros(0, np.int32), deleted_items=np.zeros(0, np.int32),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    chosen = rng.choice(data.n_users, size=min(args.users, data.n_users), replace=False)
    requests = [(str(users.id(int(u))), user_events(data, items, int(u))) for u in chosen]
    for user_id, events in requests[:50]:  # warm-up
        recommend_items(version, user_id=user_id, events=events, k=K)
    score: dict[str, list[float]] = {"wall": [], "cpu": []}
    answer: dict[str, list[float]] = {"wall": [], "cpu": []}
    for user_id, events in requests:
        query = user_query(version, user_id, [], events=events)
        for sink, call in (
            (score, lambda: model.score(query)),  # noqa: B023 (called at once)
            (answer, lambda: recommend_items(version, user_id=user_id, events=events, k=K)),  # noqa: B023
        ):
            wall, cpu = timed(call)
            sink["wall"].append(wall)
            sink["cpu"].append(cpu)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "threads": args.threads, "users": len(requests), "items": data.n_items,
        "max_len": model.network.config.max_len, "hidden": model.network.config.hidden,
        "blocks": model.network.config.blocks, "token_width": model.network.config.token_width,
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "model.score": {kind: percentiles(values) for kind, values in score.items()},
        "recommend_items": {kind: percentiles(values) for kind, values in answer.items()},
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
