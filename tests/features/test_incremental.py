"""Stream features moved forward event by event equal their computation from scratch: random
event streams (late, out-of-order and future events, windows emptying, clocks jumping), every
aggregation and entity kind, through the online table; and the same through the store (SQLite
and PostgreSQL) against point-in-time values."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from tastebud.engine import Engine
from tastebud.features import compute, incremental, sync
from tastebud.features.online import Table
from tastebud.features.spec import parse_text
from tests.features.conftest import T, event, put, shows

DECLARATION = """
features:
  - {name: watches_5m, kind: counter, aggregation: count, window: 5m, event_types: [watch]}
  - {name: pair_1h, kind: counter, entity: user_item, aggregation: count, window: 1h}
  - {name: user_sum_10m, kind: counter, entity: user, aggregation: sum, window: 10m}
  - {name: viewers_5m, kind: counter, aggregation: distinct_users, window: 5m}
  - {name: host_viewers_30m, kind: counter, entity: user_item_field, field: HOST,
     aggregation: distinct_users, window: 30m}
  - {name: host_seen_10m, kind: counter, entity: user_item_field, field: HOST,
     aggregation: last_seen, window: 10m}
  - {name: item_seen, kind: counter, aggregation: last_seen}
  - {name: completion_20m, kind: rate, numerator: [complete], denominator: [start],
     prior_strength: 3, window: 20m}
  - {name: user_rate_1h, kind: rate, entity: user, numerator: [complete], denominator: [start],
     prior: 0.3, window: 1h}
  - {name: long_15m, kind: sessions, min_minutes: 3, window: 15m, gap_minutes: 4}
  - {name: long_watch_5m, kind: sessions, min_minutes: 1, window: 5m, gap_minutes: 2,
     event_types: [watch]}
"""
FEATURES = parse_text(DECLARATION)
HOSTS = {"i0": "h0", "i1": "h0", "i2": "h1", "i3": "h2"}  # i4: no host


def _items() -> pl.DataFrame:
    return pl.DataFrame(
        {"item": list(HOSTS), "creation_ts": [0] * len(HOSTS), "field:HOST": list(HOSTS.values())}
    )


def _events(rng: np.random.Generator, n: int, low: int, high: int) -> pl.DataFrame:
    """Few users, items and sessions, so that entities fill, empty and fill again."""
    users = rng.integers(0, 6, n)
    sessions = rng.integers(0, 4, n)
    frame = pl.DataFrame(
        {
            "user": [None if u == 5 else f"u{u}" for u in users],
            "item": [f"i{i}" for i in rng.integers(0, 5, n)],
            "ts": rng.integers(low, high, n).astype(np.int64),
            "event_type": rng.choice(["watch", "watch", "start", "complete"], n).tolist(),
            "event_value": [None if v < 0.5 else float(v) for v in rng.exponential(3.0, n)],
            "session": [None if s >= 2 else f"x{s}" for s in sessions],
        },
        schema={k: v for k, v in compute.EVENT_SCHEMA.items() if k != "context"},
    )
    return compute.with_fields(frame, _items(), {"HOST"})


def _visible(values: dict[str, float], missing: float) -> dict[str, float]:
    """Values as a read sees them: an entity without one reads the feature's missing value."""
    return {k: missing if math.isnan(v) else v for k, v in values.items()}


def _assert_same(spec: object, table: Table, missing: float, log: pl.DataFrame, at: int) -> None:
    frame, full_missing = compute.snapshot(spec, log, at)
    assert missing == pytest.approx(full_missing, nan_ok=True), spec
    full = dict(zip(frame["k"].to_list(), frame["v"].fill_null(math.nan).to_list(), strict=True))
    keys = sorted(set(full) | set(table.drain(everything=True)))
    ours = dict(zip(keys, table.rows(keys)[:, 0].tolist(), strict=True))
    want = _visible({k: full.get(k, math.nan) for k in keys}, full_missing)
    got = _visible(ours, missing)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-9, nan_ok=True), (spec, at)


@pytest.mark.parametrize("seed", range(6))
def test_moving_forward_equals_computing_from_scratch(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    if seed % 2:  # a session's start leaves the lookback within the stream
        monkeypatch.setattr(compute, "SESSION_LOOKBACK", 600)
    rng = np.random.default_rng(seed)
    keep = sync.retention(FEATURES)
    at = 1_000_000
    log = _events(rng, 0, 0, 1)
    states = {s.name: incremental.aggregate(s) for s in FEATURES.stream}
    tables = {s.name: Table([s.name]) for s in FEATURES.stream}
    since = at
    checked = 0
    held: set[str] = set()  # features that had values while moving forward
    for _ in range(40):
        jump = int(rng.choice([0, 1, 30, 120, 400, 2000, 4000]))
        at += jump
        # Arrivals: mostly recent, some late (older than short windows), some in the future
        # (counted once the clock passes them), some too old to be read at all.
        new = _events(rng, int(rng.integers(0, 25)), at - 2400, at + 90)
        new = new.filter(pl.col("ts") >= at - keep)
        before = log
        log = pl.concat([before, new]).sort("ts", maintain_order=True)
        log = log.slice(log["ts"].search_sorted(at - keep))
        step = incremental.Step(before, new, log, since=since, at=at)
        rebuild = rng.random() < 0.1  # now and then, a rebuild replaces a table's column
        for spec in FEATURES.stream:
            if rebuild:
                states[spec.name] = incremental.aggregate(spec)
            state = states[spec.name]
            keys, values = state.advance(incremental.Step.whole(log, at) if rebuild else step)
            tables[spec.name].update({0: (keys, values, rebuild)})
            _assert_same(spec, tables[spec.name], state.missing, log, at)
            checked += 1
            if len(tables[spec.name]) and not rebuild:
                held.add(spec.name)
        since = at
    assert checked == 40 * len(FEATURES.stream)
    # The streams were not trivial: (nearly) every feature held values at some point.
    assert len(held) >= len(FEATURES.stream) - 1


def test_a_table_keeps_only_entities_with_values_and_remembers_changes() -> None:
    table = Table(["a", "b"])
    first = {0: (["x", "y"], np.array([1.0, 2.0]), False), 1: (["x"], np.array([5.0]), False)}
    assert table.update(first) == {0: 2, 1: 1}
    assert sorted(table.drain()) == ["x", "y"]
    # x unchanged, y gone
    assert table.update({0: (["x", "y"], np.array([1.0, np.nan]), False)}) == {0: 1}
    assert table.drain() == ["y"] and len(table) == 1
    assert table.rows(["x", "y"]).tolist()[0] == [1.0, 5.0]
    assert np.isnan(table.rows(["y"])).all()
    assert table.update({1: (["z"], np.array([7.0]), True)}) == {1: 2}  # x loses b
    assert sorted(table.drain()) == ["x", "z"]
    np.testing.assert_array_equal(table.rows(["x", "z"]), [[1.0, np.nan], [np.nan, 7.0]])
    table.update({0: (["x"], np.array([np.nan]), False)})
    assert len(table) == 1 and table.drain(everything=True) == ["z"]


LIVE_SMALL = """
features:
  - {name: views_5m, kind: counter, aggregation: count, window: 5m}
  - {name: viewers_10m, kind: counter, aggregation: distinct_users, window: 10m}
  - {name: pair_sum_1h, kind: counter, entity: user_item, aggregation: sum, window: 1h}
  - {name: host_seen, kind: counter, entity: user_item_field, field: HOST, aggregation: last_seen}
  - {name: long_sessions, kind: sessions, min_minutes: 2, window: 20m, gap_minutes: 3}
  - {name: completion, kind: rate, numerator: [complete], denominator: [start],
     prior_strength: 2, window: 30m}
"""


@pytest.mark.parametrize("check", [False, True], ids=["moving", "rebuilding"])
def test_through_the_store_values_equal_point_in_time_values(
    engine: Engine, group: str, check: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if check:  # every sync also rebuilds one feature from scratch
        monkeypatch.setattr(sync, "REBUILD_SECONDS", 0.0)
    shows(engine, group, {"s1": "h1", "s2": "h2", "s3": "h1"})
    engine.features.apply(group, LIVE_SMALL)
    names = engine.features.names(group)
    rng = np.random.default_rng(7)
    now = T - 3600
    users = ["u1", "u2", "u3"]
    items = ["s1", "s2", "s3", "s4"]
    nonzero = 0
    for k in range(12):
        batch = [
            event(str(rng.choice(users)), str(rng.choice(items)),
                  int(now - rng.integers(0, 900)), str(rng.choice(["watch", "start", "complete"])),
                  event_value=float(rng.integers(0, 5)),
                  session_id=None if rng.random() < 0.5 else f"x{rng.integers(0, 3)}",
                  event_id=f"e{k}-{j}")
            for j in range(int(rng.integers(1, 15)))
        ]  # fmt: skip
        put(engine, group, *batch)
        put(engine, group, *batch[:2])  # a redelivery: counted once
        now += int(rng.choice([5, 60, 300, 700]))
        engine.features.sync(group, now=now)
        for user in users:
            got = engine.features.online(group, names, user_id=user, item_ids=items, now=now)
            want = engine.features.point_in_time(
                group, names, user_ids=[user] * len(items), item_ids=items, times=[now] * 4
            )
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3, equal_nan=True)
            nonzero += int(np.count_nonzero(np.nan_to_num(want)))
    assert nonzero > 100


def test_a_rebuild_repairs_running_values_that_drifted(
    engine: Engine, group: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    shows(engine, group, {"s1": "h1"})
    engine.features.apply(group, LIVE_SMALL)
    put(engine, group, event("u1", "s1", T - 100), event("u2", "s1", T - 50))
    state = engine.features.sync(group, now=T)
    counts = state.aggregates["views_5m"]
    assert isinstance(counts, incremental._Sums)
    counts.index.values[counts.index.find(["s1"]), 0] = 40.0  # a planted error
    put(engine, group, event("u3", "s1", T - 20))
    assert engine.features.online(group, ["views_5m"], user_id=None, item_ids=["s1"],
                                  now=T).tolist() == [[2.0]]  # fmt: skip
    engine.features.sync(group, now=T)
    assert engine.features.online(group, ["views_5m"], user_id=None, item_ids=["s1"],
                                  now=T).tolist() == [[41.0]]  # fmt: skip
    monkeypatch.setattr(sync, "REBUILD_SECONDS", 0.0)
    with caplog.at_level("INFO", logger="tastebud.features.service"):
        for _ in LIVE_SMALL.splitlines():  # one feature per sync: views_5m within these
            engine.features.sync(group, now=T)
    assert engine.features.online(group, ["views_5m"], user_id=None, item_ids=["s1"],
                                  now=T).tolist() == [[3.0]]  # fmt: skip
    assert "feature=views_5m values=1" in caplog.text


def test_a_sync_failing_midway_counts_nothing_twice(
    engine: Engine, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shows(engine, group, {"s1": "h1"})
    engine.features.apply(group, LIVE_SMALL)
    put(engine, group, event("u1", "s1", T - 100))
    rate = type(engine.features.sync(group, now=T).aggregates["completion"])
    put(engine, group, event("u2", "s1", T - 50))

    def fail(self: object, step: incremental.Step) -> incremental.Change:
        raise RuntimeError("planted")

    with monkeypatch.context() as patch:  # the rate comes last: the counts moved already
        patch.setattr(rate, "advance", fail)
        with pytest.raises(RuntimeError, match="planted"):
            engine.features.sync(group, now=T + 1)
    engine.features.sync(group, now=T + 1)
    names = ["views_5m", "viewers_10m"]
    assert engine.features.online(group, names, user_id="u1", item_ids=["s1"],
                                  now=T + 1).tolist() == [[2.0, 2.0]]  # fmt: skip
