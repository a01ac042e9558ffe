"""Answers for a chunk of batch lines: one matrix product for all their users, then the same
per-row steps as the real-time path (seen-item exclusion, filters, top-k, fallback), so a batch
answer equals the real-time answer of the same version for the same history: the same scoring
window, filter events and seen items (see ``serving/history.py``), read for the whole chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tastebud.batch.formats import LineRequest
from tastebud.errors import TastebudError
from tastebud.recipes import ItemSimilarity, Query, history_window
from tastebud.recipes.base import FloatArray, IntArray
from tastebud.serving.explain import explain_results
from tastebud.serving.history import seen_from_store
from tastebud.serving.recommend import (
    Scored,
    answer_from_scores,
    check_item_list,
    check_k,
    list_scores,
    nearest_items,
    rank_by_scores,
    users_for_item,
)
from tastebud.serving.service import Recommender
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Event

_log = logging.getLogger(__name__)

Answered = tuple[dict[str, Any] | None, str | None]  # (output, error)
SCORES_PER_CHUNK = 1 << 25  # floats of one chunk's score matrix (128 MiB)


@dataclass(frozen=True, slots=True)
class BatchOptions:
    num_results: int = 25
    filter_name: str | None = None
    explain: bool = False  # each item gets its reasons (as with ``explain: true`` in real time)


def chunk_rows(n_items: int) -> int:
    """How many lines to score per matrix product for a catalogue of ``n_items``."""
    return int(max(16, min(1024, SCORES_PER_CHUNK // max(n_items, 1))))


class ChunkScorer:
    """Answers chunks of lines from one version for one group."""

    def __init__(
        self, recommender: Recommender, group: str, version_id: str, options: BatchOptions
    ) -> None:
        self.recommender = recommender
        self.group = group
        self.version_id = version_id
        self.options = options
        check_k(options.num_results)

    def version(self) -> LoadedVersion:
        return self.recommender.version_for(self.group, {"version_id": self.version_id})

    def recommend(self, requests: Sequence[LineRequest]) -> list[Answered]:
        """Items for users, ranked lists and similar items, in the order given."""
        version = self.version()
        answers: list[Answered] = [(None, None)] * len(requests)
        by_user = [i for i, r in enumerate(requests) if r.user_id is not None]
        for i, answer in zip(by_user, self._for_users(version, [requests[i] for i in by_user]),
                             strict=True):  # fmt: skip
            answers[i] = answer
        by_item = [i for i, r in enumerate(requests) if r.user_id is None]
        for i, answer in zip(by_item, self._similar(version, [requests[i] for i in by_item]),
                             strict=True):  # fmt: skip
            answers[i] = answer
        return answers

    def segment(self, requests: Sequence[LineRequest]) -> list[Answered]:
        """The users most likely to want each line's item or attribute values."""
        version = self.version()
        return [_guarded(lambda r=r: self._segment_one(version, r)) for r in requests]

    # users ------------------------------------------------------------------------------------
    def _for_users(self, version: LoadedVersion, requests: Sequence[LineRequest]) -> list[Answered]:
        if not requests:
            return []
        store, limit = self.recommender.store, self.recommender.settings.serving.history_length
        user_ids = [str(r.user_id) for r in requests]
        lookup = self.recommender.item_lookup(self.group, version)
        seen = seen_by_user(store.seen_items(self.group, user_ids), lookup)
        query = history_query(self.recommender, self.group, version, requests, seen)
        scores = version.model.score(query)
        events: dict[str, list[Event]] = {}
        if self.options.filter_name is not None:  # filters read the events themselves
            events = store.recent_events_of(self.group, user_ids, limit)
        nothing = np.zeros(0, np.int32)
        return [
            _guarded(lambda row=row, r=r: self._user_answer(
                version, r, query.rows(row, row + 1), scores[row], events.get(str(r.user_id), []),
                seen.get(str(r.user_id), nothing)))
            for row, r in enumerate(requests)
        ]  # fmt: skip

    def _user_answer(
        self, version: LoadedVersion, request: LineRequest, query: Query, scores: FloatArray,
        events: list[Event], seen: IntArray,
    ) -> dict[str, Any]:  # fmt: skip
        selection = self.recommender.select(
            self.group, version, self.options.filter_name, request.filter_values,
            user_id=request.user_id, events=events,
            event_items=version.items.indices([e.item_id for e in events]),
        )  # fmt: skip
        filter_name = self.options.filter_name
        if request.item_list is not None:
            check_item_list(request.item_list)
            if hasattr(version.model, "score_items"):  # the ranker scores listed items itself
                scores = list_scores(version, query, request.item_list)
            ranked = rank_by_scores(version, scores, request.item_list, selection)
            if self.options.explain:
                ranked = explain_results(version, query, ranked, filter_name=filter_name,
                                         unscored=None)  # fmt: skip
            return _items_output(ranked, key="itemList")
        k = self.options.num_results
        items = None
        if version.nearest is not None:  # as the real-time path: the approximate index first
            items = nearest_items(version, query, k=k, seen=seen, selection=selection)
        if items is None:
            items = answer_from_scores(version, scores, k, seen, selection)
        if self.options.explain:
            items = explain_results(version, query, items, filter_name=filter_name)
        return _items_output(items)

    # items ------------------------------------------------------------------------------------
    def _similar(self, version: LoadedVersion, requests: Sequence[LineRequest]) -> list[Answered]:
        if not requests:
            return []
        model = version.model
        if not isinstance(model, ItemSimilarity):
            problem = f"recipe {version.recipe!r} does not answer similar items (itemId lines)"
            return [(None, problem)] * len(requests)
        anchors = version.items.indices([str(r.item_id) for r in requests])
        known = np.flatnonzero(anchors >= 0)
        scores = model.similar_items(anchors[known]) if len(known) else None
        row_of = {int(i): row for row, i in enumerate(known)}
        answers = []
        for i, request in enumerate(requests):
            if i in row_of and scores is not None:
                row, exclude = scores[row_of[i]], anchors[i : i + 1]
            else:  # an item the version never saw: popular items, as in real time
                row, exclude = version.popularity, None
            answers.append(_guarded(lambda r=request, s=row, x=exclude: self._similar_answer(
                version, r, s, x)))  # fmt: skip
        return answers

    def _similar_answer(
        self, version: LoadedVersion, request: LineRequest, scores: FloatArray,
        exclude: IntArray | None,
    ) -> dict[str, Any]:  # fmt: skip
        selection = None
        if self.options.filter_name is not None or request.filter_values:
            selection = self.recommender.select(
                self.group, version, self.options.filter_name, request.filter_values,
                item_id=request.item_id,
            )  # fmt: skip
        items = answer_from_scores(version, scores, self.options.num_results, exclude, selection)
        return _items_output(items)

    # segments ---------------------------------------------------------------------------------
    def _segment_one(self, version: LoadedVersion, request: LineRequest) -> dict[str, Any]:
        selection = self.recommender.select(
            self.group, version, self.options.filter_name, request.filter_values, kind="users"
        )
        if request.attributes is not None:
            users = users_for_item(version, attributes=request.attributes,
                                   k=self.options.num_results, selection=selection)  # fmt: skip
        else:
            users = users_for_item(version, item_id=request.item_id,
                                   k=self.options.num_results, selection=selection)  # fmt: skip
        return {"usersList": [s.id for s in users], "scores": [s.score for s in users]}


def history_query(
    recommender: Recommender, group: str, version: LoadedVersion,
    requests: Sequence[LineRequest], seen: dict[str, IntArray] | None = None,
) -> Query:  # fmt: skip
    """One query row per request, from its user's history as real time reads it (the model's
    window, or every ``seen`` item (:func:`seen_by_user`; read here when None))."""
    window = history_window(version.model, default=recommender.settings.serving.history_length)
    user_ids = [str(r.user_id) for r in requests]
    lookup = recommender.item_lookup(group, version)
    if window is None:  # the whole history as a set of items, as in real time
        if seen is None:
            seen = seen_by_user(recommender.store.seen_items(group, user_ids), lookup)
        return seen_query(version, requests, seen)
    if window == 0:  # a model that scores from no history
        return seen_query(version, requests, {})
    frame = recommender.store.latest_interactions(group, user_ids, window)
    return users_query(version, requests, frame, lookup)


def seen_by_user(frame: pl.DataFrame, lookup: IntArray) -> dict[str, IntArray]:
    """Each user's seen items (``frame``: ``seen_items``) as sorted known version indexes."""
    if frame.is_empty():
        return {}
    users = frame["user_id"].to_numpy()
    items = frame["item_index"].to_numpy().astype(np.int32)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])  # sorted by user
    return {
        str(users[start]): seen_from_store(items[start:stop], lookup)
        for start, stop in zip(starts, [*starts[1:], len(users)], strict=True)
    }


def seen_query(
    version: LoadedVersion, requests: Sequence[LineRequest], seen: dict[str, IntArray]
) -> Query:
    """One query row per request whose history is the user's seen items, as the real-time
    path builds it for a whole-history model (no event columns)."""
    nothing = np.zeros(0, np.int32)
    histories = [seen.get(str(r.user_id), nothing) for r in requests]
    indptr = np.zeros(len(requests) + 1, np.int64)
    np.cumsum([len(h) for h in histories], out=indptr[1:])
    return Query(
        users=version.users.indices(str(r.user_id) for r in requests),
        history_indptr=indptr,
        history_items=np.concatenate([nothing, *histories]).astype(np.int32),
        contexts=_contexts(requests),
    )


def _contexts(requests: Sequence[LineRequest]) -> tuple[dict[str, str], ...] | None:
    """Each line's request context, or None when no line has one (as in real time)."""
    if all(r.context is None for r in requests):
        return None
    return tuple(dict(r.context or {}) for r in requests)


def users_query(
    version: LoadedVersion, requests: Sequence[LineRequest], frame: pl.DataFrame,
    item_lookup: IntArray,
) -> Query:  # fmt: skip
    """One query row per request, as :func:`~tastebud.serving.recommend.user_query` builds it
    from the user's latest events (``frame``: ``latest_interactions``), without a Python
    object per event: items the version does not know are dropped with their event columns."""
    spans = frame.with_row_index("row").group_by("user_id").agg(
        pl.col("row").first().alias("start"), pl.len().alias("count"))  # fmt: skip
    span = dict(zip(spans["user_id"].to_list(),
                    zip(spans["start"].to_list(), spans["count"].to_list(), strict=True),
                    strict=True))  # fmt: skip
    counts = np.array([span.get(str(r.user_id), (0, 0))[1] for r in requests], np.int64)
    starts = np.array([span.get(str(r.user_id), (0, 0))[0] for r in requests], np.int64)
    rows = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    stored = frame["item_index"].to_numpy()[rows].astype(np.int64)
    items = item_lookup[np.where((stored >= 0) & (stored < len(item_lookup)), stored, -1)]
    known = items >= 0
    owner = np.repeat(np.arange(len(requests)), counts)[known]
    indptr = np.zeros(len(requests) + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=len(requests)), out=indptr[1:])
    kept = rows[known]
    types = frame["event_type"].gather(kept)
    names = tuple(sorted(types.drop_nulls().unique().to_list()))
    codes = types.replace_strict({n: c for c, n in enumerate(names)}, default=-1,
                                 return_dtype=pl.Int32)  # fmt: skip
    return Query(
        users=version.users.indices(str(r.user_id) for r in requests),
        history_indptr=indptr,
        history_items=items[known].astype(np.int32),
        history_timestamps=frame["timestamp"].to_numpy()[kept].astype(np.int64),
        history_event_types=codes.fill_null(-1).to_numpy().astype(np.int32),
        event_type_names=names,
        history_values=frame["event_value"].fill_null(np.nan).to_numpy()[kept].astype(np.float32),
        contexts=_contexts(requests),
    )


def _items_output(items: list[Scored], *, key: str = "recommendedItems") -> dict[str, Any]:
    output: dict[str, Any] = {key: [s.id for s in items], "scores": [s.score for s in items]}
    if any(s.reasons is not None for s in items):  # parallel to the items, when explained
        output["reasons"] = [[r.as_dict() for r in s.reasons or ()] for s in items]
    return output


def _guarded(answer: Any) -> Answered:
    """A line's answer, or its error: one bad line never stops the job."""
    try:
        return answer(), None
    except TastebudError as error:
        return None, error.message
    except Exception as error:  # a bug or a broken model: counted against the error budget
        _log.exception("batch line failed")
        return None, f"internal error: {error}"
