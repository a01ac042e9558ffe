"""Interaction tokens: per-user item sequences with adjacent repeats merged, cut into windows.

Token ids are item index + 1, so that 0 is padding (STYLE.md: "index 0 is padding in sequence
models"). Sequences are right-padded: with causal attention a real token never looks at a pad
after it, so no padding mask is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tastebud.recipes.base import Int64Array, IntArray, Query, TrainingData

PAD = 0


@dataclass(frozen=True, slots=True)
class Sequences:
    """Each user's tokens oldest first: user u is ``tokens[indptr[u]:indptr[u + 1]]``;
    ``repeats`` counts the events merged into each token (1 for a lone event)."""

    indptr: Int64Array
    tokens: IntArray
    repeats: IntArray

    @property
    def lengths(self) -> Int64Array:
        return np.diff(self.indptr)


def merge_repeats(indptr: Int64Array, items: IntArray) -> Sequences:
    """Merge adjacent events on the same item within each sequence into one token.

    Args:
        indptr: ``(n_sequences + 1,)`` offsets into ``items``.
        items: item indexes, each sequence oldest first.
    """
    owner = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    starts = np.ones(len(items), dtype=bool)  # where a new token begins
    starts[1:] = (items[1:] != items[:-1]) | (owner[1:] != owner[:-1])
    first = np.flatnonzero(starts)
    repeats = np.diff(np.append(first, len(items))).astype(np.int32)
    counts = np.bincount(owner[first], minlength=len(indptr) - 1)
    merged_indptr = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(counts, out=merged_indptr[1:])
    return Sequences(merged_indptr, (items[first] + 1).astype(np.int32), repeats)


def training_sequences(data: TrainingData) -> Sequences:
    """The users' interaction tokens, repeats merged (users with no events are empty)."""
    indptr, items = data.sequences()
    return merge_repeats(indptr, items)


def query_sequences(query: Query, n_items: int) -> Sequences:
    """The queries' history tokens; items the model does not know (>= n_items, < 0) dropped."""
    lengths = np.diff(query.history_indptr)
    start = int(query.history_indptr[0])
    items = query.history_items[start : int(query.history_indptr[-1])]
    owner = np.repeat(np.arange(len(query)), lengths)
    known = (items >= 0) & (items < n_items)
    indptr = np.zeros(len(query) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner[known], minlength=len(query)), out=indptr[1:])
    return merge_repeats(indptr, items[known].astype(np.int32))


def window_bounds(lengths: Int64Array, *, size: int, stride: int) -> tuple[Int64Array, ...]:
    """``(sequence, start, stop)`` of windows of up to ``size`` tokens sliding back from each
    sequence's end by ``stride``; the oldest window starts at the sequence's start and may be
    shorter. Sequences shorter than 2 tokens (nothing to predict) get none."""
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


def windows(sequences: Sequences, *, size: int, stride: int) -> IntArray:
    """``(n_windows, size)`` right-padded token windows over every sequence (see
    :func:`window_bounds`); a window's tokens are inputs and, shifted by one, targets."""
    sequence, start, end = window_bounds(sequences.lengths, size=size, stride=stride)
    begin = sequences.indptr[sequence] + start
    stop = sequences.indptr[sequence] + end
    positions = begin[:, None] + np.arange(size)[None, :]  # (n_windows, size)
    inside = positions < stop[:, None]
    padded = np.append(sequences.tokens, PAD)  # position len(tokens) reads as padding
    out: IntArray = np.where(inside, padded[np.minimum(positions, len(sequences.tokens))], PAD)
    return out.astype(np.int32)


def last_tokens(sequences: Sequences, size: int) -> tuple[IntArray, Int64Array]:
    """Each sequence's ``size`` latest tokens, right-padded: ``(tokens (n, size), lengths)``."""
    lengths = np.minimum(sequences.lengths, size)
    begin = sequences.indptr[1:] - lengths
    positions = begin[:, None] + np.arange(size)[None, :]
    inside = np.arange(size)[None, :] < lengths[:, None]
    padded = np.append(sequences.tokens, PAD)
    out = np.where(inside, padded[np.minimum(positions, len(sequences.tokens))], PAD)
    return out.astype(np.int32), lengths
