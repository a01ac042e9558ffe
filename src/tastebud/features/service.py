"""The feature service: declarations, online reads, batch runs and point-in-time frames.

Built once by the engine (``FeatureService(store, settings)``). Online values come from a
background thread that follows each active group's new interactions (:mod:`.sync`) and publishes
snapshots to this process (embedded) or to Redis (``settings.redis_url``; one process per group
publishes, holding a lease in Redis). Frames never read the online store: they are computed from
the interactions table, as of each row's time (:mod:`.compute`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from tastebud import observability
from tastebud.errors import NotFound, NotReady, TastebudError
from tastebud.features import frames, sync
from tastebud.features.compute import SEP
from tastebud.features.online import LocalValues, OnlineValues, RedisValues
from tastebud.features.spec import (
    BatchSpec,
    CounterSpec,
    FeatureSet,
    RequestSpec,
    kind_of,
    parse_text,
)
from tastebud.features.sync import GroupState
from tastebud.settings import Settings
from tastebud.store import Store

_log = logging.getLogger(__name__)
_MAX_PENDING = 1000  # commits waiting for their freshness to be measured, per group


class FeatureService:
    """Features of every group of one store. Thread-safe."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings.features
        self.values: OnlineValues = (
            RedisValues(settings.redis_url, timeout_seconds=self.settings.redis_timeout_seconds)
            if settings.redis_url else LocalValues()
        )  # fmt: skip
        self._owner = uuid.uuid4().hex
        self._groups: dict[str, GroupState] = {}
        self._pending: dict[str, list[float]] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # declarations -----------------------------------------------------------------------------
    def apply(self, group: str, text: str) -> FeatureSet:
        """Validate a YAML/JSON declaration and store it as the group's next version."""
        features = parse_text(text)
        version = self.store.put_feature_set(group, features.to_json())
        with self._lock:
            self._groups.pop(group, None)  # the next read warms up on the new declaration
        return self.current(group) if version else features

    def current(self, group: str) -> FeatureSet:
        """The latest declaration; NotFound when the group has none."""
        features = sync.load_features(self.store, group)
        if features is None:
            raise NotFound(f"group {group!r} declares no features; `tastebud features apply`")
        return features

    def names(self, group: str) -> list[str]:
        """Declared feature columns, current version (one-hot request features expanded)."""
        return list(self.current(group).columns)

    # online reads -----------------------------------------------------------------------------
    def online(
        self, group: str, names: Sequence[str], *, user_id: str | None,
        item_ids: Sequence[str], now: float | None = None,
        context: Mapping[str, str] | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Feature values now: float32 ``(len(item_ids), len(names))``, NaN where none.

        Raises:
            NotReady: the online store (Redis) is unreachable; within its socket timeout.
            InvalidInput: an undeclared feature name. NotFound: no declaration.
        """
        state = self._state(group)
        assert state.features is not None
        features = state.features
        columns = features.select(names)
        now = time.time() if now is None else now
        items = list(item_ids)
        out = np.full((len(items), len(columns)), np.nan, dtype=np.float32)
        layout = features.layout
        wanted = self._lookups(state, features, columns, user_id, items)
        rows, missing = (self.values.read(group, features.version, wanted) if wanted
                         else ({}, {}))  # fmt: skip
        for j, column in enumerate(columns):
            spec, position = features.column_of[column]
            if isinstance(spec, RequestSpec):
                out[:, j] = _request_now(spec, position, state, items, now, context or {})
                continue
            kind = kind_of(spec)
            if kind not in rows:
                continue  # a user feature without a user: NaN
            values = rows[kind][:, layout[kind].index(spec.name)]
            values = np.where(np.isnan(values), missing.get(spec.name, _default(spec)), values)
            if getattr(spec, "aggregation", "") == "last_seen":
                values = now - values
                values[values > spec.window] = np.nan
            if kind.startswith("field:"):  # items without the field have no such entity
                values = np.where(state_field_known(state, kind, items), values, np.nan)
            out[:, j] = values if len(values) == len(items) else values[0]
        return out

    def _lookups(
        self, state: GroupState, features: FeatureSet, columns: Sequence[str],
        user_id: str | None, items: list[str],
    ) -> dict[str, tuple[list[str], int]]:  # fmt: skip
        """The entity keys to read per kind, with the kind's number of features."""
        wanted: dict[str, tuple[list[str], int]] = {}
        layout = features.layout
        for spec in {features.column_of[c][0] for c in columns}:
            if isinstance(spec, RequestSpec):
                continue
            kind = kind_of(spec)
            if kind in wanted or (kind != "item" and user_id is None):
                continue
            if kind == "item":
                keys = items
            elif kind == "user":
                keys = [user_id or ""]
            elif kind == "user_item":
                keys = [f"{user_id}{SEP}{item}" for item in items]
            else:
                values = state.item_fields.get(kind.removeprefix("field:"), {})
                keys = [f"{user_id}{SEP}{values.get(item) or ''}" for item in items]
            wanted[kind] = (keys, len(layout[kind]))
        return wanted

    # the background sync ----------------------------------------------------------------------
    def start(self) -> None:
        """Follow every group that declares features (``tastebud serve`` calls this): their
        online values stay current and their batch features are recomputed when due."""
        for group in self.store.list_groups():
            if self.store.feature_set_version(group.name):
                with self._lock:
                    self._groups.setdefault(group.name, GroupState())
        self._ensure_thread()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.values.close()

    def committed(self, group: str, accepted: int) -> None:
        """The event tracker committed events of ``group``: wake the sync, time freshness."""
        if accepted and group in self._groups:
            pending = self._pending.setdefault(group, [])
            if len(pending) < _MAX_PENDING:
                pending.append(time.monotonic())
            self._wake.set()

    def sync(self, group: str, *, now: float | None = None, full: bool = False) -> GroupState:
        """Bring ``group``'s online values up to date now (the thread does this continually);
        ``full`` rebuilds every stream feature from the log rather than moving it forward."""
        with self._lock:
            state = self._groups.setdefault(group, GroupState())
            pending, self._pending[group] = self._pending.get(group, []), []
            self._sync(group, state, time.time() if now is None else now, full=full)
            done = time.monotonic()
            features = state.features.stream if state.features is not None else []
            # A commit is fresh once every stream feature was moved by a later tail.
            seen = state.data_at if features else done
            for committed_at in pending:
                if committed_at <= seen:
                    observability.feature_freshness(done - committed_at)
                else:
                    self._pending.setdefault(group, []).append(committed_at)
            return state

    def _sync(self, group: str, state: GroupState, now: float, *, full: bool) -> None:
        version = self.store.feature_set_version(group)
        if state.features is None or state.features.version != version:
            state.restart(sync.load_features(self.store, group))
        if state.features is None:
            return
        sync.refresh_items(self.store, group, state, now=now)
        if not self.values.lead(group, self._owner, self.settings.lease_seconds):
            state.led = False  # another process publishes; a later lead starts afresh
            return
        clock = time.monotonic()
        first = not state.led
        state.led = False  # until this sync is done: one failing midway rebuilds the next
        before, new = sync.tail(self.store, group, state, now=now)
        # Events of the current second are before `now`: they count at once.
        changes = sync.advance(state, before, new, at=math.ceil(now), clock=clock,
                               rebuild=full or first)  # fmt: skip
        computations = self.store.feature_computations(group)
        if (computations != state.computations or first) and state.features.batch:
            batch, batch_missing = sync.batch_values(self.store, group, state.features)
            for name, frame in batch.items():
                changes[name] = (frame["k"], frame["v"].cast(pl.Float64)
                                 .fill_null(math.nan).to_numpy(), True)  # fmt: skip
            state.missing.update(batch_missing)
        changed = sync.update_tables(state, changes)
        if state.checked and changed.get(state.checked):
            _log.info("feature rebuilt: the running values differed group=%s feature=%s "
                      "values=%d", group, state.checked, changed[state.checked])  # fmt: skip
        self.values.publish(group, state.features.version, state.tables, state.missing,
                            everything=first)  # fmt: skip
        state.led = True
        state.computations = computations
        state.synced_at = now

    def _state(self, group: str) -> GroupState:
        state = self._groups.get(group)
        if state is None or state.features is None:
            try:
                state = self.sync(group)
            except TastebudError:
                raise
            except Exception as exc:  # Redis or the store failing on the first read
                raise NotReady(f"features of group {group!r}: online store unavailable "
                               f"({exc})") from exc  # fmt: skip
            if state.features is None:
                raise NotFound(f"group {group!r} declares no features; `tastebud features apply`")
            self._ensure_thread()
        state.last_read = time.monotonic()
        return state

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="tastebud-features",
                                                daemon=True)  # fmt: skip
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.sync_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            started = time.monotonic()
            for group in list(self._groups):
                try:
                    self.sync(group)
                    self._run_batch_if_due(group)
                except Exception as exc:  # a store or Redis outage: try again next round
                    _log.warning("feature sync failed group=%s error=%s", group, exc)
            # However fast commits wake it: at most every min_sync_gap_seconds, and resting as
            # long as the round took, so that syncing takes at most half of one core away from
            # the event tracker when events pour in (a round then covers more of them).
            took = time.monotonic() - started
            self._stop.wait(max(self.settings.min_sync_gap_seconds, took))

    # batch features ---------------------------------------------------------------------------
    def compute(self, group: str, *, now: float | None = None) -> dict[str, Any]:
        """Recompute the group's batch features now (``tastebud features compute``)."""
        features = self.current(group)
        summary = sync.compute_batch(self.store, group, features,
                                     now=time.time() if now is None else now)  # fmt: skip
        if group in self._groups:
            self.sync(group)
        return summary

    def _run_batch_if_due(self, group: str) -> None:
        state = self._groups.get(group)
        if not self.settings.run_batch or state is None or state.features is None:
            return
        specs = state.features.batch
        if not specs:
            return
        every = min(spec.every for spec in specs)
        now = time.time()
        latest = min((state.computations.get(s.name, (0.0, 0))[0] for s in specs), default=0.0)
        if now - latest < every:
            return
        if self.store.claim_feature_run(group, due_before=now - every, now=now):
            sync.compute_batch(self.store, group, state.features, now=now)

    # point in time ----------------------------------------------------------------------------
    def point_in_time(
        self, group: str, names: Sequence[str], *, user_ids: Sequence[str | None],
        item_ids: Sequence[str], times: Sequence[int],
    ) -> np.ndarray:  # fmt: skip
        """Values as of each row's time (events strictly before it): float32 ``(n, names)``."""
        labels = pl.DataFrame(
            {"USER_ID": list(user_ids), "ITEM_ID": list(item_ids), "TIMESTAMP": list(times)},
            schema={"USER_ID": pl.String, "ITEM_ID": pl.String, "TIMESTAMP": pl.Int64},
        )
        features = self.current(group)
        return frames.values(self.store, group, features, labels, features.select(names))

    def frame(
        self, group: str, labels: pl.DataFrame, names: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """``labels`` (USER_ID, ITEM_ID, TIMESTAMP, …) plus one column per feature."""
        features = self.current(group)
        return frames.frame(self.store, group, features, labels, features.select(names))

    def labels(self, group: str) -> pl.DataFrame:
        """Label rows from the store: interactions (LABEL 1) and impressions not chosen (0)."""
        return frames.labels_from_store(self.store, group)

    def describe(self, group: str) -> dict[str, Any]:
        """The declaration, its version and each batch feature's latest computation."""
        features = self.current(group)
        computations = self.store.feature_computations(group)
        return {
            "version": features.version, "created_at": features.created_at,
            "columns": features.columns, **features.to_json(),
            "computations": {name: {"computed_at": at, "entities": n}
                             for name, (at, n) in computations.items()},
        }  # fmt: skip


def state_field_known(state: GroupState, kind: str, items: list[str]) -> np.ndarray:
    values = state.item_fields.get(kind.removeprefix("field:"), {})
    return np.array([values.get(item) is not None for item in items], dtype=bool)


def _default(spec: Any) -> float:
    if isinstance(spec, CounterSpec) and spec.aggregation == "last_seen":
        return math.nan
    if isinstance(spec, BatchSpec) and spec.aggregation == "rate":
        return math.nan
    return math.nan if getattr(spec, "numerator", None) else 0.0


def _request_now(
    spec: RequestSpec, position: int, state: GroupState, items: list[str], now: float,
    context: Mapping[str, str],
) -> np.ndarray:  # fmt: skip
    if spec.source == "hour_of_day":
        return np.full(len(items), (int(now) % 86_400) // 3600, np.float32)
    if spec.source == "day_of_week":
        return np.full(len(items), ((int(now) // 86_400) + 3) % 7, np.float32)
    if spec.source == "item_age":
        created = state.creation
        return np.array([now - created[i] if i in created else np.nan for i in items], np.float32)
    value = context.get(spec.field or "")
    values = list(spec.values or ())
    if spec.encoding == "onehot":
        return np.full(len(items), float(value == values[position]), np.float32)
    return np.full(len(items), values.index(value) if value in values else np.nan, np.float32)
