"""Interaction tokens: per-user item sequences with adjacent repeats merged, cut into windows,
and the features each token carries.

Token ids are item index + 1, so that 0 is padding (STYLE.md: "index 0 is padding in sequence
models"). Sequences are right-padded: with causal attention a real token never looks at a pad
after it, so no padding mask is needed.

Each token has a row of integer features (0 always means "none"), see :class:`TokenCodec`:
``TYPE`` its strongest event type, ``VALUE`` the bucket of its summed event value, ``GAP`` the
log2 bucket of the seconds since the previous token, ``HOUR`` the hour of day it happened and
then one column per request-context field (``DEVICE=tv``). ``TYPE``, ``VALUE`` and ``GAP``
describe the token itself; ``GAP``, ``HOUR`` and the context are also known *before* the token
is chosen (when, where): the model adds them at the position that predicts the token, and at
serving time the request supplies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tastebud.recipes.base import FloatArray, Int64Array, IntArray, Query, TrainingData

PAD = 0
TYPE, VALUE, GAP, HOUR = 0, 1, 2, 3
GAP_BUCKETS = 40  # 1 + floor(log2(1 + seconds)), up to ~8,700 years; 0: no previous token
VALUE_BUCKETS = 8  # quantile buckets of the training values
HOURS = 24


@dataclass(frozen=True, slots=True)
class Events:
    """Per-event columns parallel to a sequence set's items; None where unknown."""

    types: IntArray | None = None  # event-type code, -1: none
    values: FloatArray | None = None  # NaN: none
    times: Int64Array | None = None  # epoch seconds
    contexts: IntArray | None = None  # (n, fields) context codes, -1: none

    def take(self, rows: npt.NDArray[np.intp]) -> Events:
        """The events at ``rows``."""
        return Events(
            types=None if self.types is None else self.types[rows],
            values=None if self.values is None else self.values[rows],
            times=None if self.times is None else self.times[rows],
            contexts=None if self.contexts is None else self.contexts[rows],
        )


@dataclass(frozen=True, slots=True)
class Sequences:
    """Each user's tokens oldest first: user u is ``tokens[indptr[u]:indptr[u + 1]]``;
    ``repeats`` counts the events merged into each token (1 for a lone event) and ``events``
    holds each token's merged event columns (``times``: its first event's, ``last_times``: its
    last event's)."""

    indptr: Int64Array
    tokens: IntArray
    repeats: IntArray
    events: Events = field(default_factory=Events)
    last_times: Int64Array | None = None

    @property
    def lengths(self) -> Int64Array:
        return np.diff(self.indptr)


def merge_repeats(
    indptr: Int64Array,
    items: IntArray,
    events: Events | None = None,
    *,
    strength: FloatArray | None = None,
) -> Sequences:
    """Merge adjacent events on the same item within each sequence into one token: values are
    summed, the strongest event type kept (``strength`` per type code; ties: the latest), the
    first event's time and context kept, the last event's time noted.

    Args:
        indptr: ``(n_sequences + 1,)`` offsets into ``items``.
        items: item indexes, each sequence oldest first.
        events: event columns parallel to ``items``.
        strength: how strong each event-type code is (default: all equal).
    """
    events = events or Events()
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    starts = np.ones(len(items), dtype=bool)  # where a new token begins
    starts[1:] = (items[1:] != items[:-1]) | (owner[1:] != owner[:-1])
    first = np.flatnonzero(starts)
    last = np.append(first[1:], len(items))[: len(first)] - 1  # empty when no items
    repeats = np.diff(np.append(first, len(items))).astype(np.int32)
    counts = np.bincount(owner[first], minlength=len(indptr) - 1)
    merged_indptr = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(counts, out=merged_indptr[1:])
    merged = Events(
        types=None if events.types is None else _strongest(events.types, starts, strength),
        values=None if events.values is None else _summed(events.values, first),
        times=None if events.times is None else events.times[first],
        contexts=None if events.contexts is None else events.contexts[first],
    )
    last_times = None if events.times is None else events.times[last]
    tokens = (items[first] + 1).astype(np.int32)
    return Sequences(merged_indptr, tokens, repeats, merged, last_times)


def _strongest(
    types: IntArray, starts: npt.NDArray[np.bool_], strength: FloatArray | None
) -> IntArray:
    """Per token, the type code of its strongest event (the latest among equals)."""
    if len(types) == 0:
        return types.astype(np.int32)
    table = np.zeros(int(types.max(initial=0)) + 1) if strength is None else strength
    power = np.where(types >= 0, table[np.clip(types, 0, len(table) - 1)], -np.inf)
    token = np.cumsum(starts) - 1
    order = np.lexsort((np.arange(len(types)), power, token))
    ends = np.append(np.flatnonzero(starts)[1:], len(types)) - 1
    strongest: IntArray = types[order[ends]].astype(np.int32)
    return strongest


def _summed(values: FloatArray, first: npt.NDArray[np.intp]) -> FloatArray:
    """Per token, the sum of its events' values; NaN when none has one."""
    if len(values) == 0:
        return values.astype(np.float32)
    known = np.isfinite(values)
    sums = np.add.reduceat(np.where(known, values, 0.0), first)
    present = np.add.reduceat(known.astype(np.int64), first) > 0
    return np.where(present, sums, np.nan).astype(np.float32)


def training_events(data: TrainingData) -> Events:
    """The event columns of ``data`` (in its row order)."""
    return Events(data.event_types, data.values, data.timestamps, data.contexts)


def training_sequences(data: TrainingData, strength: FloatArray | None = None) -> Sequences:
    """The users' interaction tokens, repeats merged (users with no events are empty)."""
    order = np.argsort(data.users, kind="stable")
    counts = np.bincount(data.users, minlength=data.n_users)
    indptr = np.zeros(data.n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    events = training_events(data).take(order)
    return merge_repeats(indptr, data.items[order], events, strength=strength)


def query_sequences(
    query: Query, n_items: int, *, events: Events | None = None, strength: FloatArray | None = None
) -> Sequences:
    """The queries' history tokens; items the model does not know (>= n_items, < 0) dropped.
    ``events`` are the history's event columns already in the model's codes."""
    lengths = np.diff(query.history_indptr)
    start, stop = int(query.history_indptr[0]), int(query.history_indptr[-1])
    items = query.history_items[start:stop]
    owner = np.repeat(np.arange(len(query)), lengths)
    known = (items >= 0) & (items < n_items)
    indptr = np.zeros(len(query) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner[known], minlength=len(query)), out=indptr[1:])
    kept = None if events is None else events.take(np.flatnonzero(known))
    return merge_repeats(indptr, items[known].astype(np.int32), kept, strength=strength)


@dataclass(frozen=True)
class TokenCodec:
    """Which token features a model uses and how raw event columns become feature codes.

    ``event_types``: the training event-type names (their code + 1 is the feature), with their
    ``strength`` (the largest training weight of the type, which decides merges). ``value_edges``:
    quantile edges of the training values. ``gaps``: each token's gap to the previous one;
    ``request_times``: the gap and hour of day of the token being predicted (the request's).
    ``context_fields`` and ``context_names`` (``"DEVICE=tv"``): the request context.
    """

    event_types: tuple[str, ...] = ()
    strength: tuple[float, ...] = ()
    value_edges: tuple[float, ...] | None = None
    gaps: bool = False
    request_times: bool = False
    context_fields: tuple[str, ...] = ()
    context_names: tuple[str, ...] = ()

    @staticmethod
    def from_json(body: dict[str, Any]) -> TokenCodec:
        """The codec :func:`dataclasses.asdict` wrote to JSON (lists back to tuples)."""
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in body.items()
        }
        return TokenCodec(**fields)

    @property
    def width(self) -> int:
        """Feature columns per token (0: the model uses none)."""
        used = self.event_types or self.value_edges is not None or self.context_fields
        return HOUR + 1 + len(self.context_fields) if used or self._timed else 0

    @property
    def _timed(self) -> bool:
        return self.gaps or self.request_times

    @property
    def n_value_buckets(self) -> int:
        return 0 if self.value_edges is None else len(self.value_edges) + 1

    def strengths(self) -> FloatArray | None:
        return np.asarray(self.strength, np.float32) if self.strength else None

    def features(self, sequences: Sequences) -> IntArray:
        """``(n_tokens, width)`` feature codes of every token."""
        n = len(sequences.tokens)
        out = np.zeros((n, self.width), dtype=np.int32)
        if self.width == 0:
            return out
        events = sequences.events
        if self.event_types and events.types is not None:
            out[:, TYPE] = np.where(events.types >= 0, events.types + 1, 0)
        if self.value_edges is not None and events.values is not None:
            out[:, VALUE] = value_buckets(events.values, self.value_edges)
        if self._timed and events.times is not None and sequences.last_times is not None:
            previous = np.append(0, sequences.last_times[:-1])
            first = np.zeros(n, dtype=bool)
            first[sequences.indptr[:-1][sequences.lengths > 0]] = True
            out[:, GAP] = np.where(first, 0, gap_buckets(events.times - previous))
            out[:, HOUR] = hours(events.times)
        if self.context_fields and events.contexts is not None:
            out[:, HOUR + 1 :] = events.contexts + 1
        return out

    def requests(
        self, sequences: Sequences, times: Int64Array, contexts: IntArray | None
    ) -> IntArray:
        """``(n_sequences, width)`` rows for the token about to be chosen at ``times`` (epoch
        seconds) with ``contexts`` ((n, fields) codes, -1: none): only what is known before."""
        out = np.zeros((len(sequences.lengths), self.width), dtype=np.int32)
        if self.width == 0:
            return out
        if self.request_times:
            has = sequences.lengths > 0
            if sequences.last_times is not None:
                last = sequences.last_times[sequences.indptr[1:][has] - 1]
                out[has, GAP] = gap_buckets(times[has] - last)
            out[:, HOUR] = hours(times)
        if self.context_fields and contexts is not None:
            out[:, HOUR + 1 :] = contexts + 1
        return out

    def query_events(self, query: Query) -> Events:
        """The query histories' event columns in this codec's codes (unknown names: -1)."""
        types = None
        if self.event_types and query.history_event_types is not None:
            index = {name: code for code, name in enumerate(self.event_types)}
            lookup = np.array([index.get(n, -1) for n in query.event_type_names] + [-1], np.int32)
            types = lookup[query.history_event_types]  # code -1 reads the trailing -1
        values = query.history_values if self.value_edges is not None else None
        return Events(types=types, values=values, times=query.history_timestamps)

    def query_contexts(self, query: Query) -> IntArray | None:
        """``(len(query), fields)`` codes of each query's context (-1: none); field names match
        without regard to case."""
        if not self.context_fields or query.contexts is None:
            return None
        index = {}
        for code, name in enumerate(self.context_names):
            field_name, _, value = name.partition("=")
            index[field_name.upper(), value] = code
        fields = [name.upper() for name in self.context_fields]
        codes = np.full((len(query), len(fields)), -1, dtype=np.int32)
        for row, context in enumerate(query.contexts):
            given = {key.upper(): str(value) for key, value in context.items()}
            for column, name in enumerate(fields):
                if name in given:
                    codes[row, column] = index.get((name, given[name]), -1)
        return codes


def gap_buckets(seconds: Int64Array) -> IntArray:
    """1 + floor(log2(1 + seconds)) within 1..GAP_BUCKETS - 1 (a negative gap counts as 0)."""
    scaled = np.floor(np.log2(1.0 + np.maximum(seconds, 0).astype(np.float64)))
    return (1 + np.clip(scaled, 0, GAP_BUCKETS - 2)).astype(np.int32)


def hours(times: Int64Array) -> IntArray:
    """1 + the UTC hour of day (the data carry no time zone)."""
    return (1 + (times // 3600) % HOURS).astype(np.int32)


def value_buckets(values: FloatArray, edges: tuple[float, ...]) -> IntArray:
    """1 + the quantile bucket of each value; 0 for NaN (no value)."""
    bucket = 1 + np.searchsorted(np.asarray(edges), values, side="right")
    return np.where(np.isfinite(values), bucket, 0).astype(np.int32)


def value_edges(values: FloatArray | None) -> tuple[float, ...] | None:
    """Edges of up to ``VALUE_BUCKETS`` quantile buckets of the known values; None without
    two distinct ones (a value that never varies says nothing)."""
    if values is None:
        return None
    known = values[np.isfinite(values)]
    if len(np.unique(known[:100_000])) < 2:
        return None
    cuts = np.quantile(known, np.arange(1, VALUE_BUCKETS) / VALUE_BUCKETS)
    return tuple(float(edge) for edge in np.unique(cuts))


def window_positions(lengths: Int64Array, indptr: Int64Array, *, size: int,
                     stride: int) -> Int64Array:  # fmt: skip
    """``(n_windows, size)`` positions of the tokens of windows of up to ``size`` tokens
    sliding back from each sequence's end by ``stride``; the oldest window starts at the
    sequence's start and may be shorter. Slots past a window's end read position -1 (padding).
    Sequences shorter than 2 tokens (nothing to predict) get none."""
    sequence, start, end = window_bounds(lengths, size=size, stride=stride)
    begin = indptr[sequence] + start
    stop = indptr[sequence] + end
    positions = begin[:, None] + np.arange(size)[None, :]  # (n_windows, size)
    out: Int64Array = np.where(positions < stop[:, None], positions, -1)
    return out


def window_bounds(lengths: Int64Array, *, size: int, stride: int) -> tuple[Int64Array, ...]:
    """``(sequence, start, stop)`` of the windows of :func:`window_positions`."""
    lengths = np.asarray(lengths, np.int64)
    overflow = np.maximum(lengths - size, 0)
    counts = np.where(lengths >= 2, 1 + -(-overflow // stride), 0)  # ceil division
    sequence = np.repeat(np.arange(len(lengths)), counts)
    first = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=first[1:])
    back = np.arange(len(sequence)) - first[sequence]  # 0 = the window at the end
    start = overflow[sequence] - back * stride
    # the oldest window is cut short at the sequence's start rather than overlap its successor
    return sequence, np.maximum(start, 0), np.minimum(start + size, lengths[sequence])


def latest_windows(lengths: Int64Array, *, size: int, stride: int) -> npt.NDArray[np.bool_]:
    """Which windows of :func:`window_positions` end at their sequence's end."""
    sequence, _, stop = window_bounds(lengths, size=size, stride=stride)
    latest: npt.NDArray[np.bool_] = stop == np.asarray(lengths, np.int64)[sequence]
    return latest


def gather(column: IntArray, positions: Int64Array) -> IntArray:
    """``column[positions]`` (rows of a 1-D or 2-D int32 array) with position -1 reading a
    zero row (padding)."""
    padded = np.concatenate([column, np.zeros((1, *column.shape[1:]), column.dtype)])
    out: IntArray = padded[positions].astype(np.int32, copy=False)
    return out


def windows(sequences: Sequences, *, size: int, stride: int) -> IntArray:
    """``(n_windows, size)`` right-padded token windows over every sequence (see
    :func:`window_positions`); a window's tokens are inputs and, shifted by one, targets."""
    positions = window_positions(sequences.lengths, sequences.indptr, size=size, stride=stride)
    out: IntArray = gather(sequences.tokens, positions).astype(np.int32)
    return out


def last_positions(sequences: Sequences, size: int) -> tuple[Int64Array, Int64Array]:
    """Positions of each sequence's ``size`` latest tokens, right-padded with -1, and the
    lengths: ``((n, size), (n,))``."""
    lengths = np.minimum(sequences.lengths, size)
    begin = sequences.indptr[1:] - lengths
    positions = begin[:, None] + np.arange(size)[None, :]
    inside = np.arange(size)[None, :] < lengths[:, None]
    return np.where(inside, positions, -1), lengths


def last_tokens(sequences: Sequences, size: int) -> tuple[IntArray, Int64Array]:
    """Each sequence's ``size`` latest tokens, right-padded: ``(tokens (n, size), lengths)``."""
    positions, lengths = last_positions(sequences, size)
    return gather(sequences.tokens, positions).astype(np.int32), lengths


def inputs_with_request(
    sequences: Sequences, features: IntArray, requests: IntArray, size: int
) -> tuple[IntArray, IntArray, Int64Array]:
    """Each sequence's ``size`` latest tokens followed by its request slot, as the model reads
    them: ``(tokens (n, size + 1), features (n, size + 1, width), lengths (n,))``. The slot
    after the last token has no item (padding) and the request's features."""
    positions, lengths = last_positions(sequences, size)
    slot = np.concatenate([positions, np.full((len(lengths), 1), -1)], axis=1)
    tokens = gather(sequences.tokens, slot).astype(np.int32)
    rows = gather(features, slot).astype(np.int32)
    rows[np.arange(len(lengths)), lengths] = requests
    return tokens, rows, lengths
