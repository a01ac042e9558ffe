"""What a campaign answer costs from the model and from precomputed answers in Redis.

A synthetic catalogue (``--items`` items, Zipf popularity) and ``--users`` users with 25 clicks
each go into an embedded store; ALS (64 factors) is trained and deployed as a campaign with a
precomputed source; the model's own top-25 for every user is written to Redis with
:class:`PrecomputedWriter` (as a batch job would). Then the same requests (top 25 for known
users, result cache off) are timed in-process: through the model, and through the precomputed
path (forced as under load: an in-flight gauge reporting a share past the campaign's
``overload_share``). Needs Redis at ``--redis``.

    PYTHONPATH=src python benchmarks/precomputed_fallback.py [--items 20000] [--users 5000] \
        2>/dev/null   # the JSON log lines
"""

from __future__ import annotations

import argparse
import logging.config
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import redis

from tastebud import observability
from tastebud.engine import Engine
from tastebud.serving.campaigns import CampaignRequest
from tastebud.serving.precomputed import PrecomputedReader, PrecomputedTarget, PrecomputedWriter
from tastebud.settings import Settings

PER_USER = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # as a server process answers: one thread per request
    # The server's logging (each fallback logs a warning line from a background thread).
    logging.config.dictConfig(observability.logging_config("info"))
    prefix = f"bench-precomputed-{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp, Engine(Settings(home=Path(tmp))) as engine:
        try:
            run(engine, Path(tmp), args, prefix)
        finally:
            raw = redis.Redis.from_url(args.redis)
            for key in raw.scan_iter(match=f"{prefix}*", count=10_000):
                raw.delete(key)


def run(engine: Engine, folder: Path, args: argparse.Namespace, prefix: str) -> None:
    group = engine.settings.default_group
    engine.init()
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, args.items + 1) ** 0.8
    items = rng.choice(args.items, size=args.users * PER_USER, p=weights / weights.sum())
    csv = folder / "interactions.csv"
    pl.DataFrame({
        "USER_ID": np.repeat([f"u{u}" for u in range(args.users)], PER_USER),
        "ITEM_ID": [f"i{i}" for i in items],
        "TIMESTAMP": 1_700_000_000 + np.arange(len(items)),
        "EVENT_TYPE": "click",
    }).write_csv(csv)  # fmt: skip
    engine.import_file(group, "interactions", csv, mode="full")
    als = {"algorithm": "als", "factors": 64}
    engine.create_solution(group, "for-you", {"recipe": "user-personalization", "params": als})
    version = engine.train(group, "for-you")
    engine.create_campaign(group, "home", "for-you", config={
        "cache_ttl_seconds": 0, "min_interactions": 0,
        "precomputed": {"url": args.redis, "key_prefix": prefix}})  # fmt: skip

    users = [f"u{u}" for u in rng.choice(args.users, size=args.requests, replace=False)]
    started = time.perf_counter()
    entries = []
    for user in users:  # what a batch job writes: the model's top 25 (wider, then cut)
        answer = engine.campaign_answer(group, "home", CampaignRequest(user_id=user, k=50))
        listed = answer["itemList"]
        entries.append((user, {
            "recommendedItems": [i["itemId"] for i in listed],
            "scores": [i["score"] for i in listed],
            "solutionVersionId": version.id, "createdAt": int(time.time()),
        }))  # fmt: skip
    target = PrecomputedTarget.parse(args.redis, key_prefix=prefix)
    with PrecomputedWriter(target) as writer:
        write_started = time.perf_counter()
        writer.write(entries)
        write_seconds = time.perf_counter() - write_started
    print(f"setup {time.perf_counter() - started:.1f} s; {len(entries)} entries written in one "
          f"pipeline: {write_seconds * 1000:.1f} ms")  # fmt: skip

    def ask(user: str) -> dict[str, Any]:
        return engine.campaign_answer(group, "home", CampaignRequest(user_id=user, k=25))

    model = timed(users, ask)
    busy = Saturated()
    observability.track_inflight(busy)
    precomputed = timed(users, ask)
    assert ask(users[0])["source"] == "precomputed"
    del busy
    reader = PrecomputedReader(args.redis)
    redis_get = timed(users, lambda user: reader.get(prefix, user))
    print(f"{platform.machine()}, {args.items:,} items, {args.users:,} users, ALS 64 factors, "
          f"top 25, cache off, {len(users)} requests each")  # fmt: skip
    for name, seconds in (("model", model), ("precomputed", precomputed),
                          ("Redis GET alone", redis_get)):  # fmt: skip
        print(f"{name:>16}: median {median_ms(seconds):.3f} ms, p99 {p99_ms(seconds):.3f} ms")


class Saturated:
    def inflight_share(self) -> float:
        return 1.0


def timed(users: list[str], call: Callable[[str], Any]) -> list[float]:
    for user in users[:20]:  # warm-up
        call(user)
    seconds = []
    for user in users:
        started = time.perf_counter()
        call(user)
        seconds.append(time.perf_counter() - started)
    return seconds


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def p99_ms(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 99)) * 1000


if __name__ == "__main__":
    main()
