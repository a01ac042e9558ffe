"""Answers for users who keep acting: how often a shortlist still answers them, and the cost.

A user's events since training move the user's vector away from the one its shortlist was
scored with, and past a bound the full scan must answer (``recipes/shortlists.py``). This
replays that in one process, one thread, on a copy of the store that ``./dev bench
serving_latency --home DIR`` prepared (100,000 items, ALS-64 with shortlists, the genre
filter): ``--users`` returning users, ``--rounds`` times over, each click ``--events`` items
(drawn by the catalogue's popularity, as the training clicks were, or uniformly with
``--uniform``: the serving benchmark's feeder), then ask for their answer. Each round reports
how many answers came from a shortlist and the time per answer.

    ./dev bench changed_users --home DIR [--rounds 8] [--events 1] [--uniform]
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import tastebud.serving.service as service
from serving_latency import GENRES, GROUP, N_ITEMS, RETURNING
from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.settings import Settings

RESULTS = Path(__file__).parent / "results" / "changed_users.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", type=Path, required=True, help="a serving_latency --home (copied, not changed)"
    )
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--events", type=int, default=1, help="clicks per user per round")
    parser.add_argument("--uniform", action="store_true", help="clicks on uniform random items")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args()


def count_paths(counts: collections.Counter[str]) -> None:
    """Count each answer's path: the shortlist, or (None) the full scan."""
    shortlisted = service.shortlisted_items

    def counted(*args: Any, **kwargs: Any) -> Any:
        found = shortlisted(*args, **kwargs)
        counts["shortlist" if found is not None else "full scan"] += 1
        return found

    service.shortlisted_items = counted  # type: ignore[assignment]


def main() -> None:
    args = parse_args()
    source = args.home / "home"
    if not (source / "tastebud.db").exists():
        raise SystemExit(f"{source} holds no store: run ./dev bench serving_latency --home DIR")
    threadpool_limits(limits=1)
    rng = np.random.default_rng(args.seed)
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8  # serving_latency.generate's clicks
    popularity /= popularity.sum()
    counts: collections.Counter[str] = collections.Counter()
    count_paths(counts)
    rounds = []
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        shutil.copytree(source, home)
        with Engine(Settings(home=home)) as engine:
            users = [f"u{u}" for u in rng.choice(RETURNING, args.users, replace=False)]
            for number in range(1, args.rounds + 1):
                for user in users:
                    items = (rng.integers(N_ITEMS, size=args.events) if args.uniform
                             else rng.choice(N_ITEMS, size=args.events, p=popularity))  # fmt: skip
                    events = [{"eventId": f"r{number}-{user}-{n}", "itemId": f"i{item}",
                               "eventType": "click", "sentAt": 1_800_000_000 + number}
                              for n, item in enumerate(items)]  # fmt: skip
                    engine.put_events(GROUP, PutEventsRequest.model_validate(
                        {"userId": user, "eventList": events}))  # fmt: skip
                counts.clear()
                seconds = []
                for user in users:
                    started = time.perf_counter()
                    engine.recommender.recommend(
                        GROUP, {"solution": "als"}, user_id=user, k=25, filter_name="not-genre",
                        filter_values={"G": f"g{int(user[1:]) % GENRES}"},
                    )  # fmt: skip
                    seconds.append(time.perf_counter() - started)
                ms = np.array(seconds) * 1000
                row = {"round": number, "clicks_so_far": number * args.events,
                       "shortlist": counts["shortlist"], "full_scan": counts["full scan"],
                       "ms_mean": round(float(ms.mean()), 2),
                       "ms_p50": round(float(np.median(ms)), 2),
                       "ms_p99": round(float(np.percentile(ms, 99)), 2)}  # fmt: skip
                print(json.dumps(row), flush=True)
                rounds.append(row)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.node(),
        "args": {k: str(v) for k, v in vars(args).items()}, "rounds": rounds,
    }, indent=2) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
