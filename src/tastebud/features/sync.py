"""Keeping online values current: each group's recent events, tailed from the store.

Stream features derive from the ``interactions`` table, never from the requests that wrote it:
an event stored once (its eventId makes a retry or a NATS redelivery a no-op) is counted once,
whichever process committed it (HTTP, NATS, SDK, an import). A process warms up from the store
(the events inside the longest window), then reads the arrivals after the last one it saw (a
primary-key range, the way the result cache follows new events) and recomputes the snapshots.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tastebud.features import compute
from tastebud.features.online import Table
from tastebud.features.spec import FeatureSet, SessionsSpec, parse
from tastebud.store import Store

_log = logging.getLogger(__name__)
TAIL_BATCH = 100_000
ITEMS_REFRESH_SECONDS = 30.0
COST_RATIO = 20.0
COSTLY_SECONDS = 0.01


@dataclass
class GroupState:
    """One group's declaration, recent events and item metadata, as this process knows them."""

    features: FeatureSet | None = None
    log: pl.DataFrame | None = None
    seq: int = 0
    items: pl.DataFrame = field(default_factory=lambda: compute.item_frame(None, set()))
    item_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    creation: dict[str, int] = field(default_factory=dict)
    items_at: float = -1e18
    computations: dict[str, tuple[float, int]] = field(default_factory=dict)
    frames: dict[str, pl.DataFrame] = field(default_factory=dict)  # each feature's (k, v)
    missing: dict[str, float] = field(default_factory=dict)
    next_at: dict[str, float] = field(default_factory=dict)  # monotonic: recompute from then
    data_at: dict[str, float] = field(default_factory=dict)  # monotonic: the tail it saw
    cost: dict[str, float] = field(default_factory=dict)  # seconds its last computation took
    published: dict[str, Table] = field(default_factory=dict)
    synced_at: float = 0.0
    last_read: float = 0.0


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


def tail(store: Store, group: str, state: GroupState, *, now: float) -> int:
    """Read the events that arrived since the last call (all recent ones the first time)."""
    assert state.features is not None
    keep = retention(state.features)
    since = int(now) - keep
    read = 0
    parts = [] if state.log is None else [state.log]
    while True:
        rows = store.feature_events(group, after_seq=state.seq, since_ts=since, limit=TAIL_BATCH)
        if rows.height:
            state.seq = int(rows["seq"][-1])
            read += rows.height
            parts.append(compute.with_fields(rows.drop("seq", "context"), state.items,
                                             state.features.fields))  # fmt: skip
        if rows.height < TAIL_BATCH:
            break
    if not parts:
        state.log = compute.with_fields(
            pl.DataFrame(schema=compute.EVENT_SCHEMA).drop("context"), state.items,
            state.features.fields,
        )  # fmt: skip
        return read
    log = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    if len(parts) > 1 or state.log is None:
        # Kept sorted by time; events mostly arrive in order, so this is usually a check.
        if not log["ts"].is_sorted():
            log = log.sort("ts", maintain_order=True)
        log = log.slice(log["ts"].search_sorted(since))
    state.log = log
    return read


def stream_snapshots(state: GroupState, *, at: int, clock: float, full: bool) -> set[str]:
    """Recompute the stream features that are due (all when ``full``) into ``state.frames``;
    returns their names. A feature is due again after ``COST_RATIO`` times what it took, and
    a sync computes at most one costly feature (the most overdue): cheap ones (an item's viewers
    over 5 minutes) follow every sync, never waiting behind the costly ones (user x item over 7
    days), which take a bounded share of the process. ``clock``: when the tail was read."""
    assert state.features is not None and state.log is not None
    due = [s for s in state.features.stream if full or clock >= state.next_at.get(s.name, 0.0)]
    costly = sorted((s for s in due if state.cost.get(s.name, 0.0) > COSTLY_SECONDS),
                    key=lambda s: state.next_at.get(s.name, 0.0))  # fmt: skip
    if not full:
        due = [s for s in due if s not in costly] + costly[:1]
    for spec in due:
        started = time.monotonic()
        state.frames[spec.name], state.missing[spec.name] = compute.snapshot(spec, state.log, at)
        state.cost[spec.name] = time.monotonic() - started
        state.next_at[spec.name] = clock + state.cost[spec.name] * COST_RATIO
        state.data_at[spec.name] = clock
    return {spec.name for spec in due}


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


def tables(
    features: FeatureSet, frames: dict[str, pl.DataFrame], changed: set[str], *, with_keys: bool
) -> dict[str, Table]:
    """The table of each kind of entity with a changed feature, from every feature's values."""
    return {kind: Table.build(names, frames, with_keys=with_keys)
            for kind, names in features.layout.items() if changed & set(names)}  # fmt: skip


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
