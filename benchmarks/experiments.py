"""Experiments (issue 15): exposure logging throughput and overhead, report time at scale.

    ./dev bench experiments [--requests 20000] [--exposures 1000000] [--pg-url postgresql://…]

1. Logging: appends/s into the buffered log (one thread), then exposures/s written by the
   store in the log's batches (2,000 rows a transaction), against one synchronous
   transaction per exposure (what buffering avoids).
2. Request overhead: the same requests (rule-engine campaign, answers cached, as on a warm
   server) through ``CampaignServer.recommend`` and through ``ExperimentService.recommend``
   (assignment hash + record look-up + exposure append); the difference is the added latency.
   The same for a campaign's computed answers with and without a metric attribution (the
   answer logged for it).
3. Report: ``--exposures`` exposures (two per user) and as many events (half carrying a
   recommendation id, half left to the window, a tenth before the start for CUPED) bulk
   loaded, then the report timed (read, attribution, statistics) and its peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tastebud.engine import Engine
from tastebud.experiments.log import BufferedLog
from tastebud.serving.campaigns import CampaignRequest
from tastebud.settings import Settings
from tastebud.store import ExposureRecord, Store

ARMS = {"control": ("rules-a", 50.0), "treatment": ("rules-b", 50.0)}


def exposure(index: int) -> ExposureRecord:
    return ExposureRecord(
        experiment="ab", arm="control", user_id=f"u{index}",
        recommendation_id=f"rec-{index:012d}", campaign="rules-a", source="rules",
        timestamp=time.time(), items="i1|i2|i3|i4|i5",
    )  # fmt: skip


def logging_throughput(store: Store, group: str, n: int) -> dict[str, float]:
    log: BufferedLog[ExposureRecord] = BufferedLog(store.put_exposures, name="bench",
                                                   capacity=n + 1)  # fmt: skip
    records = [exposure(i) for i in range(n)]
    started = time.perf_counter()
    for record in records:
        log.add(group, record)
    appended = time.perf_counter() - started
    log.close()
    total = time.perf_counter() - started
    single = [exposure(n + i) for i in range(200)]
    started = time.perf_counter()
    for record in single:
        store.put_exposures(group, [record])
    one_by_one = (time.perf_counter() - started) / len(single)
    return {"exposures": n, "appends_per_s": n / appended, "written_per_s": n / total,
            "synchronous_ms_per_exposure": one_by_one * 1e3}  # fmt: skip


def timed(call: Callable[[int], Any], n: int) -> list[float]:
    times = []
    for index in range(n):
        started = time.perf_counter()
        call(index)
        times.append(time.perf_counter() - started)
    return times


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"p50_us": ordered[len(ordered) // 2] * 1e6,
            "p99_us": ordered[int(len(ordered) * 0.99)] * 1e6,
            "mean_us": statistics.fmean(times) * 1e6}  # fmt: skip


def request_overhead(engine: Engine, group: str, n: int) -> dict[str, Any]:
    users = [f"u{i % 500}" for i in range(n)]  # 500 users: answers cached after the first
    service = engine.experiments
    for user in users[:500]:  # warm every answer and record cache
        service.recommend(group, "ab", CampaignRequest(user_id=user, k=10))
        engine.campaigns.recommend(group, "rules-a", CampaignRequest(user_id=user, k=10))
    campaign = timed(lambda i: engine.campaigns.recommend(
        group, "rules-a", CampaignRequest(user_id=users[i], k=10)), n)  # fmt: skip
    experiment = timed(lambda i: service.recommend(
        group, "ab", CampaignRequest(user_id=users[i], k=10)), n)  # fmt: skip
    computed = n // 4
    listener = engine.campaigns.on_answer
    engine.campaigns.on_answer = None
    plain = timed(lambda i: engine.campaigns.recommend(
        group, "uncached", CampaignRequest(user_id=f"x{i}", k=10)), computed)  # fmt: skip
    engine.campaigns.on_answer = listener
    service.metrics.create(group, "buys", event_type="buy", expression="SAMPLECOUNT()")
    logged = timed(lambda i: engine.campaigns.recommend(
        group, "uncached", CampaignRequest(user_id=f"y{i}", k=10)), computed)  # fmt: skip
    service.metrics.answers.flush()
    found: dict[str, Any] = {
        "cached_campaign": summary(campaign), "cached_experiment": summary(experiment),
        "computed_campaign": summary(plain), "computed_campaign_logged": summary(logged),
    }  # fmt: skip
    found["added_p50_us"] = (
        found["cached_experiment"]["p50_us"] - found["cached_campaign"]["p50_us"]
    )
    found["logging_added_p50_us"] = (
        found["computed_campaign_logged"]["p50_us"] - found["computed_campaign"]["p50_us"]
    )
    return found


def report_at_scale(engine: Engine, group: str, n: int, folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    users = n // 2
    service = engine.experiments
    service.create(group, "big", ARMS, metric="buy", attribution_window="1h")
    start = service.start(group, "big").started_at or time.time()
    user_of = rng.integers(0, users, n)
    exposed_at = start + rng.random(n) * 86_400
    arms = np.where(user_of % 2 == 0, "control", "treatment")
    loaded = time.perf_counter()
    for first in range(0, n, 100_000):
        part = range(first, min(first + 100_000, n))
        engine.store.put_exposures(group, [ExposureRecord(
            experiment="big", arm=str(arms[i]), user_id=f"w{user_of[i]}",
            recommendation_id=f"rec-{i}", campaign="c", source="rules",
            timestamp=float(exposed_at[i]), items="i1|i2") for i in part])  # fmt: skip
    by_id = rng.random(n) < 0.5
    before = rng.random(n) < 0.1
    events = pl.DataFrame({
        "USER_ID": [f"w{u}" for u in user_of], "ITEM_ID": [f"i{i % 1000}" for i in range(n)],
        "TIMESTAMP": np.where(before, int(start) - 3_000, exposed_at.astype(np.int64) + 60),
        "EVENT_TYPE": "buy",
        "RECOMMENDATION_ID": [f"rec-{i}" if b else None for i, b in enumerate(by_id)],
    })  # fmt: skip
    path = folder / "events.parquet"
    events.write_parquet(path)
    engine.import_file(group, "interactions", path)
    load_seconds = time.perf_counter() - loaded
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = service.report(group, "big")
    seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"exposures": n, "events": n, "users": users, "load_seconds": load_seconds,
            "report_seconds": seconds, "peak_rss_mib": rss_after / 1024,
            "peak_rss_growth_mib": (rss_after - rss_before) / 1024,
            "attributed": report["attributed_events"]}  # fmt: skip


def run(settings: Settings, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    with Engine(settings) as engine:
        group = f"bench-{int(time.time())}"
        engine.create_group(group)
        try:
            return _phases(engine, group, args, folder)
        finally:
            engine.delete_group(group)


def _phases(engine: Engine, group: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    rows = pl.DataFrame({"USER_ID": [f"u{i % 500}" for i in range(5_000)],
                         "ITEM_ID": [f"i{i % 1000}" for i in range(5_000)],
                         "TIMESTAMP": 1_700_000_000 + np.arange(5_000)})  # fmt: skip
    rows.write_csv(folder / "seed.csv")
    engine.import_file(group, "interactions", folder / "seed.csv")
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    for name, ttl in (("rules-a", 600.0), ("rules-b", 600.0), ("uncached", 0.0)):
        config = {"cache_ttl_seconds": ttl, "min_interactions": 10**9}
        engine.create_campaign(group, name, "popular", config=config)
    engine.experiments.create(group, "ab", ARMS)
    engine.experiments.start(group, "ab")
    results: dict[str, Any] = {"store": engine.store.url.split(":")[0]}
    results["logging"] = logging_throughput(engine.store, group, args.requests * 5)
    results["requests"] = request_overhead(engine, group, args.requests)
    results["report"] = report_at_scale(engine, group, args.exposures, folder)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--exposures", type=int, default=1_000_000)
    parser.add_argument("--pg-url", default=None, help="Also run on this PostgreSQL database.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        print(json.dumps(run(settings, args, Path(home)), indent=2))
        if args.pg_url:
            pg = Settings(home=Path(home), database_url=args.pg_url)
            print(json.dumps(run(pg, args, Path(home)), indent=2))


if __name__ == "__main__":
    main()
