"""The ``ranker`` recipe: LightGBM LambdaMART over other recipes' scores and point-in-time
features (issue 15; docs/ranking.md).

``fit`` stacks without leaking: each user's last interaction is held out as the label, the bases
are fitted on the rest, the union of their top-N (history excluded) for each user's query at the
label's time is the group, and the trees learn to put the label first. ``score`` asks the same
bases for the same candidates and lets the trees order them; other items score below every
candidate, in the first base's order. ``score_items`` gives any listed item (an ``inputList``)
the trees' score.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from tastebud.recipes.base import (
    FloatArray,
    IntArray,
    Model,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    history_window,
    load_arrays,
    save_arrays,
)
from tastebud.recipes.ranker.candidates import BaseScores, candidate_pairs, score_bases
from tastebud.recipes.ranker.config import RankerConfig
from tastebud.recipes.ranker.features import (
    ItemFacts,
    ItemLog,
    feature_names,
    pair_features,
    query_times,
)
from tastebud.recipes.ranker.stacking import (
    Groups,
    fit_bases,
    hold_out_last,
    label_grades,
    train_trees,
    training_query,
)

if TYPE_CHECKING:
    import lightgbm

_log = logging.getLogger(__name__)

TREES_FILE = "trees.txt"  # LightGBM's own text format
SCORES_PER_BATCH = 1 << 24  # base scores held at once while scoring (Q x I per base)
HISTORY_WINDOW = 200  # serving.history_length's default
# Below-candidate fill: non-candidates land in [floor - 2, floor - 1), the first base's order.
FILL_GAP = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class CandidateRows:
    """A batch's (query row, candidate item) pairs, their features, and the first base's
    (Q x I) scores, which order everything below the candidates."""

    rows: IntArray
    items: IntArray
    features: FloatArray
    first: FloatArray


class RankerModel:
    """The stacked bases, the trees, and the item facts the features read."""

    def __init__(
        self,
        config: RankerConfig,
        bases: Mapping[str, Model],
        booster: lightgbm.Booster | None,
        facts: ItemFacts,
        *,
        training: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.bases = dict(bases)
        self.booster = booster
        self.facts = facts
        self.training = training or {}
        self.n_items = int(next(iter(self.bases.values())).n_items)
        self.names = feature_names(list(self.bases), config.popularity_windows_days,
                                   config.features)  # fmt: skip

    @property
    def trees(self) -> lightgbm.Booster:
        if self.booster is None:  # only while fit builds the training rows
            raise ValueError("the ranker's trees are not trained yet")
        return self.booster

    @property
    def history_window(self) -> int:
        """The latest events every query is cut to: the widest window of the bases, at least
        ``HISTORY_WINDOW`` (the features read the history in order: category gaps, recent
        genres). A whole-history base (EASE) sees that window too; :meth:`score` cuts each
        query itself, so evaluated, trained and served scores agree."""
        windows = [history_window(model, default=HISTORY_WINDOW) for model in self.bases.values()]
        return max([HISTORY_WINDOW, *(w for w in windows if w is not None)])

    def importances(self) -> dict[str, float]:
        """Total gain of each feature's splits, largest first."""
        gains = self.trees.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.names, gains.tolist(), strict=True), key=lambda p: -p[1])
        return {name: round(float(gain), 4) for name, gain in pairs}

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): the trees' scores on each query's candidates; every other
        item below all of them, in the first base's order."""
        out = np.empty((len(query), self.n_items), dtype=np.float32)
        step = max(1, SCORES_PER_BATCH // max(1, self.n_items * len(self.bases)))
        for start in range(0, len(query), step):
            stop = min(start + step, len(query))
            out[start:stop] = self._score_batch(query.rows(start, stop))
        return out

    def _score_batch(self, query: Query) -> FloatArray:
        ranked = self.candidate_rows(query)
        return fill_below(ranked.first, ranked.rows, ranked.items, self.predict(ranked.features))

    def candidate_rows(self, query: Query) -> CandidateRows:
        """Each query's candidates and their features: what :meth:`score` asks the trees to
        order (tuning reuses them across tree settings)."""
        query = latest_events(query, self.history_window)
        scored = self._score_bases(query)
        rows, items = candidate_pairs(scored)
        features = self._features(query, scored, rows, items)
        return CandidateRows(rows, items, features, next(iter(scored.scores.values())))

    def score_items(self, query: Query, items: IntArray) -> FloatArray:
        """(len(items),): the trees' score of each listed item for the first query."""
        first = latest_events(query.rows(0, 1), self.history_window)
        scored = self._score_bases(first)
        listed = np.asarray(items, dtype=np.int32)
        rows = np.zeros(len(listed), dtype=np.int32)
        return self.predict(self._features(first, scored, rows, listed))

    def _score_bases(self, query: Query) -> BaseScores:
        return score_bases(self.bases, query, self.n_items, top_n=self.config.candidates,
                           exclude_seen=self.config.exclude_seen)  # fmt: skip

    def _features(
        self, query: Query, scored: BaseScores, rows: IntArray, items: IntArray
    ) -> FloatArray:
        declared = online_features(query, rows, items, self.config.features)
        return pair_features(self.facts, query, scored, rows, items, declared)

    def predict(self, features: FloatArray) -> FloatArray:
        """The trees' score of each row of ``features``."""
        if not len(features):
            return np.zeros(0, dtype=np.float32)
        # One thread: a request's 1,000 rows finish before a second thread would start.
        return np.asarray(self.trees.predict(features, num_threads=1), dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, model in self.bases.items():
            model.save(folder / "bases" / name)
        self.trees.save_model(str(folder / TREES_FILE))
        facts = self.facts
        meta = {
            "recipe": Ranker.name,
            "config": self.config.model_dump(mode="json"),
            "feature_names": self.names,
            "importances": self.importances(),
            "training": self.training,
            "log": {"start": facts.log.start, "span": facts.log.span, "latest": facts.log.latest},
        }
        save_arrays(folder, meta, {
            "log_keys": facts.log.keys, "item_features": facts.item_features,
            "item_created": facts.item_created,
        })  # fmt: skip


def latest_events(query: Query, window: int | None) -> Query:
    """``query`` with each history cut to its latest ``window`` events (None: unchanged)."""
    lengths = np.diff(query.history_indptr)
    if window is None or not (lengths > window).any():
        return query
    keep_from = query.history_indptr[1:] - np.minimum(lengths, window)  # per query
    rows = np.repeat(np.arange(len(query)), lengths)
    keep = np.arange(len(query.history_items)) >= keep_from[rows]
    indptr = np.zeros(len(query) + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, window), out=indptr[1:])

    def cut(column: npt.NDArray[Any] | None) -> Any:
        return None if column is None else column[keep]

    return dataclasses.replace(
        query, history_indptr=indptr, history_items=query.history_items[keep],
        history_timestamps=cut(query.history_timestamps),
        history_event_types=cut(query.history_event_types),
        history_values=cut(query.history_values),
    )  # fmt: skip


def fill_below(first: FloatArray, rows: IntArray, items: IntArray, trees: FloatArray) -> FloatArray:
    """(Q x I) scores: ``trees`` at the candidates, every other item below each row's lowest
    candidate, ordered by ``first`` (the first base's scores, min-max scaled per row)."""
    n_rows = first.shape[0]
    floor = np.zeros(n_rows, dtype=np.float32)
    if len(rows):
        lowest = np.full(n_rows, np.inf, dtype=np.float32)
        np.minimum.at(lowest, rows, trees)
        floor = np.where(np.isfinite(lowest), lowest, 0.0).astype(np.float32)
    finite = np.isfinite(first)
    low = np.where(finite, first, np.inf).min(axis=1, keepdims=True)
    high = np.where(finite, first, -np.inf).max(axis=1, keepdims=True)
    span = np.where(high > low, high - low, 1.0)
    with np.errstate(invalid="ignore"):
        scaled = np.where(finite, (first - low) / span, 0.0)  # [0, 1]
    out = (floor[:, None] - 2.0 * FILL_GAP + 0.999 * FILL_GAP * scaled).astype(np.float32)
    out[rows, items] = trees
    return out


def online_features(
    query: Query, rows: IntArray, items: IntArray, names: tuple[str, ...]
) -> FloatArray:
    """(len(rows) x len(names)) declared features of served pairs: NaN without a lookup."""
    values = np.full((len(rows), len(names)), np.nan, dtype=np.float32)
    if not names or query.feature_lookup is None:
        return values
    bounds = np.searchsorted(rows, np.arange(len(query) + 1))  # rows are grouped by query
    for row in range(len(query)):
        low, high = int(bounds[row]), int(bounds[row + 1])
        if high > low:
            got = np.asarray(query.feature_lookup(row, items[low:high], names), np.float32)
            values[low:high] = _checked(got, high - low, names)
    return values


def training_features(
    data: TrainingData, users: IntArray, items: IntArray, times: npt.NDArray[np.int64],
    names: tuple[str, ...],
) -> FloatArray:  # fmt: skip
    """(len(users) x len(names)) declared features of training pairs, as of ``times``."""
    if not names or data.feature_lookup is None:
        return np.full((len(users), len(names)), np.nan, dtype=np.float32)
    got = np.asarray(data.feature_lookup(users, items, times, names), dtype=np.float32)
    return _checked(got, len(users), names)


def _checked(values: FloatArray, rows: int, names: tuple[str, ...]) -> FloatArray:
    if values.shape != (rows, len(names)):
        raise ValueError(
            f"feature lookup returned {values.shape} for {rows} pairs x {len(names)} features"
        )
    return values


class Ranker:
    """The ``ranker`` recipe."""

    name: ClassVar[str] = "ranker"
    config_type: ClassVar[type[RecipeConfig]] = RankerConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
        fitted_bases: Mapping[str, Model] | None = None,
    ) -> RankerModel:
        """Hold out each user's last interaction, fit the bases on the rest, learn to order
        their candidates; ``fitted_bases`` (benchmarks) are bases already fitted on exactly
        that rest, with this seed.

        Raises:
            InvalidInput: no user has an interaction to hold out and one before it.
        """
        started = time.perf_counter()
        report = progress or (lambda fraction, message: None)
        settings = RankerConfig.model_validate(config.model_dump())
        held = hold_out_last(data)
        rest = data.subset(~held.mask)
        report(0.0, "fit bases")
        bases = dict(fitted_bases) if fitted_bases is not None else fit_bases(
            rest, settings, seed=seed, progress=_scaled(report, 0.0, 0.6))  # fmt: skip
        facts = ItemFacts(ItemLog.from_data(data), data.item_features, data.item_created,
                          settings.popularity_windows_days)  # fmt: skip
        model = RankerModel(settings, bases, None, facts)  # no trees yet: builds the rows
        groups = build_groups(model, data, rest, held.rows, settings, report)
        report(0.8, "train trees")
        booster, trees = train_trees(groups, model.names, settings, seed=seed)
        if settings.refit_bases:
            report(0.85, "refit bases on all data")
            bases = fit_bases(data, settings, seed=seed, progress=_scaled(report, 0.85, 1.0))
        seconds = time.perf_counter() - started
        training = {**trees, "groups": groups.summary(), "seconds": round(seconds, 2)}
        fitted = RankerModel(settings, bases, booster, facts, training=training)
        _log.info(
            "fit done recipe=ranker users=%d items=%d groups=%d pairs=%d trees=%d seconds=%.1f",
            data.n_users, data.n_items, groups.n_groups, groups.n_pairs,
            booster.num_trees(), seconds,
        )  # fmt: skip
        report(1.0, "done")
        return fitted

    def load(self, folder: Path) -> RankerModel:
        """Read a model written by :meth:`RankerModel.save`."""
        import lightgbm

        from tastebud.recipes import get_recipe

        meta, arrays = load_arrays(folder)
        config = RankerConfig.model_validate(meta["config"])
        config = config.model_copy(update={"bases": _saved_order(config, meta["feature_names"])})
        bases = {name: get_recipe(spec.recipe).load(folder / "bases" / name)
                 for name, spec in config.bases.items()}  # fmt: skip
        booster = lightgbm.Booster(model_file=str(folder / TREES_FILE))
        n_items = int(next(iter(bases.values())).n_items)
        log = ItemLog.from_keys(np.asarray(arrays["log_keys"], np.int64), n_items=n_items,
                                **meta["log"])  # fmt: skip
        facts = ItemFacts(log, arrays.get("item_features"), arrays.get("item_created"),
                          config.popularity_windows_days)  # fmt: skip
        model = RankerModel(config, bases, booster, facts, training=meta.get("training"))
        if model.names != meta["feature_names"]:
            raise ValueError(f"{folder}: feature columns differ from this tastebud's")
        return model


def _saved_order(config: RankerConfig, names: list[str]) -> dict[str, Any]:
    """``config.bases`` in the order of the saved feature columns (``B.score``, ``B.rank``,
    ``B.gap`` per base): model.json's keys come back sorted, but the first base is the one that
    orders the non-candidates, and the trees read the columns by position."""
    order = [name.split(".", 1)[0] for name in names[: 3 * len(config.bases) : 3]]
    if sorted(order) != sorted(config.bases):
        return dict(config.bases)  # not this config's columns: the check after loading says so
    return {name: config.bases[name] for name in order}


def build_groups(
    model: RankerModel, data: TrainingData, rest: TrainingData, label_rows: npt.NDArray[np.intp],
    settings: RankerConfig, report: ProgressFn,
) -> Groups:  # fmt: skip
    """Every label user's candidates as one LightGBM group: features, graded labels; groups
    whose label is not among the candidates teach nothing and are dropped."""
    query, users = training_query(rest, data, label_rows)
    query = latest_events(query, model.history_window)
    labels, grades = data.items[label_rows], label_grades(data, label_rows, settings)
    impressions = _impressions(data, users) if settings.impression_negatives else None
    step = max(1, SCORES_PER_BATCH // max(1, data.n_items * len(model.bases)))
    parts = Groups.collector()
    for start in range(0, len(query), step):
        stop = min(start + step, len(query))
        batch = query.rows(start, stop)
        scored = model._score_bases(batch)
        extra = None if impressions is None else impressions[start:stop].toarray() > 0
        rows, items = candidate_pairs(scored, extra)
        label = (items == labels[start:stop][rows]).astype(np.int32) * grades[start:stop][rows]
        keep = np.isin(rows, np.unique(rows[label > 0]))
        rows, items, label = rows[keep], items[keep], label[keep]
        times = query_times(batch, model.facts.log)[rows]
        declared = training_features(data, users[start:stop][rows], items, times,
                                     settings.features)  # fmt: skip
        features = pair_features(model.facts, batch, scored, rows, items, declared)
        parts.add(rows + start, features, label, candidates=scored.in_top().sum(axis=1))
        report(0.6 + 0.2 * stop / len(query), f"candidates for {stop} of {len(query)} users")
    return parts.done()


def _impressions(data: TrainingData, users: IntArray) -> Any:
    """(len(users) x I) CSR of each label user's impressions."""
    import scipy.sparse as sp

    shown = sp.csr_matrix(
        (np.ones(len(data.negative_users), np.float32), (data.negative_users, data.negative_items)),
        shape=(data.n_users, data.n_items),
    )
    return shown[users]


def _scaled(report: ProgressFn, low: float, high: float) -> Callable[[float, str], None]:
    def scaled(fraction: float, message: str) -> None:
        report(low + (high - low) * min(max(fraction, 0.0), 1.0), message)

    return scaled
