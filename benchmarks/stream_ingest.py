"""Stream ingestion: PutEvents messages from NATS JetStream into the store, committed and acked.

    ./dev bench stream_ingest [--events 200000] [--per-message 10] [--batch 256] \
        [--backend sqlite] [--no-event-ids] [--url nats://127.0.0.1:4222]

Publishes ``--events`` events as PutEvents messages of ``--per-message`` events each (unique event
ids unless ``--no-event-ids``, 20,000 users, 5,000 items) into a stream of its own, then times
``NatsEventConsumer`` draining it into a fresh store: fetch, validate (as the HTTP API), group
commit through the event tracker, ack. Publishing is timed apart and not part of the figure.
PostgreSQL runs get a database of their own (``ingest_http.postgres_database``). It checks that
the store holds exactly the published events, then deletes the stream. Reports events/s, the
consumer process's CPU seconds and the load average (2 shared cores: CPU per event is the
figure that carries over).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats

from ingest_http import postgres_database
from tastebud.engine import Engine
from tastebud.settings import Settings, StreamSettings
from tastebud.streams import NatsEventConsumer, publish_events

USERS, ITEMS = 20_000, 5_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-message", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256, help="messages per fetch")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-event-ids", action="store_true", help="ids derived by the consumer")
    parser.add_argument("--url", default="nats://127.0.0.1:4222")
    return parser.parse_args()


def documents(args: argparse.Namespace, run: str) -> list[bytes]:
    """The PutEvents bodies, serialized once (publishing is not what is measured)."""
    docs = []
    for m in range(args.events // args.per_message):
        user = m % USERS
        events: list[dict[str, Any]] = [
            {"itemId": f"i{(m * 7 + k * 13) % ITEMS}", "eventType": "click",
             "sentAt": 1_700_000_000 + m}
            for k in range(args.per_message)
        ]  # fmt: skip
        if not args.no_event_ids:
            for k, event in enumerate(events):
                event["eventId"] = f"{run}-{m}-{k}"
        body = {"userId": f"u{user}", "sessionId": f"s{user}", "eventList": events}
        docs.append(json.dumps(body, separators=(",", ":")).encode())
    return docs


async def delete_stream(url: str, name: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


async def bench(args: argparse.Namespace, engine: Engine, group: str) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    settings = StreamSettings(
        nats_url=args.url, stream=f"TB_BENCH_{run}", subject=f"tbbench.{run}.events.>",
        durable="bench", batch=args.batch, dead_letter_prefix=None,
    )  # fmt: skip
    docs = documents(args, run)
    await NatsEventConsumer(engine, settings).run(max_messages=0)  # creates stream and durable
    try:
        started = time.perf_counter()
        await publish_events(args.url, group, *docs, subject_prefix=f"tbbench.{run}.events")
        publish_seconds = time.perf_counter() - started
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        stats = await NatsEventConsumer(engine, settings).run(max_messages=len(docs))
        seconds = time.perf_counter() - started
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        await delete_stream(args.url, settings.stream)
    events = len(docs) * args.per_message
    stored = engine.counts(group)["interactions"]
    if (stats.stored, stats.rejected, stored) != (events, 0, events):
        raise SystemExit(f"expected {events} events stored, got {stats} and {stored} in store")
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return {
        "backend": args.backend, "events": events, "messages": len(docs),
        "per_message": args.per_message, "batch": args.batch,
        "event_ids": "derived" if args.no_event_ids else "given",
        "publish_seconds": round(publish_seconds, 2), "consume_seconds": round(seconds, 2),
        "events_per_second": round(events / seconds), "cpu_seconds": round(cpu, 2),
        "cpu_us_per_event": round(cpu / events * 1e6, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip


def main() -> None:
    args = parse_args()
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tastebud-stream-")))
        # PostgreSQL: a database of its own, as the HTTP benchmark does (the shared test
        # database carries other runs' rows and stale statistics).
        database_url = (
            stack.enter_context(postgres_database(None)) if args.backend == "postgres" else None
        )
        engine = stack.enter_context(Engine(Settings(home=home, database_url=database_url)))
        engine.ensure_group("bench")
        result = asyncio.run(bench(args, engine, "bench"))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
