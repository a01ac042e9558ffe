"""Offline splits: what a model trains on, whom it is asked about, and what counts as right.

Both protocols (see ``DESIGN.md``, "Evaluation protocol") return a :class:`Split`: a model fitted
on ``train`` is scored on ``validation`` (tuning, early stopping); a model fitted on
``train_and_validation`` is scored on ``test`` (the reported numbers). Each query's history is
what the user did before the target, and ``Query.times`` holds the target's time, so a
time-aware recipe only counts earlier events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tastebud.errors import InvalidInput
from tastebud.recipes.base import Int64Array, IntArray, Query, TrainingData


@dataclass(frozen=True, slots=True)
class Targets:
    """The users scored in one phase and the items that count as right for each.

    Row i: user ``users[i]``; relevant items
    ``relevant_items[relevant_indptr[i]:relevant_indptr[i + 1]]``; request time ``times[i]``;
    query row i of ``query`` (``query.users[i]`` is -1 when the user has no history yet).
    """

    users: IntArray
    relevant_indptr: Int64Array
    relevant_items: IntArray
    times: Int64Array
    query: Query

    def __len__(self) -> int:
        return len(self.users)

    @property
    def items(self) -> IntArray:
        """The single target item of each row (leave-last-out)."""
        if len(self.relevant_items) != len(self.users):
            raise ValueError("these targets hold several relevant items per row")
        return self.relevant_items

    def relevant(self) -> list[IntArray]:
        """One array of relevant items per row."""
        return np.split(self.relevant_items, self.relevant_indptr[1:-1])


@dataclass(frozen=True, slots=True)
class Split:
    """Training data and targets for validation (fit on ``train``) and test (fit on
    ``train_and_validation``)."""

    protocol: str
    train: TrainingData
    train_and_validation: TrainingData
    validation: Targets
    test: Targets


def leave_last_out(data: TrainingData, count: int = 1) -> Split:
    """Each user's last interaction is the test target, the one before it validation.

    Users are ordered by time, ties in the data's order. Users with fewer than 3 interactions
    stay in every training set and are not scored. The validation history is the user's
    training part; the test history adds the validation interaction. A target already in the
    history stays the target (and, history being excluded from ranking, counts as a miss).

    ``count`` > 1 holds out each user's last ``count`` interactions as the test's relevant
    items ("the next ``count`` items", in time order; the first is the next item) and the
    ``count`` before them as validation, scoring users with at least ``2 * count + 1``; the
    request time is the first held-out interaction's.
    """
    if count < 1:
        raise InvalidInput(f"leave-last-out count must be at least 1, got {count}")
    order = np.lexsort((np.arange(data.size), data.timestamps, data.users))
    users = data.users[order]
    counts = np.bincount(data.users, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[users] - 1 - (np.arange(data.size) - starts[users])
    scored = counts[users] >= 2 * count + 1
    test_rows = order[scored & (from_end < count)]
    validation_rows = order[scored & (from_end >= count) & (from_end < 2 * count)]
    held = np.zeros(data.size, dtype=bool)
    held[test_rows] = True
    scored_users = np.flatnonzero(counts >= 2 * count + 1).astype(np.int32)
    # the request happens at the first held-out interaction (count 1: the target's own time)
    test_requests = order[scored & (from_end == count - 1)]
    validation_requests = order[scored & (from_end == 2 * count - 1)]
    return Split(
        protocol="leave-last-out" if count == 1 else f"leave-last-{count}-out",
        train=data.subset(~held & ~_mask(data.size, validation_rows)),
        train_and_validation=data.subset(~held),
        validation=_targets(
            data, scored_users, validation_rows, order[scored & (from_end >= 2 * count)],
            request_rows=validation_requests,
        ),
        test=_targets(
            data, scored_users, test_rows, order[scored & (from_end >= count)],
            request_rows=test_requests,
        ),
    )  # fmt: skip


def time_holdout(data: TrainingData, fraction: float = 0.1) -> Split:
    """The most recent ``fraction`` of interactions is the test set, the ``fraction`` before
    it validation (cut by position in time order, ties in the data's order).

    A user is scored in a phase when they interacted with an item in its window that is not in
    their history; the relevant set is those items (each once), the history everything the
    user did before the window, the request time their first event in the window. Users with no
    history are still scored, as cold queries (``query.users == -1``): a new user is what the
    managed service's holdout meets too, and the fallback is part of what is measured.
    """
    if not 0 < fraction < 0.5:
        raise InvalidInput(f"time-holdout fraction must lie in (0, 0.5), got {fraction}")
    n_held = max(1, round(fraction * data.size))
    if data.size - 2 * n_held < 1:
        raise InvalidInput(
            f"time-holdout needs more interactions to split off {fraction:.0%} twice; "
            f"got {data.size}"
        )
    order = np.lexsort((np.arange(data.size), data.timestamps))
    train_end, validation_end = data.size - 2 * n_held, data.size - n_held
    return Split(
        protocol="time-holdout",
        train=data.subset(~_mask(data.size, order[train_end:])),
        train_and_validation=data.subset(~_mask(data.size, order[validation_end:])),
        validation=_window_targets(data, order[:train_end], order[train_end:validation_end]),
        test=_window_targets(data, order[:validation_end], order[validation_end:]),
    )


def _mask(size: int, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
    mask = np.zeros(size, dtype=bool)
    mask[rows] = True
    return mask


def _window_targets(
    data: TrainingData, before: npt.NDArray[np.intp], window: npt.NDArray[np.intp]
) -> Targets:
    """Targets for the rows of ``window`` given the rows ``before`` it (both in time order)."""
    keys = data.users.astype(np.int64) * data.n_items + data.items
    _, first = np.unique(keys[window], return_index=True)
    candidates = window[np.sort(first)]  # each (user, item) once, at its first time
    candidates = candidates[~np.isin(keys[candidates], keys[before])]
    candidates = candidates[np.argsort(data.users[candidates], kind="stable")]
    scored_users = np.unique(data.users[candidates]).astype(np.int32)
    window_users, first_in_window = np.unique(data.users[window], return_index=True)
    requests = window[first_in_window][np.searchsorted(window_users, scored_users)]
    history = before[np.argsort(data.users[before], kind="stable")]
    history = history[np.isin(data.users[history], scored_users)]
    return _targets(data, scored_users, candidates, history, request_rows=requests)


def _targets(
    data: TrainingData,
    scored_users: IntArray,
    relevant_rows: npt.NDArray[np.intp],
    history_rows: npt.NDArray[np.intp],
    *,
    request_rows: npt.NDArray[np.intp] | None = None,
) -> Targets:
    """Targets from row numbers: ``relevant_rows`` and ``history_rows`` are grouped by user in
    ascending user order (time order within a user) and hold only ``scored_users``.
    ``request_rows`` (one per scored user; default: the single relevant row) give the request's
    time and context."""
    relevant_counts = np.bincount(data.users[relevant_rows], minlength=data.n_users)
    history_counts = np.bincount(data.users[history_rows], minlength=data.n_users)
    if request_rows is None:  # one target per user: the request happens at the target's time
        request_rows = relevant_rows
    times = data.timestamps[request_rows].astype(np.int64)
    query = Query(
        users=np.where(history_counts[scored_users] > 0, scored_users, -1).astype(np.int32),
        history_indptr=_indptr(history_counts[scored_users]),
        history_items=data.items[history_rows].astype(np.int32),
        times=times,
        history_timestamps=data.timestamps[history_rows].astype(np.int64),
        history_event_types=None if data.event_types is None else data.event_types[history_rows],
        event_type_names=data.event_type_names,
        history_values=None if data.values is None else data.values[history_rows],
        contexts=_request_contexts(data, request_rows),
    )
    return Targets(
        users=scored_users,
        relevant_indptr=_indptr(relevant_counts[scored_users]),
        relevant_items=data.items[relevant_rows].astype(np.int32),
        times=times,
        query=query,
    )


def _request_contexts(
    data: TrainingData, rows: npt.NDArray[np.intp]
) -> tuple[dict[str, str], ...] | None:
    """The context fields of each request row (``{"DEVICE": "tv"}``), as a request carries them."""
    if data.contexts is None:
        return None
    values = [name.split("=", 1)[1] for name in data.context_names]
    return tuple(
        {field: values[code] for field, code in zip(data.context_fields, codes, strict=True)
         if code >= 0}
        for codes in data.contexts[rows].tolist()
    )  # fmt: skip


def _indptr(counts: npt.NDArray[np.int64]) -> Int64Array:
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr
