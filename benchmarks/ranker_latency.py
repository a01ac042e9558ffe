"""Ranker latency: 1,000 candidates ranked end to end over HTTP, and the trees alone (issue 15).

    flock /tmp/tastebud-bench.lock python benchmarks/ranker_latency.py [--data DIR] [--home DIR]
        [--requests 500] [--runs 2]

ml-1m-seq (6,040 users, 3,416 items, 987,531 interactions) is imported into an embedded (SQLite)
store and a ``ranker`` solution is trained with the default bases (``sequential``,
``similar-items``, EASE, popularity). The transformer is trained for a minute only: its forward
pass, not its quality, is what a request pays. A campaign (cache off) serves it; ``tastebud
serve --workers 1`` answers ``POST .../campaigns/shows/personalized-ranking`` with a different
user and 1,000 random items each request, sent one after another from this process (httpx, one
connection), so each figure is one request's whole time with nothing queued: reading the
user's history, every base's scores, the features, the trees and the ordering, plus HTTP.

In process, on the loaded model: the trees alone (LightGBM ``predict`` on 1,000 x F rows,
``num_threads=1``), and ``score_items`` (bases + features + trees) for the same users.
Both are measured ``--runs`` times back to back. Results:
``benchmarks/results/ranker_latency.json`` (one entry per run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from http_load import free_port, wait_ready
from tastebud.engine import Engine
from tastebud.recipes.ranker import RankerModel
from tastebud.recipes.ranker.candidates import score_bases
from tastebud.recipes.ranker.features import pair_features
from tastebud.recipes.ranker.recipe import latest_events
from tastebud.serving.recommend import user_query
from tastebud.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
GROUP, CAMPAIGN, SOLUTION = "movies", "shows", "ranked"
CANDIDATES = 1_000
PARAMS = {
    "bases": {
        "seq": {"recipe": "sequential", "params": {"time_budget_seconds": 60,
                                                   "validation_users": 256}},
        "next": {"recipe": "similar-items"},
        "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
        "pop": {"recipe": "popularity-count"},
    },
}  # fmt: skip


def prepare(settings: Settings, data: Path) -> str:
    """Import ml-1m-seq, train the ranker, deploy it as a campaign; returns an admin token."""
    with Engine(settings) as engine:
        engine.init()
        engine.put_schema(GROUP, "items", {"TITLE": "textual", "GENRES": "categorical",
                                           "YEAR": "numerical"})  # fmt: skip
        engine.import_file(GROUP, "interactions", data / "interactions.csv.gz", mode="full")
        engine.import_file(GROUP, "items", data / "items.csv", mode="full")
        body = {"recipe": "ranker", "evaluate": False, "params": PARAMS}
        engine.create_solution(GROUP, SOLUTION, body)
        started = time.perf_counter()
        engine.train(GROUP, SOLUTION)
        print(f"trained the ranker in {time.perf_counter() - started:.0f} s", flush=True)
        engine.create_campaign(GROUP, CAMPAIGN, SOLUTION, config={"cache_ttl_seconds": 0})
        return engine.create_token("bench", scope="admin")


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2),
            "p90": round(float(np.percentile(ms, 90)), 2),
            "p99": round(float(np.percentile(ms, 99)), 2), "n": len(ms)}  # fmt: skip


def in_process(settings: Settings, requests: int, rng: np.random.Generator) -> dict[str, Any]:
    """Trees alone and score_items on the served version, for ``requests`` users."""
    with Engine(settings) as engine:
        version = engine.recommender.resolve_version(GROUP, solution=SOLUTION)
        model = version.model
        assert isinstance(model, RankerModel)
        users = rng.choice(len(version.users), size=requests, replace=False)
        trees, whole, matrices = [], [], []
        for user in users.tolist():
            user_id = str(version.users.ids([user])[0])
            events = engine.store.recent_events(GROUP, user_id, model.history_window)
            query = user_query(version, user_id, (), events=events)
            items = rng.choice(model.n_items, size=CANDIDATES, replace=False).astype(np.int32)
            started = time.perf_counter()
            model.score_items(query, items)
            whole.append(time.perf_counter() - started)
            cut = latest_events(query, model.history_window)
            scored = score_bases(model.bases, cut, model.n_items, top_n=model.config.candidates,
                                 exclude_seen=model.config.exclude_seen)  # fmt: skip
            rows = np.zeros(CANDIDATES, np.int32)
            empty = np.zeros((CANDIDATES, 0), np.float32)
            matrix = pair_features(model.facts, cut, scored, rows, items, empty)
            started = time.perf_counter()
            model.trees.predict(matrix, num_threads=1)
            trees.append(time.perf_counter() - started)
            matrices.append(matrix)
        return {"trees_alone_ms": percentiles(trees), "score_items_ms": percentiles(whole),
                "features": len(model.names), "trees": model.trees.num_trees(),
                "leaves": model.config.num_leaves,
                "trees_alone_at_the_cap_ms": at_the_cap(model, matrices, rng)}  # fmt: skip


def at_the_cap(model: RankerModel, matrices: list[Any], rng: np.random.Generator) -> Any:
    """Predict time of the most trees the config allows (``n_estimators``, every tree with all
    its leaves: random labels never stop early), on the same 1,000-row matrices."""
    import lightgbm

    sample = np.vstack(matrices[:50])
    labels = rng.integers(0, 2, size=len(sample))
    params = {"objective": "lambdarank", "num_leaves": model.config.num_leaves,
              "min_data_in_leaf": 5, "verbose": -1, "num_threads": 2, "seed": 0}  # fmt: skip
    data = lightgbm.Dataset(sample, label=labels, group=[CANDIDATES] * (len(sample) // CANDIDATES))
    booster = lightgbm.train(params, data, num_boost_round=model.config.n_estimators)
    seconds = []
    for matrix in matrices:
        started = time.perf_counter()
        booster.predict(matrix, num_threads=1)
        seconds.append(time.perf_counter() - started)
    return percentiles(seconds) | {"trees": booster.num_trees()}


def over_http(settings: Settings, token: str, requests: int, rng: np.random.Generator,
              home: Path) -> dict[str, Any]:  # fmt: skip
    """``requests`` campaign rankings of 1,000 items, one at a time, through ``tastebud serve``."""
    with Engine(settings) as engine:
        version = engine.recommender.resolve_version(GROUP, solution=SOLUTION)
        user_ids = version.users.ids(range(len(version.users)))
        item_ids = version.items.ids(range(len(version.items)))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TASTEBUD_HOME": str(settings.home), "TASTEBUD_DEFAULT_GROUP": GROUP}
    with (home / "server.log").open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "tastebud", "serve", "--port", str(port), "--workers", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        wait_ready(url)
        path = f"{url}/v1/dataset-groups/{GROUP}/campaigns/{CAMPAIGN}/personalized-ranking"
        headers = {"Authorization": f"Bearer {token}"}
        seconds, sources = [], set()
        with httpx.Client(headers=headers, timeout=30) as client:
            for i in range(requests + 20):  # the first 20 warm up (the version loads)
                user = user_ids[int(rng.integers(len(user_ids)))]
                chosen = rng.choice(len(item_ids), size=CANDIDATES, replace=False)
                body = {"userId": user, "inputList": [item_ids[j] for j in chosen.tolist()]}
                started = time.perf_counter()
                response = client.post(path, json=body)
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                answer = response.json()
                assert len(answer["itemList"]) == CANDIDATES, answer
                sources.add(answer["source"])
                if i >= 20:
                    seconds.append(elapsed)
        return {"http_ms": percentiles(seconds), "sources": sorted(sources)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the data sets")
    parser.add_argument("--home", type=Path, default=None, help="keep the prepared store here")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2, help="measure this many times in a row")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="ranker-latency-"))
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home / "home", default_group=GROUP)
    marker = home / "prepared.json"
    if not marker.exists():
        marker.write_text(json.dumps({"token": prepare(settings, args.data / "ml-1m-seq")}))
    token = json.loads(marker.read_text())["token"]
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(args.runs):  # back to back, under the same lock: the same quiet machine
        run: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "candidates": CANDIDATES, "cpus": os.cpu_count(),
                               "load_1min": round(os.getloadavg()[0], 2)}  # fmt: skip
        run |= in_process(settings, args.requests, rng)
        print("in process:", json.dumps(run), flush=True)
        run |= over_http(settings, token, args.requests, rng, home)
        print(json.dumps(run, indent=2), flush=True)
        runs.append(run)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ranker_latency.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
