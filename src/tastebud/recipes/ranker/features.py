"""Features of (query, candidate) pairs, computed point in time and vectorized.

Every value is what was knowable at the query's time: popularity and item age count only events
strictly before it (from the event log kept with the model), history features read only the
query's own history. The same functions build the training rows (queries at each user's held-out
label time) and the served ones, so the trees see one distribution.

Columns, in order (``feature_names``): per base ``B.score``, ``B.rank`` (0-based within its top-N,
NaN outside) and ``B.gap`` (score minus the query's best eligible score); ``popularity`` and
``popularity.Nd`` (events before the query, in all and in the last N days); ``item_age_days``
(since the item's first event; NaN: none yet) and ``created_days`` (since ``CREATION_TIMESTAMP``);
``history_length``; ``history_count`` (times the candidate is in the history: repeats);
``genre_share`` and ``genre_share_recent`` (mean share of the history's items, all and the last
``RECENT`` ones, that carry each of the candidate's categorical values); ``category_gap`` (events
since the user last touched any of the candidate's values); then ``feature.NAME`` per declared
feature (NaN where no lookup is given).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from tastebud.recipes.base import FloatArray, Int64Array, IntArray, Query, TrainingData
from tastebud.recipes.ranker.candidates import BaseScores

SECONDS_PER_DAY = 86_400.0
RECENT = 10  # history items of genre_share_recent


def feature_names(
    bases: Sequence[str], windows_days: Sequence[float], declared: Sequence[str]
) -> list[str]:
    """The column names, in the order :func:`pair_features` writes them."""
    names = [f"{base}.{part}" for base in bases for part in ("score", "rank", "gap")]
    names += ["popularity"] + [f"popularity.{_days(d)}d" for d in windows_days]
    names += ["item_age_days", "created_days", "history_length", "history_count"]
    names += ["genre_share", "genre_share_recent", "category_gap"]
    return names + [f"feature.{name}" for name in declared]


def _days(days: float) -> str:
    return f"{days:g}"


@dataclass(frozen=True, slots=True)
class ItemLog:
    """Every training event as a sorted key ``item * span + (time - start)``: the events of an
    item before a time are one ``searchsorted`` away, for any number of pairs at once.
    ``starts[i]`` is the first key of item i (``starts[n_items]``: the end)."""

    keys: Int64Array
    start: int
    span: int
    latest: int  # the newest event's time: a query without a time is asked just after it
    starts: Int64Array

    @staticmethod
    def from_data(data: TrainingData) -> ItemLog:
        if data.size == 0:
            return ItemLog.from_keys(np.zeros(0, np.int64), 0, 2, 0, data.n_items)
        start, latest = int(data.timestamps.min()), int(data.timestamps.max())
        span = latest - start + 2  # times clip into [0, span - 1]: before all, ..., after all
        keys = data.items.astype(np.int64) * span + (data.timestamps - start)
        return ItemLog.from_keys(np.sort(keys), start, span, latest, data.n_items)

    @staticmethod
    def from_keys(keys: Int64Array, start: int, span: int, latest: int, n_items: int) -> ItemLog:
        counts = np.bincount(keys // span, minlength=n_items) if len(keys) else np.zeros(n_items)
        starts = np.zeros(n_items + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return ItemLog(keys, start, span, latest, starts)

    def counts_before(self, items: IntArray, times: Int64Array) -> Int64Array:
        """(len(items) x len(times[0])) events of each item strictly before each of its times
        (``times``: one row per item); one sorted ``searchsorted`` for all of them."""
        first = self.starts[items][:, None]
        return self._positions(items, times) - first

    def first_time(self, items: IntArray, times: Int64Array) -> FloatArray:
        """Time of each item's first event, NaN when it has none before ``times``."""
        lower = self.starts[items]
        has = self._positions(items, times[:, None])[:, 0] > lower
        first = np.full(len(items), np.nan, dtype=np.float64)
        found = self.keys[np.minimum(lower[has], len(self.keys) - 1)]
        first[has] = found - items[has].astype(np.int64) * self.span + self.start
        return first.astype(np.float32)

    def count_before(self, items: IntArray, times: Int64Array) -> FloatArray:
        """Events of each item strictly before each time."""
        return self.counts_before(items, times[:, None])[:, 0].astype(np.float32)

    def _positions(self, items: IntArray, times: Int64Array) -> Int64Array:
        """Index of the first key of each item at or after each of its times. A time past the
        newest event needs no search: it is the item's end."""
        offset = np.clip(times - self.start, 0, self.span - 1)
        probe = (items.astype(np.int64) * self.span)[:, None] + offset
        after = times > self.latest
        positions = np.broadcast_to(self.starts[items + 1][:, None], probe.shape).copy()
        if not after.all():
            wanted = probe[~after]
            order = np.argsort(wanted)  # sorted probes: the search walks the keys in order
            found = np.empty(len(wanted), dtype=np.int64)
            found[order] = np.searchsorted(self.keys, wanted[order], side="left")
            positions[~after] = found
        return positions


@dataclass(frozen=True)
class ItemFacts:
    """What the model keeps about items for features: the event log, categorical one-hots and
    creation times."""

    log: ItemLog
    item_features: sp.csr_matrix | None
    item_created: Int64Array | None
    windows_days: tuple[float, ...]

    @cached_property
    def popularity_now(self) -> FloatArray:
        """(I x columns) every item's popularity features for a query without a time (every
        served one): asked just after the newest event, they are the same for every request,
        so they are computed once instead of searching the event log per request."""
        items = np.arange(len(self.log.starts) - 1, dtype=np.int32)
        times = np.full(len(items), self.log.latest + 1, dtype=np.int64)
        return np.column_stack(_popularity(self, items, times)).astype(np.float32)


def query_times(query: Query, log: ItemLog) -> Int64Array:
    """Each query's time; a query without one is asked just after the newest training event."""
    if query.times is None:
        return np.full(len(query), log.latest + 1, dtype=np.int64)
    return query.times.astype(np.int64)


def pair_features(
    facts: ItemFacts,
    query: Query,
    scored: BaseScores,
    rows: IntArray,
    items: IntArray,
    declared: FloatArray,
) -> FloatArray:
    """(len(rows) x F) float32 features of the pairs (query row, candidate item)."""
    times = query_times(query, facts.log)[rows]
    columns: list[FloatArray] = []
    for name, scores in scored.scores.items():
        score = scores[rows, items]
        columns += [score, scored.ranks[name][rows, items], score - scored.best[name][rows]]
    if query.times is None:
        columns += list(facts.popularity_now[items].T)
    else:
        columns += _popularity(facts, items, times)
    columns += _history(facts, query, rows, items)
    # One (P x F) block written column by column: no per-column copies or stacking.
    matrix = np.empty((len(rows), len(columns) + declared.shape[1]), dtype=np.float32)
    for position, column in enumerate(columns):
        matrix[:, position] = column
    matrix[:, len(columns) :] = declared
    computed = matrix[:, : len(columns)]  # a view
    computed[np.isinf(computed)] = np.nan  # -inf scores of unscorable items: missing
    return matrix


def _popularity(facts: ItemFacts, items: IntArray, times: Int64Array) -> list[FloatArray]:
    log = facts.log
    edges = [times] + [times - int(d * SECONDS_PER_DAY) for d in facts.windows_days]
    counts = log.counts_before(items, np.column_stack(edges)).astype(np.float32)
    recent = [counts[:, 0] - counts[:, i] for i in range(1, counts.shape[1])]
    first = log.first_time(items, times)
    age = (times - first) / SECONDS_PER_DAY
    created = np.full(len(items), np.nan, dtype=np.float32)
    if facts.item_created is not None:
        known = facts.item_created[items]
        has = known >= 0
        created[has] = (times[has] - known[has]) / SECONDS_PER_DAY
    return [counts[:, 0], *recent, age.astype(np.float32), created]


def _history(facts: ItemFacts, query: Query, rows: IntArray, items: IntArray) -> list[FloatArray]:
    lengths = np.diff(query.history_indptr).astype(np.float32)
    count = _history_counts(query, rows, items)
    features = facts.item_features
    if features is None or features.shape[1] == 0:
        nothing = np.full(len(rows), np.nan, dtype=np.float32)
        return [lengths[rows], count, nothing, nothing, nothing]
    candidate = item_values(features, items)  # gathered once for the three
    events = _history_events(query, features.shape[0])
    share = _genre_share(features, candidate, events, len(query), rows, last=None)
    recent = _genre_share(features, candidate, events, len(query), rows, last=RECENT)
    gap = _category_gap(features, candidate, events, len(query), rows)
    return [lengths[rows], count, share, recent, gap]


@dataclass(frozen=True, slots=True)
class ItemValues:
    """The categorical values of a list of items, flat: ``values[k]`` belongs to item number
    ``owner[k]`` of the list; ``counts[j]``: how many item j has."""

    owner: IntArray
    values: IntArray
    weights: FloatArray  # the matrix's entries (1.0: one-hots)
    counts: Int64Array


def item_values(features: sp.csr_matrix, items: IntArray) -> ItemValues:
    """The CSR rows of ``items`` read straight from ``indptr``/``indices``: scipy's row
    slicing builds a whole matrix and costs several times more on a request's 1,000 items."""
    starts = features.indptr[items].astype(np.int64)
    counts = features.indptr[np.asarray(items) + 1] - starts
    owner = np.repeat(np.arange(len(items), dtype=np.int32), counts)
    first_of_owner = np.cumsum(counts) - counts
    positions = starts[owner] + (np.arange(len(owner)) - first_of_owner[owner])
    return ItemValues(owner, features.indices[positions].astype(np.int32),
                      features.data[positions], counts)  # fmt: skip


HistoryEvents = tuple[IntArray, IntArray, IntArray]


def _history_events(query: Query, n_items: int) -> HistoryEvents:
    """(query row, item, events from the end: 1 = newest) of each known history event."""
    rows = np.repeat(np.arange(len(query), dtype=np.int32), np.diff(query.history_indptr))
    from_end = query.history_indptr[1:][rows] - np.arange(len(rows))
    items = query.history_items
    keep = (items >= 0) & (items < n_items)
    return rows[keep], items[keep].astype(np.int32), from_end[keep].astype(np.int32)


def _history_counts(query: Query, rows: IntArray, items: IntArray) -> FloatArray:
    """Times each pair's item occurs in its query's history."""
    history_rows = np.repeat(np.arange(len(query), dtype=np.int64), np.diff(query.history_indptr))
    known = query.history_items >= 0  # items the model never saw match no candidate
    width = int(max(items.max(initial=0), query.history_items.max(initial=0))) + 1
    history_keys = history_rows[known] * width + query.history_items[known]
    keys, counts = np.unique(history_keys, return_counts=True)
    probe = rows.astype(np.int64) * width + items
    at = np.minimum(np.searchsorted(keys, probe), max(len(keys) - 1, 0))
    hit = (keys[at] == probe) if len(keys) else np.zeros(len(probe), bool)
    return np.where(hit, counts[at] if len(keys) else 0, 0).astype(np.float32)


def _genre_share(
    features: sp.csr_matrix, candidate: ItemValues, events: HistoryEvents, n_queries: int,
    rows: IntArray, *, last: int | None,
) -> FloatArray:  # fmt: skip
    """Mean, over the candidate's categorical values, of the share of the history's items (its
    ``last`` ones) that carry the value; NaN for a candidate without values or no history."""
    profile, sizes = _profiles(features, events, n_queries, last=last)
    profile /= np.maximum(sizes, 1.0)[:, None]
    values = profile[rows[candidate.owner], candidate.values]
    total = np.bincount(candidate.owner, weights=values, minlength=len(rows))
    n_values = candidate.counts.astype(np.float64)
    share = np.where(n_values > 0, total / np.maximum(n_values, 1.0), np.nan)
    share[sizes[rows] == 0] = np.nan
    return share.astype(np.float32)


def _profiles(
    features: sp.csr_matrix, events: HistoryEvents, n_queries: int, *, last: int | None
) -> tuple[FloatArray, FloatArray]:
    """(Q x G) how many distinct history items (the ``last`` events' only) carry each value,
    and (Q,) how many distinct items there are: numpy's bincount where a sparse (Q x I)
    history matrix product costs ~0.3 ms of scipy overhead a request."""
    event_rows, event_items, from_end = events
    n_items, n_values = features.shape
    keep = slice(None) if last is None else from_end <= last
    keys = np.unique(event_rows[keep].astype(np.int64) * n_items + event_items[keep])
    rows, items = keys // n_items, (keys % n_items).astype(np.int32)
    sizes = np.bincount(rows, minlength=n_queries).astype(np.float32)
    carried = item_values(features, items)
    cells = rows[carried.owner] * n_values + carried.values
    counts = np.bincount(cells, weights=carried.weights, minlength=n_queries * n_values)
    return counts.reshape(n_queries, n_values).astype(np.float32), sizes


def _category_gap(
    features: sp.csr_matrix, candidate: ItemValues, events: HistoryEvents, n_queries: int,
    rows: IntArray,
) -> FloatArray:  # fmt: skip
    """Events since the query's user last touched any of the candidate's categorical values
    (1: the newest event has one), NaN when never."""
    n_values = features.shape[1]
    event_rows, event_items, from_end = events
    last = np.full((n_queries, n_values), np.inf, dtype=np.float32)
    touched = item_values(features, event_items)
    np.minimum.at(last, (event_rows[touched.owner], touched.values), from_end[touched.owner])
    values = last[rows[candidate.owner], candidate.values]
    gap = np.full(len(rows), np.inf, dtype=np.float32)
    starts = np.cumsum(candidate.counts) - candidate.counts
    nonempty = candidate.counts > 0
    if nonempty.any():
        gap[nonempty] = np.minimum.reduceat(values, starts[nonempty])
    gap[~np.isfinite(gap)] = np.nan
    return gap
