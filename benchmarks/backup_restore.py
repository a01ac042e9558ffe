"""Backup and restore time of a 1M-interaction store, SQLite and PostgreSQL.

    ./dev bench backup_restore [--backends sqlite,postgres] [--data ../shared/data/ml-1m-seq]
                               [--interactions 1000000]

The store: ml-1m-seq imported (987,531 interactions, 3,416 items; schemas inferred), topped up to
1,000,000 interactions by real-time events with eventIds, and two trained solutions
(popularity-count, similar-items) whose artifacts go into the archive. Then, per backend:
``tastebud backup`` to a ``.tar`` (quiet machine), ``tastebud restore`` into a new, empty
installation (a new home; on PostgreSQL a new database), and a second backup while a thread
keeps ingesting events (how many were acknowledged during it, and the slowest acknowledgement);
last, ``tastebud doctor``'s checks (SQLite's integrity_check and the artifacts' checksums).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.maintenance import backup, diagnose, restore
from tastebud.settings import Settings
from tastebud.store.copies import with_database

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATA = Path(__file__).parents[2] / "shared" / "data" / "ml-1m-seq"
GROUP = "bench"


def _settings(home: Path, backend: str, made: list[str]) -> Settings:
    if backend == "sqlite":
        return Settings(home=home, default_group=GROUP)
    name = f"tb_bench_backup_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    made.append(name)
    return Settings(home=home, default_group=GROUP, database_url=with_database(PG_URL, name))


def _events(engine: Engine, start: int, count: int, prefix: str) -> float:
    """Ingest ``count`` events, 100 per request; returns the slowest acknowledgement (s)."""
    slowest = 0.0
    for first in range(start, start + count, 100):
        batch = [{"eventId": f"{prefix}-{n}", "itemId": str(1 + n % 3000), "eventType": "rating"}
                 for n in range(first, min(first + 100, start + count))]  # fmt: skip
        request = PutEventsRequest.model_validate({"userId": str(1 + first % 6040),
                                                   "eventList": batch})  # fmt: skip
        began = time.perf_counter()
        engine.put_events(GROUP, request)
        slowest = max(slowest, time.perf_counter() - began)
    return slowest


def _populate(settings: Settings, data: Path, target: int) -> dict[str, int]:
    with Engine(settings) as engine:
        engine.init()
        engine.import_file(GROUP, "items", data / "items.csv")
        engine.import_file(GROUP, "interactions", data / "interactions.csv.gz")
        missing = target - engine.counts(GROUP)["interactions"]
        _events(engine, 0, max(missing, 0), "topup")
        engine.create_solution(GROUP, "popular", {"recipe": "popularity-count",
                                                  "evaluate": False})  # fmt: skip
        engine.create_solution(GROUP, "similar", {"recipe": "similar-items", "evaluate": False})
        engine.train(GROUP, "popular")
        engine.train(GROUP, "similar")
        return engine.counts(GROUP)


def run(backend: str, data: Path, folder: Path, target: int) -> dict[str, object]:
    made: list[str] = []
    try:
        source = _settings(folder / backend / "source", backend, made)
        counts = _populate(source, data, target)
        archive = folder / backend / "store.tar"
        quiet = backup(source, archive)
        target = _settings(folder / backend / "target", backend, made)
        restored = restore(target, archive)
        with Engine(target) as engine:
            assert engine.counts(GROUP) == counts, "the restored store differs"
        live = _backup_under_ingestion(source, folder / backend / "live.tar")
        began = time.perf_counter()
        checks = diagnose(lambda: source)
        doctor = {"doctor_seconds": round(time.perf_counter() - began, 2),
                  "doctor_failed": [c.name for c in checks if c.status == "fail"]}  # fmt: skip
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            for name in made:
                for (found,) in conn.execute("SELECT datname FROM pg_database WHERE datname "
                                             "LIKE %s", (f"{name}%",)).fetchall():  # fmt: skip
                    conn.execute(f'DROP DATABASE IF EXISTS "{found}" WITH (FORCE)')
    return {
        "backend": backend, "interactions": counts["interactions"],
        "archive_mb": round(archive.stat().st_size / 2**20, 1),
        "backup_seconds": round(quiet.seconds, 2), "restore_seconds": round(restored.seconds, 2),
        **live, **doctor,
    }  # fmt: skip


def _backup_under_ingestion(settings: Settings, archive: Path) -> dict[str, object]:
    stop = threading.Event()
    acknowledged = [0]
    slowest = [0.0]

    with Engine(settings) as engine:

        def ingest() -> None:
            n = 0
            while not stop.is_set():
                slowest[0] = max(slowest[0], _events(engine, n, 100, "live"))
                acknowledged[0] += 100
                n += 100

        thread = threading.Thread(target=ingest)
        thread.start()
        time.sleep(1.0)
        before = acknowledged[0]
        result = backup(settings, archive)
        during = acknowledged[0] - before
        stop.set()
        thread.join()
    return {
        "backup_under_ingestion_seconds": round(result.seconds, 2),
        "events_acknowledged_during_backup": during,
        "slowest_ack_ms_during_run": round(slowest[0] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--interactions", type=int, default=1_000_000, help="topped up to")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.1f}, python {platform.python_version()}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent / ".data") as folder:
        for backend in args.backends.split(","):
            print(json.dumps(run(backend, args.data, Path(folder), args.interactions)), flush=True)
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
