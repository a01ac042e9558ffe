"""Answer requests from a loaded solution version: exclusion, top-k and fallback, written once.

Recipes only score. Here scores become answers: items already in the user's history are excluded
(unless asked otherwise), deleted ids are never returned, a filter's :class:`Selection` masks out
what it does not allow before top-k (so an answer still holds ``k`` results when ``k`` pass),
top-k is an ``argpartition``, and what the model cannot answer falls back to the version's
popularity order (filtered the same way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tastebud.errors import InvalidInput, NotFound
from tastebud.filters import Selection
from tastebud.recipes import ItemSimilarity, Query, UserAffinity, UserSimilarity
from tastebud.recipes.base import MAX_HORIZON, FloatArray, IntArray
from tastebud.recipes.shortlists import Shortlist
from tastebud.recipes.topk import best
from tastebud.serving.explain import Reason
from tastebud.serving.nearest import UserVectors
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Event

MAX_RESULTS = 500
MAX_INPUT_LIST = 1_000  # items one personalized-ranking request may ask to order (issue 15)


@dataclass(frozen=True, slots=True)
class Scored:
    id: str
    score: float | None
    reasons: tuple[Reason, ...] | None = None  # only when the request asked for explanations


def top_k(
    scores: FloatArray,
    k: int,
    *,
    exclude: IntArray | None = None,
    candidates: IntArray | None = None,
) -> IntArray:
    """Indexes of the ``k`` best finite scores, best first. Excluded indexes never appear; with
    ``candidates`` (sorted indexes, e.g. what a filter allows) only those can."""
    if candidates is None:
        chosen = np.array(scores, dtype=np.float32)
        if exclude is not None and len(exclude):
            chosen[exclude] = -np.inf
        return best(chosen, k)
    chosen = np.asarray(scores, dtype=np.float32)[candidates]  # a copy of the candidates only
    if exclude is not None and len(exclude) and len(candidates):
        at = np.searchsorted(candidates, exclude)
        inside = at < len(candidates)
        at = at[inside]
        chosen[at[candidates[at] == exclude[inside]]] = -np.inf
    picked: IntArray = candidates[best(chosen, k)].astype(np.int32)
    return picked


def check_k(k: int) -> int:
    if not 1 <= k <= MAX_RESULTS:
        raise InvalidInput(f"numResults: expected 1 to {MAX_RESULTS}, got {k}")
    return k


def check_horizon(version: LoadedVersion, horizon: object) -> int:
    """``horizon`` (the actions ahead an answer ranks for) as an int the version can answer:
    1 for every recipe; up to its ``predict_next`` for a :class:`ScoresHorizon` model."""
    if isinstance(horizon, bool) or not isinstance(horizon, int):
        raise InvalidInput(f"horizon: expected an integer, got {horizon!r}")
    if not 1 <= horizon <= MAX_HORIZON:
        raise InvalidInput(f"horizon: expected 1 to {MAX_HORIZON}, got {horizon}")
    predict_next = getattr(version.model, "predict_next", 1)
    if horizon > predict_next:
        learned = (
            f"learned the next {predict_next} items (predictNext={predict_next})"
            if hasattr(version.model, "score_horizon")
            else f"(recipe '{version.recipe}') ranks for the next action only"
        )
        raise InvalidInput(
            f"horizon {horizon}: version {version.id} {learned}; ask for horizon <= "
            f"{predict_next}, or train the sequential recipe with predictNext >= {horizon}"
        )
    return horizon


def horizon_scores(version: LoadedVersion, query: Query, horizon: int) -> FloatArray:
    """The first query's scores for the next ``horizon`` actions (a "next session" slate);
    horizon 1: the model's ordinary scores."""
    if horizon == 1:
        row: FloatArray = version.model.score(query)[0]
        return row
    slate: FloatArray = version.model.score_horizon(query, horizon)[0]  # type: ignore[attr-defined]
    return slate


def user_query(
    version: LoadedVersion,
    user_id: str | None,
    history: Sequence[str],
    history_indexes: IntArray | None = None,
    *,
    events: Sequence[Event] | None = None,
    context: Mapping[str, str] | None = None,
) -> Query:
    """The model's view of a user: its index (-1 if new) and its known history items
    (``history_indexes``: the version's indexes of ``history``, when already looked up).

    ``events`` (the user's latest events, oldest first) give the history's event types, values
    and times; without ``history`` their items are the history, with it they must match it one
    to one. ``context`` is the request's context (``{"DEVICE": "tv"}``). Items the version does
    not know are dropped from both alike.

    Raises:
        InvalidInput: ``events`` and ``history`` differ in length.
    """
    if events is not None and not history:
        history = [event.item_id for event in events]
    if events is not None and len(events) != len(history):
        raise InvalidInput(f"events: {len(events)} given for a history of {len(history)} items")
    user = version.users.get(user_id) if user_id is not None else -1
    items = version.items.indices(history) if history_indexes is None else history_indexes
    known = items >= 0
    if events is None:
        return Query.single(user, items[known], context=context)
    kept = [event for event, keep in zip(events, known.tolist(), strict=True) if keep]
    return Query.single(
        user, items[known], context=context,
        timestamps=[event.timestamp for event in kept],
        event_types=[event.event_type for event in kept],
        values=[event.event_value for event in kept],
    )  # fmt: skip


def recommend_items(
    version: LoadedVersion,
    *,
    user_id: str | None,
    history: Sequence[str] = (),
    k: int = 25,
    exclude_seen: bool = True,
    selection: Selection | None = None,
    history_indexes: IntArray | None = None,
    events: Sequence[Event] | None = None,
    context: Mapping[str, str] | None = None,
) -> list[Scored]:
    """Items for a user. A user with no known history gets the model's cold answer (popularity
    for most recipes); ``selection`` (a compiled filter's answer) limits the candidates.
    ``events`` and ``context`` feed the models that read them (see :func:`user_query`)."""
    query = user_query(version, user_id, history, history_indexes, events=events, context=context)
    scores = version.model.score(query)[0]
    exclude = query.history_items if exclude_seen else None
    return answer_from_scores(version, scores, check_k(k), exclude, selection)


def rank_items(
    version: LoadedVersion,
    *,
    user_id: str | None,
    history: Sequence[str],
    item_ids: Sequence[str],
    selection: Selection | None = None,
    history_indexes: IntArray | None = None,
    events: Sequence[Event] | None = None,
    context: Mapping[str, str] | None = None,
) -> list[Scored]:
    """Order ``item_ids`` for the user, best first. Items the version does not know are kept,
    after the known ones and in their input order, with no score. Items a ``selection`` does
    not allow are dropped from the list. ``events`` and ``context``: see :func:`user_query`."""
    check_item_list(item_ids)
    query = user_query(version, user_id, history, history_indexes, events=events, context=context)
    indexes = version.items.indices(item_ids)
    scores = list_scores(version, query, item_ids, indexes)
    return rank_by_scores(version, scores, item_ids, selection, indexes)


def check_item_list(item_ids: Sequence[str]) -> None:
    if len(item_ids) > MAX_INPUT_LIST:
        raise InvalidInput(f"inputList: at most {MAX_INPUT_LIST} items, got {len(item_ids)}")
    if len(set(item_ids)) != len(item_ids):
        raise InvalidInput("inputList: item ids must be unique")


def list_scores(
    version: LoadedVersion, query: Query, item_ids: Sequence[str], indexes: IntArray | None = None
) -> FloatArray:
    """The first query's scores for ordering ``item_ids``: the model's row, or, for a model that
    scores given items itself (:class:`ScoresItems`, the learned ranker), the listed items' own
    scores (NaN elsewhere), so every listed item is ranked by the model and not only those its
    candidate generation would have picked. ``indexes``: the version's indexes of ``item_ids``,
    when already looked up."""
    model = version.model
    if not hasattr(model, "score_items"):  # hasattr: a runtime protocol check costs ~80 µs
        row: FloatArray = model.score(query)[0]
        return row
    if indexes is None:
        indexes = version.items.indices(item_ids)
    known = indexes[indexes >= 0].astype(np.int32)
    scores = np.full(model.n_items, np.nan, dtype=np.float32)
    scores[known] = model.score_items(query, known)
    return scores


def rank_by_scores(
    version: LoadedVersion,
    scores: FloatArray,
    item_ids: Sequence[str],
    selection: Selection | None = None,
    indexes: IntArray | None = None,
) -> list[Scored]:
    """``item_ids`` ordered by one user's ``scores`` (see :func:`rank_items`); equal scores keep
    their input order, NaN ones go last. ``indexes``: the version's indexes of ``item_ids``,
    when already looked up. Sorted by numpy: 1,000 listed items took ~1 ms as Python tuples."""
    if indexes is None:
        indexes = version.items.indices(item_ids)
    if selection is not None:
        passed = np.asarray(selection.permits(item_ids), dtype=np.bool_)
        item_ids = [item for item, keep in zip(item_ids, passed.tolist(), strict=True) if keep]
        indexes = indexes[passed]
    positions = np.flatnonzero(indexes >= 0)
    values = scores[indexes[positions]]
    order = np.lexsort((positions, -values))  # best first, then input order
    best = zip(positions[order].tolist(), values[order].tolist(), strict=True)
    ranked = [Scored(item_ids[p], s) for p, s in best]
    return ranked + [Scored(item_ids[p], None) for p in np.flatnonzero(indexes < 0).tolist()]


def similar_items(
    version: LoadedVersion, *, item_id: str, k: int = 25, selection: Selection | None = None
) -> list[Scored]:
    """Items like ``item_id``; an item the version never saw gets the popular items."""
    model = version.model
    if not isinstance(model, ItemSimilarity):
        raise InvalidInput(f"recipe {version.recipe!r} does not answer similar items")
    anchor = version.items.get(item_id)
    if anchor < 0:
        scores = version.popularity
        exclude = None
    else:
        scores = model.similar_items(np.array([anchor], dtype=np.int32))[0]
        exclude = np.array([anchor], dtype=np.int32)
    return answer_from_scores(version, scores, check_k(k), exclude, selection)


def similar_users(
    version: LoadedVersion, *, user_id: str, history: Sequence[str] = (), k: int = 25
) -> list[Scored]:
    """People like ``user_id`` (never the user itself)."""
    model = version.model
    if not isinstance(model, UserSimilarity):
        raise InvalidInput(f"recipe {version.recipe!r} does not answer similar users")
    query = user_query(version, user_id, history)
    if query.users[0] < 0 and not len(query.history_items):
        raise NotFound(f"user {user_id!r} has no interactions this version knows")
    scores = model.similar_users(query)[0]
    exclude = np.concatenate([query.users[query.users >= 0], version.deleted_users])
    return _scored(version.users.ids(best := top_k(scores, check_k(k), exclude=exclude)),
                   scores[best])  # fmt: skip


def users_for_item(
    version: LoadedVersion,
    *,
    item_id: str | None = None,
    attribute: str | None = None,
    attributes: Sequence[str] | None = None,
    k: int = 100,
    selection: Selection | None = None,
) -> list[Scored]:
    """The users most likely to want ``item_id``, or any item with ``attribute`` (``FIELD=value``,
    e.g. ``GENRES=Comedy``; ``attributes``: items with all of them): the basis of a segment,
    limited by a ``UserID`` filter's ``selection``."""
    model = version.model
    if not isinstance(model, UserAffinity):
        raise InvalidInput(f"recipe {version.recipe!r} does not answer users for an item")
    wanted = [attribute] if attribute is not None else list(attributes or ())
    if (item_id is None) == (not wanted):
        raise InvalidInput("give exactly one of itemId or attribute")
    if item_id is not None:
        anchor = version.items.get(item_id)
        if anchor < 0:
            raise NotFound(f"item {item_id!r} is unknown to solution version {version.id!r}")
        items = np.array([anchor], dtype=np.int32)
    else:
        items = _items_with(version, wanted[0])
        for other in wanted[1:]:
            items = np.intersect1d(items, _items_with(version, other)).astype(np.int32)
        if not len(items):
            raise NotFound(f"no item has all of {', '.join(wanted)}")
    scores = np.zeros(model.n_users, dtype=np.float32)
    for start in range(0, len(items), 256):  # bounded memory for common attribute values
        scores += model.users_for_items(items[start : start + 256]).sum(axis=0)
    scores /= len(items)
    candidates, blocked = (None, None) if selection is None else selection.first(len(scores))
    excluded = version.deleted_users if blocked is None else np.concatenate(
        [version.deleted_users, blocked])  # fmt: skip
    best = top_k(scores, check_k(k), exclude=excluded, candidates=candidates)
    return _scored(version.users.ids(best), scores[best])


def shortlisted_items(
    version: LoadedVersion,
    query: Query,
    *,
    k: int,
    seen: IntArray | None = None,
    selection: Selection | None = None,
) -> list[Scored] | None:
    """Top-k from the user's shortlist (``recipes/shortlists.py``) when it gives what the full
    scan would: seen items excluded, at least ``k`` items left after ``seen``, deleted items
    and the filter, the k-th scoring strictly above the shortlist's floor (what any other item
    can score). None otherwise (or without one)."""
    lookup = getattr(version.model, "shortlist", None)
    found: Shortlist | None = lookup(query) if lookup is not None and seen is not None else None
    if found is None or seen is None:
        return None
    items, scores = found.items, found.scores
    n_items = version.model.n_items
    # Masks over the catalogue: a few µs, where np.isin sorted or hashed every list (~1 ms).
    blocked = np.zeros(n_items, np.bool_)
    blocked[version.deleted_items] = True
    blocked[seen] = True
    keep = np.isfinite(scores)
    if selection is not None:
        candidates, excluded = selection.first(n_items)
        blocked[excluded] = True
        if candidates is not None:
            allowed = np.zeros(n_items, np.bool_)
            allowed[candidates] = True
            keep &= allowed[items]
    keep &= ~blocked[items]
    kept = np.flatnonzero(keep)[:k]
    if len(kept) < k or not scores[kept[-1]] > found.floor:
        return None
    return _scored(version.items.ids(items[kept]), scores[kept])


def note_full_scan(version: LoadedVersion, query: Query, scores: FloatArray) -> None:
    """Tell a model with shortlists that a user's query was scored in full (``scores``): it
    keeps the user's best items to answer the next requests from (``recipes/shortlists.py``)."""
    scanned = getattr(version.model, "scanned", None)
    if scanned is not None:
        scanned(query, scores)


def nearest_items(
    version: LoadedVersion,
    query: Query,
    *,
    k: int,
    exclude_seen: bool = True,
    seen: IntArray | None = None,
    selection: Selection | None = None,
) -> list[Scored] | None:
    """Top-k through the version's approximate index (``version.nearest``), or None when the
    exact path must answer: no index, a model that does not score by inner product for this
    query, a filter allowing under half the catalogue, or too few items left after exclusions
    even with oversampling. ``seen``: the items to exclude (default: the query's history)."""
    index, model = version.nearest, version.model
    if index is None or not isinstance(model, UserVectors):
        return None
    vectors = model.user_vectors(query)
    if vectors is None:
        return None
    allowed = np.ones(index.n_items, dtype=np.bool_)  # a mask: cheaper than set lookups
    allowed[version.deleted_items] = False
    excluded = query.history_items if seen is None else seen
    if exclude_seen:
        allowed[excluded] = False
    if selection is not None:
        candidates, blocked = selection.first(index.n_items)
        if candidates is not None:
            if len(candidates) < index.n_items // 2:
                return None
            permitted = np.zeros(index.n_items, dtype=np.bool_)
            permitted[candidates] = True
            allowed &= permitted
        allowed[blocked] = False
    wanted = min(index.n_items, 4 * check_k(k) + len(excluded) + 64)
    for _ in range(2):
        ids, scores = index.search(vectors[0], wanted)
        keep = allowed[ids]
        if keep.sum() >= k:
            best = ids[keep][:k]
            return _scored(version.items.ids(best), scores[keep][:k])
        if wanted == index.n_items:  # the probed clusters hold too few: the exact path answers
            return None
        wanted = min(index.n_items, wanted * 8)
    return None


# helpers ------------------------------------------------------------------------------------------
def answer_from_scores(
    version: LoadedVersion,
    scores: FloatArray,
    k: int,
    exclude: IntArray | None,
    selection: Selection | None = None,
) -> list[Scored]:
    excluded = version.deleted_items
    if exclude is not None:
        excluded = np.concatenate([excluded, exclude.astype(np.int32)])
    candidates = None
    if selection is not None:
        candidates, blocked = selection.first(len(scores))
        excluded = np.concatenate([excluded, blocked])
    best = top_k(scores, k, exclude=excluded, candidates=candidates)
    answer = _scored(version.items.ids(best), scores[best])
    if len(answer) < k:  # the model had too few finite scores: fill from popularity
        fill = top_k(version.popularity, k - len(answer), exclude=np.concatenate([excluded, best]),
                     candidates=candidates)  # fmt: skip
        answer += [Scored(str(item), None) for item in version.items.ids(fill)]
    return answer


def _scored(ids: Sequence[str | None], scores: FloatArray) -> list[Scored]:
    return [Scored(str(i), float(s)) for i, s in zip(ids, scores, strict=True)]


def _items_with(version: LoadedVersion, attribute: str) -> IntArray:
    features = version.meta.get("feature_names", [])
    if attribute not in features:
        raise NotFound(f"attribute {attribute!r} is not an item feature of this version")
    matrix = version.item_features
    if matrix is None:
        raise NotFound(f"solution version {version.id!r} was trained without item metadata")
    column = matrix.tocsc()[:, features.index(attribute)]
    items: IntArray = column.nonzero()[0].astype(np.int32)
    return items
