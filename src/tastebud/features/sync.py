"""Keeping online values current: each group's recent events, tailed from the store.

Stream features derive from the ``interactions`` table, never from the requests that wrote it:
an event stored once (its eventId makes a retry or a NATS redelivery a no-op) is counted once,
whichever process committed it (HTTP, NATS, SDK, an import). A process warms up from the store
(the events inside the longest window), then reads the arrivals after the last one it saw (a
primary-key range, the way the result cache follows new events) and moves every stream feature
forward by the events that entered or left its window (:mod:`.incremental`), changing only the
entities they name. One feature at a time is rebuilt from the whole log now and then, a check
that the running values agree with a computation from scratch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tastebud.features import compute, incremental
from tastebud.features.online import Change, Table
from tastebud.features.spec import FeatureSet, SessionsSpec, parse
from tastebud.store import Store

_log = logging.getLogger(__name__)
TAIL_BATCH = 100_000
ITEMS_REFRESH_SECONDS = 30.0
REBUILD_SECONDS = 3600.0  # each feature checked hourly: one check every 3 min for 20


@dataclass
class GroupState:
    """One group's declaration, recent events and item metadata, as this process knows them,
    and the stream features' running values as of ``at``."""

    features: FeatureSet | None = None
    log: pl.DataFrame | None = None
    seq: int = 0
    items: pl.DataFrame = field(default_factory=lambda: compute.item_frame(None, set()))
    item_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    creation: dict[str, int] = field(default_factory=dict)
    items_at: float = -1e18
    computations: dict[str, tuple[float, int]] = field(default_factory=dict)
    aggregates: dict[str, incremental.Aggregate] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)  # by kind of entity
    missing: dict[str, float] = field(default_factory=dict)
    at: int | None = None  # the time the running values are as of
    data_at: float = 0.0  # monotonic: when the tail they include was read
    rebuilt_at: dict[str, float] = field(default_factory=dict)  # monotonic
    checked: str | None = None  # the feature the last sync rebuilt as a check
    checked_at: float = 0.0  # monotonic: when a feature was last rebuilt
    led: bool = False  # whether this process has published everything since it leads
    synced_at: float = 0.0
    last_read: float = 0.0

    def restart(self, features: FeatureSet | None) -> None:
        """Forget everything an earlier declaration computed."""
        self.__dict__.update(GroupState(features=features).__dict__)
        if features is not None:
            self.tables = {kind: Table(names) for kind, names in features.layout.items()}


def load_features(store: Store, group: str) -> FeatureSet | None:
    found = store.get_feature_set(group)
    if found is None:
        return None
    version, body, created_at = found
    features = parse(body)
    features.version, features.created_at = version, created_at
    return features


def retention(features: FeatureSet) -> int:
    """How far back the stream features look (their longest window)."""
    longest = 0
    for spec in features.stream:
        extra = compute.SESSION_LOOKBACK if isinstance(spec, SessionsSpec) else 0
        longest = max(longest, int(spec.window) + extra)
    return longest


def refresh_items(store: Store, group: str, state: GroupState, *, now: float) -> None:
    """Item fields and creation times, for entity keys and item age (every 30 s)."""
    if state.features is None or now - state.items_at < ITEMS_REFRESH_SECONDS:
        return
    chunks = list(store.export(group, "items"))
    records = pl.concat(chunks, how="diagonal_relaxed") if chunks else None
    fields = state.features.fields
    items = compute.item_frame(records, fields)
    state.items = items
    state.item_fields = {
        f: dict(zip(items["item"].to_list(), items[f"field:{f}"].to_list(), strict=True))
        for f in fields
    }
    created = items.filter(pl.col("creation_ts").is_not_null())
    state.creation = dict(zip(created["item"].to_list(), created["creation_ts"].to_list(),
                              strict=True))  # fmt: skip
    state.items_at = now


def tail(
    store: Store, group: str, state: GroupState, *, now: float
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read the events that arrived since the last call (all recent ones the first time):
    returns the log before them and them; ``state.log`` becomes both, sorted by time."""
    assert state.features is not None
    keep = retention(state.features)
    since = int(now) - keep
    before = state.log if state.log is not None else _empty_log(state)
    parts = []
    seq = state.seq  # kept until the whole tail is read: a failing read loses nothing
    while True:
        rows = store.feature_events(group, after_seq=seq, since_ts=since, limit=TAIL_BATCH)
        if rows.height:
            seq = int(rows["seq"][-1])
            parts.append(compute.with_fields(rows.drop("seq", "context"), state.items,
                                             state.features.fields))  # fmt: skip
        if rows.height < TAIL_BATCH:
            break
    if not parts:
        state.log = before
        return before, before.clear()
    new = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    log = pl.concat([before, new], how="vertical_relaxed")
    # Kept sorted by time; events mostly arrive in order, so this is usually a check.
    if not log["ts"].is_sorted():
        log = log.sort("ts", maintain_order=True)
    state.log, state.seq = log.slice(log["ts"].search_sorted(since)), seq
    return before, new


def _empty_log(state: GroupState) -> pl.DataFrame:
    assert state.features is not None
    empty = pl.DataFrame(schema=compute.EVENT_SCHEMA).drop("context")
    return compute.with_fields(empty, state.items, state.features.fields)


def advance(
    state: GroupState, before: pl.DataFrame, new: pl.DataFrame, *, at: int, clock: float,
    rebuild: bool,
) -> dict[str, Change]:  # fmt: skip
    """Move every stream feature to ``at`` by the events that entered or left its window
    since the last call, or rebuild them all from the log (``rebuild``, the first call, or a
    clock that went back); now and then (each feature every ``REBUILD_SECONDS``) one feature,
    the one rebuilt longest ago, is rebuilt anyway. Returns each feature's changed values.
    ``clock``: when the tail was read."""
    assert state.features is not None and state.log is not None
    specs = state.features.stream
    rebuild = rebuild or state.at is None or at < state.at
    due = {s.name for s in specs} if rebuild else set()
    oldest = min(specs, key=lambda s: state.rebuilt_at.get(s.name, 0.0), default=None)
    state.checked = None
    if rebuild:
        state.checked_at = clock
    elif oldest is not None and clock - state.checked_at >= REBUILD_SECONDS / len(specs):
        # Spread out: one feature at a time, each one every REBUILD_SECONDS.
        due.add(oldest.name)
        state.checked, state.checked_at = oldest.name, clock
    since = at if state.at is None else state.at
    step = incremental.Step(before, new, state.log, since=since, at=at)
    changes: dict[str, Change] = {}
    for spec in specs:
        if spec.name in due:
            state.aggregates[spec.name] = incremental.aggregate(spec)
            state.rebuilt_at[spec.name] = clock
        current = state.aggregates[spec.name]
        keys, values = current.advance(incremental.Step.whole(state.log, at)
                                       if spec.name in due else step)  # fmt: skip
        changes[spec.name] = (keys, values, spec.name in due)
        state.missing[spec.name] = current.missing
    state.at, state.data_at = at, clock
    return changes


def update_tables(state: GroupState, changes: dict[str, Change]) -> dict[str, int]:
    """Apply the features' changes to their tables; returns how many values of each feature
    changed."""
    assert state.features is not None
    changed: dict[str, int] = {}
    for kind, names in state.features.layout.items():
        columns = {j: changes[name] for j, name in enumerate(names) if name in changes}
        if columns:
            counts = state.tables[kind].update(columns)
            changed |= {names[j]: n for j, n in counts.items()}
    return changed


def batch_values(
    store: Store, group: str, features: FeatureSet
) -> tuple[dict[str, pl.DataFrame], dict[str, float]]:
    """The batch features' latest stored values (entity ``""`` holds the missing value)."""
    names = [spec.name for spec in features.batch]
    frame = store.feature_values(group, names)
    values: dict[str, pl.DataFrame] = {}
    missing: dict[str, float] = {}
    for name in names:
        part = frame.filter(pl.col("feature") == name)
        empty = part.filter(pl.col("entity") == "")["value"]
        missing[name] = float(empty[0]) if len(empty) and empty[0] is not None else float("nan")
        values[name] = part.filter(pl.col("entity") != "").select(
            pl.col("entity").alias("k"), pl.col("value").alias("v")
        )
    return values, missing


def compute_batch(store: Store, group: str, features: FeatureSet, *, now: float) -> dict[str, Any]:
    """Recompute every batch feature over its last ``days`` and store it; returns a summary."""
    if not features.batch:
        return {"features": {}, "computed_at": now}
    longest = max(spec.window for spec in features.batch)
    events = store.feature_events(group, since_ts=int(now) - longest).drop("seq")
    state = GroupState(features=features)
    refresh_items(store, group, state, now=now)
    events = compute.with_fields(events.drop("context"), state.items, features.fields)
    summary = {}
    for spec in features.batch:
        table, missing = compute.snapshot(spec, events, int(now))
        frame = pl.concat([
            table.select(pl.col("k").alias("entity"), pl.col("v").alias("value")),
            pl.DataFrame({"entity": [""], "value": [missing]}),
        ])  # fmt: skip
        store.put_feature_values(group, spec.name, frame, computed_at=now)
        summary[spec.name] = table.height
    _log.info("features computed group=%s features=%d events=%d seconds=%.2f", group,
              len(summary), events.height, time.time() - now)  # fmt: skip
    return {"features": summary, "computed_at": now}
