"""The feature store (issue 15): online reads, freshness, ingest cost and point-in-time frames.

    PYTHONPATH=src python benchmarks/features.py --phase read [--redis redis://127.0.0.1:6379/3]
    PYTHONPATH=src python benchmarks/features.py --phase freshness [--redis URL]
    PYTHONPATH=src python benchmarks/features.py --phase ingest
    PYTHONPATH=src python benchmarks/features.py --phase frame [--labels 1000000]

A generated live-show group (SQLite under a temporary home): 1,000 shows of 50 hosts in 10
categories, 20,000 viewers, ``--events`` events (default 300,000) over the last 7 days with
sessions, starts and completions. 20 stream features are declared (the read and ingest phases),
30 columns with batch and request-time ones (the frame phase). Each phase prints one JSON line;
run each in its own process so that peak RSS is the phase's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import redis

from tastebud import observability
from tastebud.engine import Engine
from tastebud.settings import Settings
from tastebud.store import Event

STREAM = """
features:
  - {name: views_5m, kind: counter, aggregation: count, window: 5m}
  - {name: views_1h, kind: counter, aggregation: count, window: 1h}
  - {name: views_24h, kind: counter, aggregation: count, window: 24h}
  - {name: views_7d, kind: counter, aggregation: count, window: 7d}
  - {name: viewers_5m, kind: counter, aggregation: distinct_users, window: 5m}
  - {name: viewers_1h, kind: counter, aggregation: distinct_users, window: 1h}
  - {name: viewers_24h, kind: counter, aggregation: distinct_users, window: 24h}
  - {name: minutes_1h, kind: counter, aggregation: sum, window: 1h}
  - {name: long_sessions_1h, kind: sessions, min_minutes: 10, window: 1h}
  - {name: long_sessions_24h, kind: sessions, min_minutes: 10, window: 24h}
  - {name: completion_24h, kind: rate, numerator: [complete], denominator: [start],
     prior_strength: 20, window: 24h}
  - {name: item_last_seen, kind: counter, aggregation: last_seen, window: 1d}
  - {name: user_views_24h, kind: counter, entity: user, aggregation: count, window: 24h}
  - {name: user_views_7d, kind: counter, entity: user, aggregation: count, window: 7d}
  - {name: pair_views_7d, kind: counter, entity: user_item, aggregation: count, window: 7d}
  - {name: pair_last_seen, kind: counter, entity: user_item, aggregation: last_seen}
  - {name: host_last_seen, kind: counter, entity: user_item_field, field: HOST,
     aggregation: last_seen}
  - {name: host_views_7d, kind: counter, entity: user_item_field, field: HOST,
     aggregation: count, window: 7d}
  - {name: category_views_7d, kind: counter, entity: user_item_field, field: CATEGORY,
     aggregation: count, window: 7d}
  - {name: host_minutes_7d, kind: counter, entity: user_item_field, field: HOST,
     aggregation: sum, window: 7d}
"""
EXTRA = """
  - {name: host_affinity_60d, kind: batch, entity: user_item_field, field: HOST,
     aggregation: share, days: 60}
  - {name: category_affinity_60d, kind: batch, entity: user_item_field, field: CATEGORY,
     aggregation: share, days: 60}
  - {name: show_completion_60d, kind: batch, entity: item, aggregation: rate,
     numerator: [complete], denominator: [start], prior_strength: 20, days: 60}
  - {name: user_views_60d, kind: batch, entity: user, aggregation: count, days: 60}
  - {name: show_viewers_60d, kind: batch, entity: item, aggregation: distinct_users, days: 60}
  - {name: hour, kind: request, source: hour_of_day}
  - {name: weekday, kind: request, source: day_of_week}
  - {name: age, kind: request, source: item_age}
  - {name: device, kind: request, source: context, field: DEVICE, values: [ios, android, web]}
  - {name: views_30m, kind: counter, aggregation: count, window: 30m}
"""
GROUP = "bench"


def build(home: Path, events: int, *, redis_url: str | None, declaration: str) -> Engine:
    settings = Settings(home=home, default_group=GROUP, redis_url=redis_url)
    engine = Engine(settings)
    engine.ensure_group(GROUP)
    rng = np.random.default_rng(0)
    now = int(time.time())
    engine.put_schema(GROUP, "items", {"HOST": "categorical", "CATEGORY": "categorical"})
    engine.put_schema(GROUP, "interactions", {"DEVICE": "categorical"})
    items = pl.DataFrame({
        "ITEM_ID": [f"show{i}" for i in range(1000)],
        "HOST": [f"host{i % 50}" for i in range(1000)],
        "CATEGORY": [f"cat{i % 10}" for i in range(1000)],
        "CREATION_TIMESTAMP": now - rng.integers(0, 30 * 86_400, 1000),
    })  # fmt: skip
    items.write_csv(home / "items.csv")
    engine.import_file(GROUP, "items", home / "items.csv")
    popularity = rng.zipf(1.3, events) % 1000
    frame = pl.DataFrame({
        "USER_ID": [f"u{u}" for u in rng.integers(0, 20_000, events)],
        "ITEM_ID": [f"show{i}" for i in popularity],
        "TIMESTAMP": np.sort(now - rng.integers(1, 7 * 86_400, events)),
        "EVENT_TYPE": rng.choice(["watch", "watch", "start", "complete"], events),
        "EVENT_VALUE": rng.exponential(5.0, events).round(1),
        "SESSION_ID": [f"s{s}" for s in rng.integers(0, events // 8, events)],
        "DEVICE": rng.choice(["ios", "android", "web"], events),
    })  # fmt: skip
    frame.write_parquet(home / "events.parquet")
    engine.import_file(GROUP, "interactions", home / "events.parquet")
    engine.features.apply(GROUP, declaration)
    return engine


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.array(samples) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 90, 99)}


def phase_read(engine: Engine, rounds: int) -> dict[str, Any]:
    names = engine.features.names(GROUP)
    candidates = [f"show{i}" for i in range(1000)]
    started = time.monotonic()
    engine.features.online(GROUP, names, user_id="u1", item_ids=candidates)
    warm_up = time.monotonic() - started
    samples = []
    for k in range(rounds):
        started = time.monotonic()
        values = engine.features.online(GROUP, names, user_id=f"u{k}", item_ids=candidates,
                                        context={"DEVICE": "ios"})  # fmt: skip
        samples.append(time.monotonic() - started)
    assert values.shape == (1000, 20)
    sync_started = time.monotonic()
    engine.features.sync(GROUP)  # moving forward by what arrived since the last one
    one_sync = time.monotonic() - sync_started
    sync_started = time.monotonic()
    engine.features.sync(GROUP, full=True)  # every stream feature rebuilt from the log
    return {"features": len(names), "candidates": 1000, "rounds": rounds,
            "first_read_s": round(warm_up, 2), **percentiles(samples),
            "one_sync_s": round(one_sync, 3),
            "rebuild_s": round(time.monotonic() - sync_started, 3)}  # fmt: skip


def phase_freshness(engine: Engine, probes: int) -> dict[str, Any]:
    exported: list[float] = []  # what /metrics gets: every stream feature recomputed since
    observability.feature_freshness = exported.append  # type: ignore[assignment]
    engine.features.online(GROUP, ["views_5m"], user_id=None, item_ids=["show0"])  # follow it
    samples = []
    for k in range(probes):
        item = f"probe{k}"
        engine.tracker.put(GROUP, [Event(item_id=item, user_id="u1", timestamp=int(time.time()),
                                         event_type="watch")])  # fmt: skip
        committed = time.monotonic()
        while engine.features.online(GROUP, ["views_5m"], user_id=None, item_ids=[item])[0, 0] < 1:
            time.sleep(0.01)  # a read every 10 ms
        samples.append(time.monotonic() - committed)
        time.sleep(0.05)
    time.sleep(1)  # the last probe's sync
    metric = {f"all_features_{k}": v for k, v in percentiles(exported).items()}
    return {"probes": probes, "views_5m": percentiles(samples), **metric}


def phase_ingest(home: Path, events: int, seconds: float) -> dict[str, Any]:
    results = {}
    for label, declared in (("without_features", False), ("with_20_stream_features", True)):
        engine = build(home / label, events, redis_url=None,
                       declaration=STREAM)  # fmt: skip
        if not declared:  # the same group without features: nothing follows it
            engine.store.delete_group(GROUP)
            engine.ensure_group(GROUP)
        else:
            engine.features.online(GROUP, ["views_5m"], user_id=None, item_ids=["show0"])
        stop, counts = threading.Event(), [0] * 8

        def writer(
            slot: int, engine: Engine = engine, stop: threading.Event = stop,
            counts: list[int] = counts,
        ) -> None:  # fmt: skip
            k = 0
            while not stop.is_set():
                batch = [Event(item_id=f"show{(k + j) % 1000}", user_id=f"w{slot}-{k % 500}",
                               timestamp=int(time.time()), event_type="watch",
                               event_id=f"{slot}-{k}-{j}") for j in range(10)]  # fmt: skip
                counts[slot] += engine.tracker.put(GROUP, batch).accepted
                k += 1

        threads = [threading.Thread(target=writer, args=(s,)) for s in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        results[label] = round(sum(counts) / seconds)
        engine.close()
    return {"seconds": seconds, "events_per_s": results}


def phase_frame(engine: Engine, rows: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    events = engine.features.labels(GROUP)
    picks = rng.integers(0, events.height, rows)
    labels = events[picks].with_columns(
        (pl.col("TIMESTAMP") + pl.Series(rng.integers(0, 3600, rows))).alias("TIMESTAMP")
    )
    names = engine.features.names(GROUP)
    started = time.monotonic()
    frame = engine.features.frame(GROUP, labels, names)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB
    return {"rows": frame.height, "features": len(names), "seconds": round(seconds, 1),
            "peak_rss_gib": round(peak, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=["read", "freshness", "ingest", "frame"],
                        required=True)  # fmt: skip
    parser.add_argument("--redis", default=None)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        result: dict[str, Any] = {"phase": args.phase, "store": "sqlite",
                                  "online": "redis" if args.redis else "memory",
                                  "events": args.events}  # fmt: skip
        if args.phase == "ingest":
            result |= phase_ingest(home, args.events, args.seconds)
        else:
            declaration = STREAM + EXTRA if args.phase == "frame" else STREAM
            with build(home, args.events, redis_url=args.redis, declaration=declaration) as eng:
                if args.phase == "read":
                    result |= phase_read(eng, args.rounds)
                elif args.phase == "freshness":
                    result |= phase_freshness(eng, 50)
                else:
                    result |= phase_frame(eng, args.labels)
        if args.redis:  # the benchmark's keys, from DB of the URL given
            client = redis.Redis.from_url(args.redis)
            keys = list(client.scan_iter(f"tb:feat:{GROUP}:*"))
            if keys:
                client.delete(*keys)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
