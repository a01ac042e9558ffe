"""Filter overhead per request on a generated 100k-item catalog: compile once, apply many times.

    .venv/bin/python benchmarks/filters.py [--items 100000] [--requests 2000] [--json PATH]

Each filter is compiled once over the catalog; then every request binds its values and events
(``select``) and takes the top 25 of 100k random scores with the selection applied, as serving
does. The overhead is ``select`` plus the filtered top-k minus the median plain one
(a selection passes its smaller side: the sorted rows it allows, whose scores alone are copied
and ranked, or the rows it does not, set to -inf). Both wall time and this thread's CPU time
are reported: on a shared machine the CPU figure is the one that carries over. Cases:

- static: a filter without parameters (its mask is computed once, then shared);
- params (hot): ``$GENRES``/``$MAX`` values drawn from 20 combinations (cached masks);
- params (cold): a new combination on every request (the masks are computed each time);
- history: an ``Interactions`` exclusion over the user's 200 latest events (whose item indexes
  serving looks up once for the model and hands to the filter, so they are not timed here);
- mixed: parameters + history + an ``IF`` on the current user, as a feed would use.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from tastebud.filters import Catalog, CompiledFilter, FilterRequest, Schemas, StaticSources, parse
from tastebud.ids import Vocabulary
from tastebud.schema import DatasetSchema
from tastebud.serving.recommend import top_k
from tastebud.store import Event

K = 25
CASES = {
    "static": "EXCLUDE ItemID WHERE Items.PRICE > 900",
    "params (hot)": "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | "
    "EXCLUDE ItemID WHERE Items.PRICE > $MAX",
    "params (cold)": "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) | "
    "EXCLUDE ItemID WHERE Items.PRICE > $MAX",
    "history": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch", "purchase")',
    "mixed": "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES) AND Items.PRICE < 500 "
    'IF CurrentUser.TIER IN ("gold") | '
    'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("watch") | '
    "EXCLUDE ItemID WHERE Items.CREATION_TIMESTAMP < $CUTOFF",
}


def catalog(n_items: int, rng: np.random.Generator) -> tuple[Catalog, Schemas]:
    genres = np.array([f"g{i}" for i in range(50)])
    picks = rng.integers(0, 50, size=(n_items, 3))
    counts = rng.integers(1, 4, size=n_items)
    joined = ["|".join(genres[picks[i, : counts[i]]]) for i in range(n_items)]
    ids = [f"i{i}" for i in range(n_items)]
    frame = pl.DataFrame({
        "ITEM_ID": ids, "GENRES": joined,
        "PRICE": rng.uniform(0, 1000, n_items).round(2),
        "BRAND": [f"b{b}" for b in rng.integers(0, 1000, n_items)],
        "CREATION_TIMESTAMP": rng.integers(1_600_000_000, 1_700_000_000, n_items),
    })  # fmt: skip
    schema = DatasetSchema.build(
        "items", {"GENRES": "categorical", "PRICE": "numerical", "BRAND": "string"}
    )
    users = DatasetSchema.build("users", {"TIER": "categorical"})
    return Catalog(frame, Vocabulary(ids), id_column="ITEM_ID"), Schemas(items=schema, users=users)


def requests(
    case: str, count: int, vocabulary: Vocabulary, rng: np.random.Generator
) -> list[FilterRequest]:
    n_items = len(vocabulary)
    combos = [
        {"GENRES": [f"g{g}" for g in rng.choice(50, 3, replace=False)],
         "MAX": [str(int(rng.integers(500, 1000)))]}
        for _ in range(20 if case != "params (cold)" else count)
    ]  # fmt: skip
    made = []
    for i in range(count):
        values: dict[str, Any] = dict(combos[i % len(combos)])
        events: list[Event] = []
        if case in ("history", "mixed"):
            items = rng.integers(0, n_items, 200)
            kinds = rng.choice(["click", "watch", "purchase"], 200)
            events = [Event(item_id=f"i{it}", timestamp=1_700_000_000 + j, event_type=str(kind))
                      for j, (it, kind) in enumerate(zip(items, kinds, strict=True))]  # fmt: skip
        if case == "mixed":
            values = {"GENRES": values["GENRES"], "CUTOFF": ["1650000000"]}
        elif case in ("static", "history"):
            values = {}
        known = vocabulary.indices([e.item_id for e in events])  # serving has these already
        made.append(FilterRequest(values=values, user={"TIER": "gold"}, events=events,
                                  event_items=known))  # fmt: skip
    return made


def timed(run: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def measure(compiled: CompiledFilter, batch: list[FilterRequest], scores: np.ndarray,
            clock: Callable[[], float]) -> dict[str, float]:  # fmt: skip
    """Per-request medians in µs on ``clock`` (wall, or this thread's CPU time)."""
    n = len(scores)
    compiled.select(batch[0])  # warm the catalog's columns (built once per version)
    plain_us = []
    for _ in batch:  # the unfiltered top-k, timed in a loop of its own
        start = clock()
        top_k(scores, K)
        plain_us.append((clock() - start) * 1e6)
    plain = statistics.median(plain_us)
    select_us, filtered_us = [], []
    for request in batch:
        start = clock()
        selection = compiled.select(request)
        middle = clock()
        candidates, excluded = selection.first(n)
        top_k(scores, K, exclude=excluded, candidates=candidates)
        select_us.append((middle - start) * 1e6)
        filtered_us.append((clock() - middle) * 1e6)
    overhead = [s + f - plain for s, f in zip(select_us, filtered_us, strict=True)]
    return {
        "select_median_us": statistics.median(select_us),
        "topk_plain_median_us": plain,
        "topk_filtered_median_us": statistics.median(filtered_us),
        "overhead_median_us": statistics.median(overhead),
        "overhead_p90_us": float(np.percentile(overhead, 90)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    items, schemas = catalog(args.items, rng)
    vocabulary = Vocabulary([f"i{i}" for i in range(args.items)])
    built = time.perf_counter() - start
    scores = rng.random(args.items, dtype=np.float32)
    results: dict[str, Any] = {"items": args.items, "requests": args.requests, "k": K,
                               "catalog_seconds": round(built, 3),
                               "load_average": os.getloadavg()[0], "cases": {}}  # fmt: skip
    print(f"catalog of {args.items:,} items built in {built:.2f} s; top-{K}; "
          f"{args.requests} requests per case; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'case':<15}{'clock':>7}{'select µs':>11}{'top-k µs':>10}{'filtered µs':>13}"
          f"{'overhead µs':>13}{'p90 µs':>9}")  # fmt: skip
    for case, text in CASES.items():
        started = time.perf_counter()
        compiled = CompiledFilter(parse(text), schemas, StaticSources(items), name=case)
        results["cases"][case] = {"compile_ms": round((time.perf_counter() - started) * 1e3, 2)}
        batch = requests(case, args.requests, vocabulary, rng)
        for clock_name, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
            row = measure(compiled, batch, scores, clock)
            results["cases"][case][clock_name] = {k: round(v, 1) for k, v in row.items()}
            print(f"{case:<15}{clock_name:>7}{row['select_median_us']:>11.1f}"
                  f"{row['topk_plain_median_us']:>10.1f}{row['topk_filtered_median_us']:>13.1f}"
                  f"{row['overhead_median_us']:>13.1f}{row['overhead_p90_us']:>9.1f}")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
