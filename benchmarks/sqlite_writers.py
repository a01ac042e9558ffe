"""Concurrent writers from several processes on one SQLite database (``serve --workers N``).

    ./dev bench sqlite_writers [--processes 2] [--commits 400] [--events 10] [--busy-handler]

Each process opens its own store on one fresh database and commits ``--commits`` transactions of
``--events`` events (as the event tracker's group commits do), timing each commit. The default
queues writers on the store's OS file lock; ``--busy-handler`` turns that lock into a no-op, so
writers wait in SQLite's busy handler instead (what tastebud did before): its sleeps grow to
100 ms, the p99 cliff issue 14 names.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from tastebud.store import Event
from tastebud.store.sqlite import SqliteStore


def writer(path: str, process: int, commits: int, events: int, busy_handler: bool) -> list[float]:
    if busy_handler:
        import fcntl

        fcntl.flock = lambda *args: None  # type: ignore[assignment]
    store = SqliteStore(Path(path))
    latencies = []
    for commit in range(commits):
        batch = [Event(item_id=f"i{n}", timestamp=commit, user_id=f"p{process}",
                       event_id=f"p{process}-{commit}-{n}") for n in range(events)]  # fmt: skip
        started = time.perf_counter()
        store.put_events("bench", batch)
        latencies.append(1e3 * (time.perf_counter() - started))
    store.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--commits", type=int, default=400)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--busy-handler", action="store_true")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="tastebud-writers-")) / "tastebud.db"
    store = SqliteStore(path)
    store.migrate()
    store.create_group("bench")
    store.close()
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        runs = pool.starmap(writer, [(str(path), p, args.commits, args.events, args.busy_handler)
                                     for p in range(args.processes)])  # fmt: skip
    seconds = time.perf_counter() - started
    latencies = sorted(ms for run in runs for ms in run)
    cuts = statistics.quantiles(latencies, n=100)
    mode = "busy handler" if args.busy_handler else "file lock"
    print(f"{mode}: {args.processes} processes x {args.commits} commits of {args.events} events: "
          f"commit p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {latencies[-1]:.1f} ms; "
          f"{len(latencies) * args.events / seconds:,.0f} events/s")  # fmt: skip


if __name__ == "__main__":
    main()
