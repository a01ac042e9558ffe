"""Stream features kept per entity and moved forward by the events that enter or leave windows.

A feature's value at ``at`` covers the events with ``TIMESTAMP`` in ``[at - W, at)`` (see
:mod:`tastebud.features.compute`, whose ``snapshot`` computes the same values from scratch).
Between two syncs at ``since`` and ``at`` the covered set changes by two slices of the log,
which is sorted by time: events that *enter* (``[max(since, at - W), at)`` of the old log, plus
the new rows inside the window) and events that *leave* (``[since - W, min(since, at - W))`` of
the old log). Each aggregate keeps per-entity state and applies only those, touching only the
entities they name:

- ``count`` and ``sum``: a running count and sum per entity; the entity goes at count 0;
- ``distinct_users``: a count per (entity, user); the entity's value is how many are positive;
- ``last_seen``: the latest time entered; an entity goes once that time has left the window;
- ``rate``: numerator, denominator and event counts per entity and in total (the prior);
- ``sessions``: a session's start and length depend on all its events, so the sessions that
  the entering and leaving events belong to are recomputed from the log and their counts
  replace what they counted before.

Each ``advance`` returns the keys it touched and their values (NaN: the entity has none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from tastebud.features import compute
from tastebud.features.compute import SEP
from tastebud.features.index import Index
from tastebud.features.spec import CounterSpec, RateSpec, SessionsSpec

Values = npt.NDArray[np.float64]
Change = tuple[pl.Series, Values]  # keys, their values now (NaN: none)
_NO_CHANGE: Change = (pl.Series("k", [], pl.String), np.zeros(0))


def _between(log: pl.DataFrame, low: int, high: int) -> pl.DataFrame:
    """Rows with ``low <= ts < high`` of a log sorted by time."""
    if low >= high or log.is_empty():
        return log.clear()
    ts = log["ts"]
    start = ts.search_sorted(low, side="left")
    return log.slice(start, ts.search_sorted(high, side="left") - start)


@dataclass(frozen=True)
class Step:
    """From the values at ``since`` to those at ``at``: ``before`` the log the values were
    computed from (sorted by time), ``new`` the rows read since, ``log`` both (sorted)."""

    before: pl.DataFrame
    new: pl.DataFrame
    log: pl.DataFrame
    since: int
    at: int

    @classmethod
    def whole(cls, log: pl.DataFrame, at: int) -> Step:
        """From nothing to ``at``: every row of the log is new."""
        return cls(before=log.clear(), new=log, log=log, since=at, at=at)

    _slices: dict[tuple[str, int], pl.DataFrame] = field(default_factory=dict, compare=False)

    def entering(self, window: int) -> pl.DataFrame:
        """The rows that entered a window (features of one window share them)."""
        if ("in", window) not in self._slices:
            low = self.at - window
            old = _between(self.before, max(self.since, low), self.at)
            new = self.new.filter((pl.col("ts") >= low) & (pl.col("ts") < self.at))
            self._slices["in", window] = pl.concat([old, new]) if old.height else new
        return self._slices["in", window]

    def leaving(self, window: int) -> pl.DataFrame:
        """The rows that left a window."""
        return _between(self.before, self.since - window, min(self.since, self.at - window))


class Aggregate(Protocol):
    """One stream feature's per-entity state."""

    missing: float  # the value of an entity with none

    def advance(self, step: Step) -> Change: ...


def aggregate(spec: Any) -> Aggregate:
    """The running state of a stream feature (counter, sessions or rate), empty."""
    if isinstance(spec, SessionsSpec):
        return _Sessions(spec)
    if isinstance(spec, RateSpec):
        return _Rate(spec)
    assert isinstance(spec, CounterSpec)
    if spec.aggregation == "distinct_users":
        return _Distinct(spec)
    if spec.aggregation == "last_seen":
        return _LastSeen(spec)
    return _Sums(spec)


def _keyed(rows: pl.LazyFrame, spec: Any, *, typed: bool = True) -> pl.LazyFrame:
    """Rows with a whole key (``k``), of the feature's event types (lazy: a feature's step is
    one Polars query, not a dozen small ones)."""
    keys = list(spec.key_columns)
    if typed and spec.event_types is not None:
        rows = rows.filter(pl.col("event_type").is_in(list(spec.event_types)))
    rows = rows.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
    key = pl.col(keys[0]) if len(keys) == 1 else pl.concat_str(keys, separator=SEP)
    return rows.with_columns(key.alias("k"))


def _signed(step: Step, spec: Any, *, typed: bool = True) -> pl.LazyFrame:
    """The entering (``sign`` +1) and leaving (-1) rows, keyed."""
    entering = step.entering(spec.window).lazy().with_columns(pl.lit(1.0).alias("sign"))
    leaving = step.leaving(spec.window).lazy().with_columns(pl.lit(-1.0).alias("sign"))
    return _keyed(pl.concat([entering, leaving]), spec, typed=typed)


def _accumulate(index: Index, keys: pl.Series, delta: np.ndarray) -> tuple[np.ndarray, Values]:
    """Add ``delta`` (a row per key) to the keys' rows, dropping those whose first column
    (a count) reaches 0; returns the rows and their sums."""
    rows = index.add(keys)
    total = np.nan_to_num(index.values[rows]) + delta
    index.values[rows] = total
    index.drop(rows[total[:, 0] <= 0])
    return rows, total


class _Sums:
    """``count`` and ``sum``: events and the sum of their ``EVENT_VALUE`` per entity."""

    missing = 0.0

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        self.index = Index(2)

    def advance(self, step: Step) -> Change:
        sign, value = pl.col("sign"), pl.col("event_value").fill_null(0.0)
        sums = _signed(step, self.spec).group_by("k").agg(
            sign.sum(), (sign * value).sum().alias("sum")
        ).collect()  # fmt: skip
        if sums.is_empty():
            return _NO_CHANGE
        keys = sums["k"]
        _, total = _accumulate(self.index, keys, sums.select("sign", "sum").to_numpy())
        out = total[:, 0 if self.spec.aggregation == "count" else 1].copy()
        out[total[:, 0] <= 0] = np.nan
        return keys, out


class _Distinct:
    """``distinct_users``: events per (entity, user), and per entity the users with any."""

    missing = 0.0

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        self.pairs = Index(1)
        self.index = Index(1)

    def advance(self, step: Step) -> Change:
        delta = _signed(step, self.spec).filter(pl.col("user").is_not_null())
        pairs = delta.group_by("k", "user").agg(pl.col("sign").sum()).collect()
        if pairs.is_empty():
            return _NO_CHANGE
        names = pairs.select(pl.concat_str(["k", "user"], separator=SEP)).to_series()
        rows = self.pairs.add(names)
        before = np.nan_to_num(self.pairs.values[rows, 0])
        after = before + pairs["sign"].to_numpy()
        self.pairs.values[rows, 0] = after
        self.pairs.drop(rows[after <= 0])
        joined = (after > 0).astype(np.float64) - (before > 0)  # +1 a user came, -1 one left
        moves = pairs.select("k", pl.Series("d", joined)).group_by("k").agg(pl.col("d").sum())
        keys = moves["k"]
        # A count column of its own: an entity whose users all left is dropped.
        _, total = _accumulate(self.index, keys, moves.select("d").to_numpy())
        out = total[:, 0].copy()
        out[out <= 0] = np.nan
        return keys, out


class _LastSeen:
    """``last_seen``: the latest event time per entity, gone once it leaves the window."""

    missing = math.nan

    def __init__(self, spec: CounterSpec) -> None:
        self.spec = spec
        self.index = Index(1)

    def advance(self, step: Step) -> Change:
        keys: list[pl.Series] = []
        parts: list[Values] = []
        entering = _keyed(step.entering(self.spec.window).lazy(), self.spec)
        latest = entering.group_by("k").agg(pl.col("ts").max().cast(pl.Float64)).collect()
        if latest.height:
            keys.append(latest["k"])
            rows = self.index.add(latest["k"])
            # Out-of-order arrivals: the latest time is a maximum, not the last one read.
            self.index.values[rows, 0] = np.fmax(self.index.values[rows, 0],
                                                 latest["ts"].to_numpy())  # fmt: skip
            parts.append(self.index.values[rows, 0].copy())
        leaving = _keyed(step.leaving(self.spec.window).lazy(), self.spec).select(
            pl.col("k").unique()
        ).collect()["k"]  # fmt: skip
        if len(leaving):
            rows = self.index.find(leaving)
            present = rows >= 0
            expired = present.copy()
            expired[present] = self.index.values[rows[present], 0] < step.at - self.spec.window
            self.index.drop(rows[expired])
            keys.append(leaving.filter(pl.Series(expired)))
            parts.append(np.full(int(expired.sum()), np.nan))
        return (pl.concat(keys), np.concatenate(parts)) if parts else _NO_CHANGE


class _Rate:
    """``rate``: per entity its events, numerator and denominator counts; the same in total
    for the prior. When the prior moves, every entity's value moves with it."""

    def __init__(self, spec: RateSpec) -> None:
        self.spec = spec
        self.index = Index(3)
        self.totals = np.zeros(2)  # numerator, denominator
        self.prior: float | None = spec.prior
        self.missing = self._missing()

    def advance(self, step: Step) -> Change:
        keys = _NO_CHANGE[0]
        rows = np.zeros(0, np.int64)
        sign = pl.col("sign")
        is_n = pl.col("event_type").is_in(list(self.spec.numerator))
        is_d = pl.col("event_type").is_in(list(self.spec.denominator))
        sums = _signed(step, self.spec, typed=False).group_by("k").agg(
            sign.sum(), (sign * is_n).sum().alias("n"), (sign * is_d).sum().alias("d")
        ).collect()  # fmt: skip
        if sums.height:
            keys = sums["k"]
            change = sums.select("sign", "n", "d").to_numpy()
            rows, _ = _accumulate(self.index, keys, change)
            self.totals += change[:, 1:].sum(axis=0)
        prior = self.spec.prior
        if prior is None and self.totals[1] > 0:
            prior = float(self.totals[0]) / float(self.totals[1])
        if prior != self.prior:  # every entity's value, and those of the entities just gone
            self.prior = prior
            self.missing = self._missing()
            live = self.index.live()
            gone = keys.filter(pl.Series(np.isnan(self.index.values[rows, 0])))
            everyone = pl.Series("k", self.index.keys(live), pl.String).append(gone)
            return everyone, np.concatenate([self._values(live), np.full(len(gone), np.nan)])
        return (keys, self._values(rows)) if len(keys) else _NO_CHANGE

    def _values(self, rows: np.ndarray) -> Values:
        n, d = self.index.values[rows, 1], self.index.values[rows, 2]
        k = self.spec.prior_strength
        p = 0.0 if self.prior is None else self.prior
        with np.errstate(invalid="ignore", divide="ignore"):
            value: Values = (n + k * p) / (d + k)
        if self.prior is None:
            value[d == 0] = np.nan
        return value  # dropped rows are NaN already

    def _missing(self) -> float:
        k = self.spec.prior_strength
        return math.nan if self.prior is None or k == 0 else self.prior


class _Sessions:
    """``sessions``: per item, its sessions longer than ``min_minutes`` active in the window.

    A session belongs to a *group*: its ``SESSION_ID`` on the item, or a user's events on the
    item (split into sessions by gaps; events with a ``SESSION_ID`` take part in the gaps, as
    in :func:`compute.session_members`). A step recomputes the groups of the events that
    entered, left the window, or left the lookback (a session's start), from the log."""

    missing = 0.0

    def __init__(self, spec: SessionsSpec) -> None:
        self.spec = spec
        self.groups = Index(1)  # item SEP group -> sessions it counts
        self.index = Index(1)  # item -> sessions

    def advance(self, step: Step) -> Change:
        spec, at = self.spec, step.at
        window, reach = spec.window, spec.window + compute.SESSION_LOOKBACK
        touched = pl.concat([
            step.new.filter((pl.col("ts") >= at - reach) & (pl.col("ts") < at)),
            _between(step.before, step.since, at),
            step.leaving(window),
            _between(step.before, step.since - reach, min(step.since, at - reach)),
        ]).select("user", "item", "session", "event_type")  # fmt: skip
        if spec.event_types is not None:
            touched = touched.filter(pl.col("event_type").is_in(list(spec.event_types)))
        affected = _groups(touched)
        if affected.is_empty():
            return _NO_CHANGE
        counts = self._counts(step, touched, affected)
        groups = affected["group"]
        old = np.nan_to_num(self.groups.read(groups)[:, 0])
        new = affected.join(counts, on="group", how="left")["n"].fill_null(0).to_numpy()
        rows = self.groups.add(groups)
        self.groups.values[rows, 0] = new
        self.groups.drop(rows[new <= 0])
        moves = affected.select("item", pl.Series("d", (new - old).astype(np.float64)))
        moves = moves.group_by("item").agg(pl.col("d").sum())
        keys = moves["item"]
        rows = self.index.add(keys)
        total = np.nan_to_num(self.index.values[rows, 0]) + moves["d"].to_numpy()
        self.index.values[rows, 0] = total
        self.index.drop(rows[total <= 0])
        out = total.copy()
        out[out <= 0] = np.nan
        return keys, out

    def _counts(self, step: Step, touched: pl.DataFrame, affected: pl.DataFrame) -> pl.DataFrame:
        """``group, n``: the sessions each affected group counts at ``step.at``."""
        at, reach = step.at, self.spec.window + compute.SESSION_LOOKBACK
        recent = _between(step.log, at - reach, at)
        # Every event of the affected groups (and a few others, dropped below).
        ours = recent.filter(
            pl.col("item").is_in(touched["item"].unique().to_list())
            & (pl.col("user").is_in(touched["user"].drop_nulls().unique().to_list())
               | pl.col("session").is_in(touched["session"].drop_nulls().unique().to_list()))
        )  # fmt: skip
        members = compute.session_members(ours, self.spec)
        members = members.filter(pl.col("ts") >= at - self.spec.window)
        members = members.with_columns(
            pl.concat_str(["item", "group"], separator=SEP).alias("group")
        ).filter(pl.col("group").is_in(affected["group"].implode()))
        return members.group_by("group").agg(pl.col("member").n_unique().cast(pl.Float64)
                                             .alias("n"))  # fmt: skip


def _groups(rows: pl.DataFrame) -> pl.DataFrame:
    """``group, item``: the session groups rows take part in (their SESSION_ID's on the item,
    and their user's on the item: gaps between a user's events include sessioned ones)."""
    by_session = rows.filter(pl.col("session").is_not_null()).select(
        pl.concat_str([pl.col("item"), pl.lit("s") + pl.col("session")], separator=SEP)
        .alias("group"), "item")  # fmt: skip
    by_user = rows.filter(pl.col("user").is_not_null()).select(
        pl.concat_str([pl.col("item"), pl.lit("g"), pl.col("user")], separator=SEP)
        .alias("group"), "item")  # fmt: skip
    return pl.concat([by_session, by_user]).unique("group", maintain_order=True)
