"""Explanations: why an item was recommended, in words a person can read.

:func:`explain_items` gives each recommended item up to three *history* reasons (the user's own
items that added most to its score) and up to two *metadata* reasons (a categorical value it shares
with the user's recent items, ``GENRES=Comedy, like 4 of your last 10``). Versions that rank
without a history say how they rank instead: popularity, trending, newest (the rule engine and
the popularity recipes). The route and campaign layers add what placed an item besides the
model: the request's filter (:func:`filter_reason`) or a promotion (:func:`promotion_reason`).

History contributions are exact for models whose score is a sum over the history's items
(:class:`~tastebud.recipes.HistoryContributions`: EASE, ALS, BPR, similar-items). Any other model
that scores from a history (``sequential``, ``similar-users``) is explained by leave-one-out
ablation (:func:`ablation`): the history without each of its recent items, scored as one
multi-row query, and how far each recommended item's score falls.

Nothing here runs unless a request asks (``explain``); answers without it are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tastebud.recipes import HistoryContributions, Model, Query
from tastebud.recipes.base import FloatArray, IntArray
from tastebud.serving.rules import RULES_RECIPE
from tastebud.serving.versions import LoadedVersion

if TYPE_CHECKING:
    from tastebud.serving.recommend import Scored

MAX_HISTORY_REASONS = 3
MAX_METADATA_REASONS = 2
# A history item adding less than this share of the positive contributions is not named (the
# largest one always is).
MIN_SHARE = 0.05
METADATA_WINDOW = 10  # "like 4 of your last 10": the most recent distinct items compared
# Leave-one-out ablation removes each of the most recent distinct history items, one per query
# row, all scored in one call: the cost is about (1 + MAX_ABLATED) users' scoring. A sequential
# model of hidden 64 / max_len 128 over 3,416 items took ~70 ms on one CPU thread for 50 rows,
# ~25 ms for 20; recent items weigh most in what it predicts.
MAX_ABLATED = 20


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason an item was recommended.

    ``kind`` is ``history``, ``metadata``, ``popularity``, ``trending``, ``newest``,
    ``promotion`` or ``filter``; ``text`` says it in words. ``item_id`` and ``share``: the
    history item and its share of the positive contributions (``history``); ``field`` and
    ``value``: the shared item attribute (``metadata``); ``value`` also names the promotion or
    filter.
    """

    kind: str
    text: str
    item_id: str | None = None
    share: float | None = None
    field: str | None = None
    value: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys, keys that do not apply left out."""
        body: dict[str, Any] = {"kind": self.kind, "text": self.text}
        optional = (("itemId", self.item_id), ("share", self.share), ("field", self.field),
                    ("value", self.value))  # fmt: skip
        body |= {key: value for key, value in optional if value is not None}
        return body


# reasons that do not depend on the model ---------------------------------------------------------
def rule_reason(
    order: str, *, interactions: float | None = None, window_days: float | None = None
) -> Reason:
    """How the rule engine (or a popularity recipe) placed an item: ``popularity``,
    ``trending`` or ``newest``, with the item's interaction count when known."""
    if order == "trending":
        window = f" in the last {window_days:g} days" if window_days is not None else " recently"
        if interactions is None:
            return Reason("trending", "Trending: interactions with it are rising")
        return Reason("trending", f"Trending: {_interactions(interactions)}{window}")
    if order == "newest":
        return Reason("newest", "New: among the latest items added")
    if interactions is None:
        return Reason("popularity", "Popular: among the most interacted-with items")
    return Reason("popularity", f"Popular: {_interactions(interactions)}")


def promotion_reason(name: str, filter_name: str | None = None) -> Reason:
    """An item a promotion placed (``filter_name``: the filter its items pass)."""
    allowed = f' (items the filter "{filter_name}" allows)' if filter_name else ""
    return Reason("promotion", f'Promoted by "{name}"{allowed}', value=name)


def filter_reason(name: str) -> Reason:
    """An item the request's (or the rules') filter let through."""
    return Reason("filter", f'Allowed by the filter "{name}"', value=name)


NEW_ITEM = Reason("newest", "New: added since the model was trained")
COLD_USER = Reason("popularity", "Popular: there is no history of yours to go on yet")
FILLED = Reason("popularity", "Popular: fills the list where the model had no score")
UNTOUCHED = Reason("popularity", "Fills the list: nobody has interacted with it yet")


def _interactions(count: float) -> str:
    """``1 interaction``, ``1,204 interactions``, ``2.5 interactions`` (weighted counts)."""
    number = f"{count:,.0f}" if float(count).is_integer() else f"{count:,.1f}"
    return f"{number} interaction" + ("" if count == 1 else "s")


# the model's reasons ------------------------------------------------------------------------------
def explain_items(version: LoadedVersion, query: Query, items: IntArray) -> list[list[Reason]]:
    """Reasons for each recommended item index in ``items`` for the single-user ``query``
    (as built by serving.recommend.user_query: history indexes + event columns)."""
    targets = np.asarray(items, dtype=np.int64)
    ranking = _ranking_reasons(version, targets)
    if ranking is not None:
        return ranking
    first = query.rows(0, 1)
    recent = recent_items(first.history_items, version.model.n_items)
    if not len(recent):
        cold = [COLD_USER] if first.users[0] < 0 else []
        return [list(cold) for _ in targets]
    history = _history_reasons(version, first, targets)
    metadata = _metadata_reasons(version, recent, targets)
    return [own + shared for own, shared in zip(history, metadata, strict=True)]


def explain_results(
    version: LoadedVersion,
    query: Query,
    results: Sequence[Scored],
    *,
    filter_name: str | None = None,
    unscored: Reason | None = FILLED,
) -> list[Scored]:
    """``results`` with their reasons: the model's (:func:`explain_items`) for scored items,
    ``unscored`` for the others, then the filter's when one applied."""
    indexes = version.items.indices([result.id for result in results])
    pairs = zip(results, indexes.tolist(), strict=True)
    scored = np.array([r.score is not None and i >= 0 for r, i in pairs], dtype=bool)
    explained = iter(explain_items(version, query, indexes[scored]))
    tail = (filter_reason(filter_name),) if filter_name is not None else ()
    answer = []
    for result, has_score in zip(results, scored.tolist(), strict=True):
        own = tuple(next(explained)) if has_score else (() if unscored is None else (unscored,))
        answer.append(dataclasses.replace(result, reasons=own + tail))
    return answer


def with_promotion(result: Scored, name: str, filter_name: str | None) -> Scored:
    """A promoted item's reasons: its promotion first (which names the filter), then the model's."""
    if result.reasons is None:
        return result
    own = tuple(reason for reason in result.reasons if reason.kind != "filter")
    return dataclasses.replace(result, reasons=(promotion_reason(name, filter_name), *own))


def with_reason(result: Scored, reason: Reason) -> Scored:
    """``result`` with ``reason`` added last (when it is explained at all)."""
    if result.reasons is None:
        return result
    return dataclasses.replace(result, reasons=(*result.reasons, reason))


def _ranking_reasons(
    version: LoadedVersion, targets: npt.NDArray[np.int64]
) -> list[list[Reason]] | None:
    """The reasons of versions that rank every user alike; None for the others."""
    if version.recipe == RULES_RECIPE:
        rules = version.meta.get("rules")
        if rules is None:  # the items added since a model was trained (campaigns)
            return [[NEW_ITEM] for _ in targets]
        order, days = str(rules.get("order", "popularity")), float(rules.get("window_days", 7.0))
        counts = version.popularity  # interactions (within the window, for trending)
        reasons = []
        for target in targets.tolist():
            count = float(counts[target]) if 0 <= target < len(counts) else None
            if order == "trending" and not count:  # placed by the tie-break: all-time counts
                reasons.append([rule_reason("popularity")])
            elif order == "popularity" and not count:
                reasons.append([UNTOUCHED])
            else:
                reasons.append([rule_reason(order, interactions=count, window_days=days)])
        return reasons
    if version.recipe == "popularity-count":
        return [[rule_reason("popularity")] for _ in targets]
    if version.recipe == "trending-now":
        return [[rule_reason("trending")] for _ in targets]
    return None


def recent_items(history: IntArray, n_items: int) -> IntArray:
    """The distinct items of ``history`` (oldest first) below ``n_items``, newest first."""
    known = history[(history >= 0) & (history < n_items)][::-1]
    _, first = np.unique(known, return_index=True)
    recent: IntArray = known[np.sort(first)].astype(np.int32)
    return recent


def _history_reasons(
    version: LoadedVersion, query: Query, targets: npt.NDArray[np.int64]
) -> list[list[Reason]]:
    model = version.model
    reasons: list[list[Reason]] = [[] for _ in targets]
    valid = np.flatnonzero((targets >= 0) & (targets < model.n_items))
    if not len(valid):
        return reasons
    inside = targets[valid].astype(np.int32)
    if isinstance(model, HistoryContributions):
        held, parts = model.history_contributions(query, inside)
        exact = True
    else:
        held, parts = ablation(model, query, inside)
        exact = False
    names = version.items.ids(held.tolist())
    for position, row in zip(valid.tolist(), parts, strict=True):
        reasons[position] = _named(names, row, exact=exact)
    return reasons


def _named(names: list[str | None], contributions: FloatArray, *, exact: bool) -> list[Reason]:
    """The history items that added most to one score, as reasons (largest first)."""
    values = np.where(np.isfinite(contributions), contributions, 0.0)
    total = float(values[values > 0].sum())
    if total <= 0:
        return []
    order = np.argsort(-values, kind="stable")[:MAX_HISTORY_REASONS]
    named = []
    for rank, column in enumerate(order.tolist()):
        share = float(values[column]) / total
        name = names[column]
        if values[column] <= 0 or name is None or (rank and share < MIN_SHARE):
            break
        named.append(Reason("history", _history_text(name, share, exact=exact), item_id=name,
                            share=round(share, 3)))  # fmt: skip
    return named


def _history_text(item: str, share: float, *, exact: bool) -> str:
    if exact:
        return f"Because you interacted with {item} ({share:.0%} of the score)"
    return f"Because you interacted with {item} ({share:.0%} of what your history adds)"


def ablation(model: Model, query: Query, items: IntArray) -> tuple[IntArray, FloatArray]:
    """Leave-one-out: how far each of ``items``' scores falls without each history item.

    The first query's ``MAX_ABLATED`` most recent distinct known items are each removed (every
    occurrence, with its event columns) from one row of a multi-row query, scored in one call.

    Returns:
        The ablated items ``(H,)`` and the drops ``(len(items) x H)``; positive: the item helped.
    """
    first = query.rows(0, 1)
    history = first.history_items
    removed = recent_items(history, model.n_items)[:MAX_ABLATED]
    if not len(removed):
        return removed, np.zeros((len(items), 0), np.float32)
    keep = np.concatenate([np.ones(len(history), bool), *(history != item for item in removed)])
    rows = len(removed) + 1
    lengths = keep.reshape(rows, len(history)).sum(axis=1)
    indptr = np.zeros(rows + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])

    def repeated(column: npt.NDArray[Any] | None) -> Any:
        return None if column is None else np.tile(column, rows)[keep]

    batch = Query(
        users=np.repeat(first.users, rows), history_indptr=indptr,
        history_items=repeated(history),
        times=None if first.times is None else np.repeat(first.times, rows),
        history_timestamps=repeated(first.history_timestamps),
        history_event_types=repeated(first.history_event_types),
        event_type_names=first.event_type_names,
        history_values=repeated(first.history_values),
        contexts=None if first.contexts is None else first.contexts * rows,
    )  # fmt: skip
    scores = model.score(batch)[:, np.asarray(items, dtype=np.int64)]  # (1 + H, K)
    with np.errstate(invalid="ignore"):
        drops = scores[0][None, :] - scores[1:]
    drops = np.where(np.isfinite(drops), drops, 0.0)
    return removed, np.ascontiguousarray(drops.T, dtype=np.float32)


def _metadata_reasons(
    version: LoadedVersion, recent: IntArray, targets: npt.NDArray[np.int64]
) -> list[list[Reason]]:
    """Per target, up to ``MAX_METADATA_REASONS`` categorical values it shares with the most of
    the user's ``METADATA_WINDOW`` most recent items (at least two of them, or all when fewer);
    ties go to the value fewer items in the catalogue have."""
    features, names = version.item_features, version.meta.get("feature_names") or []
    reasons: list[list[Reason]] = [[] for _ in targets]
    if features is None or not names or features.shape[1] != len(names):
        return reasons
    window = recent[recent < features.shape[0]][:METADATA_WINDOW]
    if not len(window):
        return reasons
    features = features.tocsr()  # a no-op for loaded versions; rows are read from its arrays

    def values(item: int) -> list[int]:
        low, high = features.indptr[item], features.indptr[item + 1]
        return [int(c) for c, v in zip(features.indices[low:high], features.data[low:high],
                                       strict=True) if v > 0]  # fmt: skip

    counts = np.bincount([c for item in window.tolist() for c in values(item)],
                         minlength=len(names))  # fmt: skip
    catalogue = np.bincount(features.indices[features.data > 0], minlength=len(names))
    least = min(2, len(window))
    for position, target in enumerate(targets.tolist()):
        if not 0 <= target < features.shape[0]:
            continue
        columns = [c for c in values(target) if counts[c] >= least]
        columns.sort(key=lambda c: (-counts[c], catalogue[c], names[c]))
        for column in columns[:MAX_METADATA_REASONS]:
            name = str(names[column])
            field, _, value = name.partition("=")
            text = (f"{name}, like your last item" if len(window) == 1
                    else f"{name}, like {counts[column]} of your last {len(window)}")  # fmt: skip
            reasons[position].append(Reason("metadata", text, field=field, value=value))
    return reasons
