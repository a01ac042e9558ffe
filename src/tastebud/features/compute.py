"""Feature values from events, with Polars: as of many times (frames), or now (online snapshots).

One rule everywhere: a value at time ``t`` sees only events with ``TIMESTAMP < t`` (strictly),
and a window ``W`` covers ``[t - W, t)``. Frames compute every row with sorted as-of joins on
cumulative sums: a windowed sum is ``S(t) - S(t - W)`` where ``S(x)`` sums the entity's events
before ``x``. Distinct counts (users, sessions) become sums too: each member's events merge into
runs whose gaps are at most ``W``; a run active from ``s`` to its last event ``l`` adds +1 at ``s``
and -1 at ``l + W``, so the members active at ``t`` are the sum of those before ``t``.

Events carry external ids: ``user`` (null when anonymous), ``item``, ``ts``, ``event_type``,
``event_value``, ``session``, ``context`` (JSON) and one ``field:NAME`` column per item field
that a ``user_item_field`` entity names (the field's first value).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from tastebud.features.spec import (
    BatchSpec,
    CounterSpec,
    FeatureSet,
    RateSpec,
    RequestSpec,
    SessionsSpec,
)

SEP = "\x1f"  # between the parts of a composite entity key ("user\x1fitem")
ALL = "_all"
SESSION_LOOKBACK = 6 * 3600  # online, sessions that began this long before a window still count
EVENT_SCHEMA: dict[str, Any] = {
    "user": pl.String, "item": pl.String, "ts": pl.Int64, "event_type": pl.String,
    "event_value": pl.Float64, "session": pl.String, "context": pl.String,
}  # fmt: skip


# preparation ----------------------------------------------------------------------------------
def with_fields(events: pl.DataFrame, items: pl.DataFrame, fields: set[str]) -> pl.DataFrame:
    """Events with a ``field:NAME`` column per field (the item's first value), sorted by time.

    ``items``: ``item``, ``creation_ts`` and ``field:NAME`` columns (see :func:`item_frame`)."""
    wanted = [f"field:{name}" for name in sorted(fields)]
    if wanted:
        events = events.join(items.select("item", *wanted), on="item", how="left")
    return events.sort("ts", maintain_order=True)


def item_frame(records: pl.DataFrame | None, fields: set[str]) -> pl.DataFrame:
    """``item, creation_ts, field:NAME…`` from an items export (``ITEM_ID``, ``CREATION_…``)."""
    schema: dict[str, Any] = {"item": pl.String, "creation_ts": pl.Int64}
    schema |= {f"field:{name}": pl.String for name in sorted(fields)}
    if records is None or records.is_empty():
        return pl.DataFrame(schema=schema)
    columns = [pl.col("ITEM_ID").alias("item")]
    columns.append(
        pl.col("CREATION_TIMESTAMP").cast(pl.Int64).alias("creation_ts")
        if "CREATION_TIMESTAMP" in records.columns
        else pl.lit(None, pl.Int64).alias("creation_ts")
    )
    for name in sorted(fields):
        value = (
            pl.col(name).cast(pl.String).str.split("|").list.first()
            if name in records.columns
            else pl.lit(None, pl.String)
        )
        columns.append(value.alias(f"field:{name}"))
    return records.select(columns)


def _typed(events: pl.DataFrame, types: Sequence[str] | None) -> pl.DataFrame:
    return events if types is None else events.filter(pl.col("event_type").is_in(list(types)))


def _keys(spec: Any) -> list[str]:
    return list(spec.key_columns) if hasattr(spec, "key_columns") else ["item"]


def session_members(events: pl.DataFrame, spec: SessionsSpec) -> pl.DataFrame:
    """Events that make their session longer than ``min_minutes``: ``item, member, group, ts``
    (``group``: the SESSION_ID, or the user whose events gaps split into sessions).

    A session is the events of one SESSION_ID on one item, or, without one, a user's events on
    the item with gaps of at most ``gap_minutes``. Its start is its first event: always earlier
    than the event that qualifies it, so nothing here looks ahead."""
    ev = _typed(events, spec.event_types).select("user", "item", "ts", "session")
    ev = ev.filter(pl.col("session").is_not_null() | pl.col("user").is_not_null())
    ev = ev.sort("item", "user", "ts", maintain_order=True)
    ev = ev.with_columns(_runs(["item", "user"], spec.gap_minutes * 60).alias("run"))
    by_gap = pl.concat_str(
        [pl.lit("g"), pl.col("user"), pl.col("run").cast(pl.String)], separator=SEP
    )
    sessioned = pl.when(pl.col("session").is_not_null()).then(pl.lit("s") + pl.col("session"))
    ev = ev.with_columns(
        sessioned.otherwise(by_gap).alias("member"),
        sessioned.otherwise(pl.concat_str([pl.lit("g"), pl.col("user")], separator=SEP))
        .alias("group"),
    )  # fmt: skip
    start = pl.col("ts").min().over("item", "member")
    ev = ev.filter(pl.col("ts") - start > spec.min_minutes * 60)
    return ev.select("item", "member", "group", "ts").sort("ts", maintain_order=True)


def _runs(group: list[str], gap: float) -> pl.Expr:
    """A run number over rows sorted by ``group`` then time: a new run where the group changes
    or the time jumps by more than ``gap``. Numbered across groups, with plain shifts (a
    window expression per group is 100 times slower here)."""
    changed = pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in group)
    new_run = (
        changed | (pl.col("ts") - pl.col("ts").shift(1) > gap) | pl.col("ts").shift(1).is_null()
    )
    return new_run.cast(pl.Int64).cum_sum()


# as of many times (frames) --------------------------------------------------------------------
def _cum_at(contrib: pl.DataFrame, keys: list[str], queries: pl.DataFrame, at: str) -> pl.Series:
    """For each query row: the sum of ``contrib.v`` over its keys' rows with ``ts < at``."""
    running = contrib.sort("ts", maintain_order=True).select(
        *keys, "ts", pl.col("v").cum_sum().over(keys).alias("cum")
    )
    left = queries.select("row", *keys, at).sort(at, maintain_order=True)
    joined = left.join_asof(
        running, left_on=at, right_on="ts", by=keys, strategy="backward",
        allow_exact_matches=False, check_sortedness=False,
    )  # fmt: skip
    return joined.sort("row")["cum"].fill_null(0.0).cast(pl.Float64)


def _windowed(
    contrib: pl.DataFrame, keys: list[str], queries: pl.DataFrame, window: int | None
) -> pl.Series:
    total = _cum_at(contrib, keys, queries, "t")
    if window is None:
        return total
    shifted = queries.with_columns((pl.col("t") - window).alias("t_w"))
    return total - _cum_at(contrib, keys, shifted, "t_w")


def _active(
    events: pl.DataFrame, keys: list[str], member: str, queries: pl.DataFrame, window: int
) -> pl.Series:
    """How many distinct ``member`` values each key had in ``[t - window, t)``."""
    ev = events.filter(pl.col(member).is_not_null()).select(*keys, member, "ts")
    group = [*keys, member]
    ev = ev.sort(*group, "ts", maintain_order=True)
    ev = ev.with_columns(_runs(group, window).alias("run"))
    runs = ev.group_by(*group, "run").agg(pl.col("ts").min().alias("s"), pl.col("ts").max())
    deltas = pl.concat([
        runs.select(*keys, pl.col("s").alias("ts"), pl.lit(1.0).alias("v")),
        runs.select(*keys, (pl.col("ts") + window).alias("ts"), pl.lit(-1.0).alias("v")),
    ])  # fmt: skip
    return _cum_at(deltas, keys, queries, "t")


def _counts(
    events: pl.DataFrame, keys: list[str], types: Sequence[str] | None,
    queries: pl.DataFrame, window: int | None,
) -> pl.Series:  # fmt: skip
    contrib = _typed(events, types).select(*keys, "ts", pl.lit(1.0).alias("v"))
    return _windowed(contrib, keys, queries, window)


def _global(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.lit(0).alias(ALL))


def _rate_at(
    events: pl.DataFrame, keys: list[str], spec: RateSpec | BatchSpec,
    queries: pl.DataFrame, window: int | None,
) -> pl.Series:  # fmt: skip
    numerator = _counts(events, keys, spec.numerator, queries, window)
    denominator = _counts(events, keys, spec.denominator, queries, window)
    if spec.prior is not None:
        prior = pl.Series([spec.prior] * queries.height, dtype=pl.Float64)
    else:
        all_events, all_queries = _global(events), _global(queries)
        total_n = _counts(all_events, [ALL], spec.numerator, all_queries, window)
        total_d = _counts(all_events, [ALL], spec.denominator, all_queries, window)
        prior = (total_n / total_d).fill_nan(None)
    return _smooth(numerator, denominator, prior, spec.prior_strength)


def _smooth(n: pl.Series, d: pl.Series, p: pl.Series, k: float) -> pl.Series:
    value = (n + k * p.fill_null(0.0)) / (d + k)
    value = pl.select(pl.when(p.is_null() & (d == 0)).then(None).otherwise(value)).to_series()
    return value.fill_nan(None)


def _aggregate_at(
    events: pl.DataFrame, spec: CounterSpec | BatchSpec, queries: pl.DataFrame, window: int | None
) -> pl.Series:
    keys = _keys(spec)
    how = spec.aggregation
    typed = _typed(events, spec.event_types)
    if how == "count":
        return _counts(events, keys, spec.event_types, queries, window)
    if how == "sum":
        contrib = typed.select(*keys, "ts", pl.col("event_value").fill_null(0.0).alias("v"))
        return _windowed(contrib, keys, queries, window)
    if how == "distinct_users":
        return _active(typed, keys, "user", queries, window or 2**40)
    if how == "last_seen":
        last = typed.select(*keys, "ts", pl.col("ts").alias("last"))
        left = queries.select("row", *keys, "t").sort("t", maintain_order=True)
        joined = left.join_asof(last, left_on="t", right_on="ts", by=keys, strategy="backward",
                                allow_exact_matches=False, check_sortedness=False)  # fmt: skip
        age = joined.sort("row").select((pl.col("t") - pl.col("last")).cast(pl.Float64))
        age_series = age.to_series()
        if window is not None:
            age_series = pl.select(pl.when(age_series > window).then(None)
                                   .otherwise(age_series)).to_series()  # fmt: skip
        return age_series
    if how == "share":
        assert isinstance(spec, BatchSpec)
        part = _counts(events, keys, spec.event_types, queries, window)
        whole_keys = ["user"] if keys[0] == "user" else [ALL]
        source = events if whole_keys == ["user"] else _global(events)
        target = queries if whole_keys == ["user"] else _global(queries)
        whole = _counts(source, whole_keys, spec.event_types, target, window)
        return pl.select(pl.when(whole > 0).then(part / whole).otherwise(0.0)).to_series()
    assert isinstance(spec, BatchSpec) and how == "rate"
    return _rate_at(events, keys, spec, queries, window)


def _request_at(spec: RequestSpec, position: int, queries: pl.DataFrame) -> pl.Series:
    t = queries["t"]
    if spec.source == "hour_of_day":
        return ((t % 86_400) // 3600).cast(pl.Float64)
    if spec.source == "day_of_week":  # Monday 0 … Sunday 6; 1970-01-01 was a Thursday
        return (((t // 86_400) + 3) % 7).cast(pl.Float64)
    if spec.source == "item_age":
        return (t - queries["creation_ts"]).cast(pl.Float64)
    column = f"ctx:{spec.field}"
    raw = queries[column] if column in queries.columns else pl.Series([None] * queries.height)
    values = list(spec.values or ())
    if spec.encoding == "onehot":
        hit = raw.cast(pl.String) == values[position]
        return hit.fill_null(False).cast(pl.Float64)
    codes = {value: float(code) for code, value in enumerate(values)}
    return raw.cast(pl.String).replace_strict(codes, default=None, return_dtype=pl.Float64)


def values_at(
    features: FeatureSet, columns: Sequence[str], events: pl.DataFrame, items: pl.DataFrame,
    queries: pl.DataFrame,
) -> np.ndarray:  # fmt: skip
    """Each query row's value of each column, point in time: float32 ``(rows, columns)``.

    Args:
        events: see the module docstring, sorted by ``ts`` (:func:`with_fields`).
        items: :func:`item_frame`.
        queries: ``user`` (nullable), ``item``, ``t`` and optional ``ctx:FIELD`` columns.
    """
    queries = queries.with_row_index("row").with_columns(pl.col("t").cast(pl.Int64))
    wanted = ["creation_ts", *(f"field:{f}" for f in sorted(features.fields))]
    queries = queries.join(items.select("item", *wanted), on="item", how="left",
                           maintain_order="left").with_columns(pl.lit(0).alias(ALL))  # fmt: skip
    out = np.full((queries.height, len(columns)), np.nan, dtype=np.float32)
    for j, column in enumerate(columns):
        spec, position = features.column_of[column]
        values = _value_at(spec, position, events, queries)
        missing_key = pl.any_horizontal(pl.col(k).is_null() for k in _keys(spec))
        if not isinstance(spec, RequestSpec):
            values = pl.select(pl.when(queries.select(missing_key).to_series()).then(None)
                               .otherwise(values)).to_series()  # fmt: skip
        out[:, j] = values.cast(pl.Float32).fill_null(np.nan).to_numpy()
    return out


def _value_at(spec: Any, position: int, events: pl.DataFrame, queries: pl.DataFrame) -> pl.Series:
    if isinstance(spec, RequestSpec):
        return _request_at(spec, position, queries)
    if isinstance(spec, SessionsSpec):
        members = session_members(events, spec)
        return _active(members, ["item"], "member", queries, spec.window)
    if isinstance(spec, RateSpec):
        return _rate_at(events, _keys(spec), spec, queries, spec.window)
    if isinstance(spec, BatchSpec):
        # The value the scheduled job computed at the last boundary before t, over the days
        # before that boundary: never anything at or after t.
        snapped = queries.with_columns(((pl.col("t") // spec.every) * spec.every).alias("t"))
        return _aggregate_at(events, spec, snapped, spec.window)
    return _aggregate_at(events, spec, queries, spec.window)


# now (online snapshots) -----------------------------------------------------------------------
def snapshot(spec: Any, events: pl.DataFrame, at: int) -> tuple[pl.DataFrame, float]:
    """Every entity's value at ``at`` (``k``: entity key, ``v``) from events sorted by time,
    and the value of an entity
    that has none (0 for counts, the prior for rates, NaN otherwise). ``last_seen`` holds the
    time of the last event; the reader turns it into an age."""
    # Events are sorted by time: the past and the window are slices, not scans.
    past = events.head(events["ts"].search_sorted(at, side="left"))
    keys = _keys(spec)
    window = getattr(spec, "window", None)
    recent = past if window is None else past.slice(past["ts"].search_sorted(at - window))
    if isinstance(spec, SessionsSpec):
        # Online, a session's start is sought at most SESSION_LOOKBACK before the window.
        since = past["ts"].search_sorted(at - spec.window - SESSION_LOOKBACK)
        members = session_members(past.slice(since), spec).filter(pl.col("ts") >= at - spec.window)
        frame = members.group_by("item").agg(pl.col("member").n_unique().cast(pl.Float64))
        return _as_frame(frame, keys), 0.0
    if isinstance(spec, RateSpec) or getattr(spec, "aggregation", "") == "rate":
        return _rate_now(spec, recent, keys)
    typed = _typed(recent, spec.event_types).filter(
        pl.all_horizontal(pl.col(k).is_not_null() for k in keys)
    )
    how = spec.aggregation
    if how == "last_seen":
        frame = typed.group_by(keys).agg(pl.col("ts").max().cast(pl.Float64))
        return _as_frame(frame, keys), float("nan")
    if how == "share":
        part = typed.group_by(keys).agg(pl.len().cast(pl.Float64).alias("n"))
        if keys[0] == "user":
            whole = typed.group_by("user").agg(pl.len().alias("w"))
            part = part.join(whole, on="user").with_columns(pl.col("n") / pl.col("w"))
        else:
            part = part.with_columns(pl.col("n") / max(typed.height, 1))
        return _as_frame(part.select(*keys, "n"), keys), 0.0
    value = {"count": pl.len(), "sum": pl.col("event_value").fill_null(0.0).sum(),
             "distinct_users": pl.col("user").drop_nulls().n_unique()}[how]  # fmt: skip
    frame = typed.group_by(keys).agg(value.cast(pl.Float64).alias("v"))  # "user" may be a key
    return _as_frame(frame, keys), 0.0


def _rate_now(spec: Any, recent: pl.DataFrame, keys: list[str]) -> tuple[pl.DataFrame, float]:
    recent = recent.filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
    is_n = pl.col("event_type").is_in(list(spec.numerator))
    is_d = pl.col("event_type").is_in(list(spec.denominator))
    frame = recent.group_by(keys).agg(
        is_n.sum().cast(pl.Float64).alias("n"), is_d.sum().cast(pl.Float64).alias("d")
    )
    if spec.prior is not None:
        prior: float | None = spec.prior
    else:
        total_d = int(recent.select(is_d.sum()).item() or 0)
        prior = int(recent.select(is_n.sum()).item() or 0) / total_d if total_d else None
    k = spec.prior_strength
    p = 0.0 if prior is None else prior
    value = (pl.col("n") + k * p) / (pl.col("d") + k)
    if prior is None:
        value = pl.when(pl.col("d") == 0).then(None).otherwise(value)
    frame = frame.select(*keys, value.fill_nan(None).alias("v"))
    missing = float("nan") if prior is None or k == 0 else p
    return _as_frame(frame, keys), missing


def _as_frame(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """``k`` (the entity key, parts joined by SEP) and ``v``."""
    key = pl.col(keys[0]) if len(keys) == 1 else pl.concat_str(keys, separator=SEP)
    return frame.select(key.alias("k"), pl.col(frame.columns[-1]).cast(pl.Float64).alias("v"))


def context_columns(events: pl.DataFrame, fields: Sequence[str]) -> pl.DataFrame:
    """``ctx:FIELD`` columns decoded from the events' JSON ``context``."""
    if not fields:
        return events
    decoded = [json.loads(c) if c else {} for c in events["context"].to_list()]
    return events.with_columns(
        pl.Series(f"ctx:{f}", [str(d[f]) if f in d else None for d in decoded], pl.String)
        for f in fields
    )
