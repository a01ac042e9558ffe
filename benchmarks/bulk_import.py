"""Bulk import speed: a 10M-row interactions CSV into SQLite and PostgreSQL.

    ./dev bench bulk_import [--rows 10000000] [--backends sqlite,postgres]

The CSV (MovieLens-like shape: 6 columns, 200k users, 50k items, 3 event types) is generated once
under benchmarks/.data/ and reused. Each run imports it FULL into a fresh store and prints rows/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from tastebud.engine import Engine
from tastebud.settings import Settings

DATA = Path(__file__).parent / ".data"
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def make_csv(rows: int) -> Path:
    path = DATA / f"interactions-{rows}.csv"
    if path.exists():
        return path
    DATA.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    items = np.minimum(rng.zipf(1.3, rows), 50_000)
    frame = pl.DataFrame(
        {
            "USER_ID": pl.Series(rng.integers(1, 200_001, rows)).cast(pl.String),
            "ITEM_ID": pl.Series(items).cast(pl.String),
            "TIMESTAMP": np.sort(rng.integers(1_600_000_000, 1_700_000_000, rows)),
            "EVENT_TYPE": pl.Series(["view", "click", "watch"])[rng.integers(0, 3, rows)],
            "EVENT_VALUE": np.round(rng.random(rows) * 100, 1),
        }
    )
    frame.write_csv(path)
    return path


def run(backend: str, path: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        group = f"bench_{uuid.uuid4().hex[:8]}"
        url = PG_URL if backend == "postgres" else None
        with Engine(Settings(home=Path(home), database_url=url)) as engine:
            engine.create_group(group)
            started = time.perf_counter()
            result = engine.import_file(group, "interactions", path, mode="full")
            seconds = time.perf_counter() - started
            count = engine.counts(group)["interactions"]
            engine.delete_group(group)
    return {
        "backend": backend, "rows": count, "seconds": round(seconds, 1),
        "rows_per_second": round(count / seconds), "rejected": result.rejected,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    path = make_csv(args.rows)
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB), machine: {platform.machine()}, "
          f"{platform.python_version()}")  # fmt: skip
    for backend in args.backends.split(","):
        print(json.dumps(run(backend, path)), flush=True)


if __name__ == "__main__":
    main()
