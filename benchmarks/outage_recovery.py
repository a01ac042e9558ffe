"""Outages: how fast requests are answered while PostgreSQL or Redis is down, and how soon the
server serves normally again once it is back; how soon the NATS consumer stores again.

Every service here is private (the tests' helpers: a throwaway PostgreSQL cluster, a
`redis-server` and a `nats-server -js` on free ports); the machine's shared ones are untouched.

- store: one `tastebud serve` on the throwaway cluster; the cluster is stopped (`pg_ctl -m fast`)
  for `--outage` seconds: latency of event writes (503) and campaign answers (200) meanwhile;
  then the time from `pg_ctl start` returning to the first event accepted.
- redis: the same server with a private Redis, killed for `--outage` seconds: campaign latency
  meanwhile; then the time from Redis accepting connections to the first answer stored in it.
- nats: the consumer (in this process, SQLite) while a producer publishes every 10 ms; the
  time from nats-server accepting connections to the first event stored after the outage.

    flock /tmp/tastebud-bench.lock flock -s /tmp/tastebud-quiet.lock \\
        .venv/bin/python benchmarks/outage_recovery.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis as redis_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' server helpers

from tests.api.outages import USERS, trained_group
from tests.api.servers import (
    NatsProcess,
    PostgresCluster,
    RedisProcess,
    ServeProcess,
)

from tastebud.engine import Engine
from tastebud.settings import Settings, StreamSettings
from tastebud.streams import NatsEventConsumer, publish_events


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"count": len(seconds), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2)}  # fmt: skip


def during(seconds: float, call: Any) -> tuple[list[float], set[int]]:
    """Latencies and statuses of ``call()`` repeated for ``seconds``."""
    latencies, statuses = [], set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.perf_counter()
        statuses.add(call())
        latencies.append(time.perf_counter() - start)
        time.sleep(0.01)
    return latencies, statuses


def until(condition: Any, timeout: float = 120.0) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise SystemExit("no recovery within the timeout")
        time.sleep(0.005)
    return time.perf_counter() - start


def store_and_redis(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    cluster, redis = PostgresCluster(), RedisProcess(folder / "redis")
    cluster.start()
    redis.start()
    home = folder / "home"
    settings = Settings(home=home, database_url=cluster.url, redis_url=redis.url)
    group, token = trained_group(settings, folder)
    headers = {"Authorization": f"Bearer {token}"}
    env = {"TASTEBUD_DATABASE_URL": cluster.url, "TASTEBUD_REDIS_URL": redis.url,
           "TASTEBUD_API__ACCESS_LOG": "false"}  # fmt: skip
    server = ServeProcess(home, env=env)
    path = f"{server.url}/v1/dataset-groups/{group}/campaigns/home/recommendations"
    events = f"{server.url}/v1/dataset-groups/{group}/events"
    out: dict[str, Any] = {"store": [], "redis": []}
    try:
        server.wait_ready()
        with httpx.Client(headers=headers, timeout=30) as http:
            users = iter(f"visitor{n}" for n in range(10**9))

            def recommend() -> int:
                return http.post(path, json={"userId": next(users), "numResults": 5}).status_code

            def write() -> int:
                event = {"userId": USERS[0], "eventList": [
                    {"itemId": "i1", "eventType": "click", "sentAt": 4_000_000}]}  # fmt: skip
                return http.post(events, json=event).status_code

            recommend()  # the token is verified once before the outage (as in steady traffic)

            for _ in range(args.rounds):
                cluster.stop()
                writes, write_statuses = during(args.outage / 2, write)
                answers, answer_statuses = during(args.outage / 2, recommend)
                cluster.start()
                recovery = until(lambda: write() == 200)
                out["store"].append({
                    "writes_during": percentiles(writes) | {"statuses": sorted(write_statuses)},
                    "answers_during": percentiles(answers) | {"statuses": sorted(answer_statuses)},
                    "recovery_s": round(recovery, 3)})  # fmt: skip
                print("store:", json.dumps(out["store"][-1]), flush=True)

            keys = redis_client.Redis.from_url(redis.url)

            def cached_again() -> bool:
                recommend()
                return bool(keys.keys("tb:a:*"))

            for _ in range(args.rounds):
                redis.stop()
                answers, statuses = during(args.outage, recommend)
                redis.start()  # on the same port, empty: the client reconnects

                recovery = until(cached_again)
                out["redis"].append({"answers_during": percentiles(answers) | {
                    "statuses": sorted(statuses)}, "recovery_s": round(recovery, 3)})  # fmt: skip
                print("redis:", json.dumps(out["redis"][-1]), flush=True)
    finally:
        server.stop()
        redis.stop()
        cluster.remove()
    return out


def nats(args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    server = NatsProcess(folder / "nats")
    server.start()
    settings = StreamSettings(nats_url=server.url, stream="TB_BENCH", subject="tbbench.events.>",
                              durable="bench", batch=64, dead_letter_prefix=None)  # fmt: skip
    results = []
    with Engine(Settings(home=folder / "nats-home")) as engine:
        engine.create_group("bench")
        stop = threading.Event()
        loop = asyncio.new_event_loop()
        consumer_stop = asyncio.Event()
        consumer = threading.Thread(target=loop.run_until_complete, daemon=True,
                                    args=(NatsEventConsumer(engine, settings).run(
                                        stop=consumer_stop),))  # fmt: skip
        consumer.start()

        def produce() -> None:
            n = 0
            while not stop.is_set():
                document = {"userId": f"u{n % 50}", "eventList": [{
                    "itemId": f"i{n % 30}", "eventType": "click", "eventId": f"e{n}",
                    "sentAt": 1_700_000_000 + n}]}  # fmt: skip
                try:
                    asyncio.run(publish_events(server.url, "bench", document,
                                               subject_prefix="tbbench.events"))  # fmt: skip
                    n += 1
                except Exception:
                    time.sleep(0.05)
                time.sleep(0.01)

        def stored() -> int:
            return engine.counts("bench")["interactions"]

        time.sleep(2.0)
        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        try:
            for _ in range(args.rounds):
                time.sleep(2.0)
                server.stop()
                time.sleep(args.outage)
                before = stored()
                server.start()
                recovery = until(lambda: stored() > before)  # noqa: B023
                results.append({"recovery_s": round(recovery, 3)})
                print("nats:", json.dumps(results[-1]), flush=True)
        finally:
            stop.set()
            producer.join(30)
            loop.call_soon_threadsafe(consumer_stop.set)
            consumer.join(30)
            server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=5.0, help="seconds each outage lasts")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tastebud-outage-") as folder:
        figures = store_and_redis(args, Path(folder)) | {"nats": nats(args, Path(folder))}
    summary = {name: {"recovery_s": [r["recovery_s"] for r in rounds]}
               for name, rounds in figures.items()}  # fmt: skip
    print(json.dumps({"summary": summary, "cpus": os.cpu_count(), "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
