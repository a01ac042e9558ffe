"""The recipe protocol and the arrays that pass between the store, recipes and serving.

A recipe fits a :class:`Model` from :class:`TrainingData`; a model only *scores*. Excluding seen
items, filters, top-k and fallbacks are written once, in ``serving/`` and ``evaluation/``.
Everything inside is a dense index: users ``0..n_users-1``, items ``0..n_items-1``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from tastebud.recipes.mapped import read_npz

if TYPE_CHECKING:
    from tastebud.text.items import ItemTexts

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]
Int64Array = npt.NDArray[np.int64]
ProgressFn = Callable[[float, str], None]
# Declared features (issue 15), read point in time: (users, items, times, names) -> (n, len(names))
# float32 for training rows, (query row, candidate items, names) -> (len(items), len(names)) float32
# online; NaN where a value is missing. A lookup that fails raises (serving falls back to rules).
TrainingFeatureLookup = Callable[
    [npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int64], tuple[str, ...]],
    npt.NDArray[np.float32],
]
QueryFeatureLookup = Callable[
    [int, npt.NDArray[np.int32], tuple[str, ...]], npt.NDArray[np.float32]
]

# Bump when the on-disk layout of models changes; loaders read every older format they know.
ARTIFACT_FORMAT = 1


class RecipeConfig(BaseModel):
    """Base of every recipe's hyperparameters: unknown keys are errors, values are coerced."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Interactions as parallel arrays, in time order (ties keep input order).

    ``weights`` already reflect the solution's event-type weights and minimum event value.
    ``item_features`` is a one-hot (n_items x n_features) matrix of categorical item values named
    by ``feature_names`` (``"GENRES=Comedy"``); ``item_created`` is epoch seconds, -1 if unknown.
    ``negative_users``/``negative_items`` are impressions that got no interaction.

    ``item_numbers`` holds numerical item fields ((n_items x k) float32, NaN where unknown)
    named by ``number_names`` (``"YEAR"``).

    ``feature_lookup`` (optional) reads declared features as they were at given times (the
    feature store's point-in-time frames); recipes that do not declare features ignore it.

    ``item_texts`` (optional) holds each item's declared textual fields as one text, and their
    sentence embeddings, computed on first use (``tastebud.text``).

    Optional event columns, parallel to the interactions (None where the data has none):
    ``event_types`` codes into ``event_type_names`` (-1: no type), ``values`` the
    ``EVENT_VALUE`` (NaN: none), and ``contexts`` the request context of each event, one
    column per field of ``context_fields``, codes into ``context_names`` (``"DEVICE=tv"``;
    -1: no value).
    """

    users: IntArray
    items: IntArray
    timestamps: Int64Array
    weights: FloatArray
    n_users: int
    n_items: int
    item_features: sp.csr_matrix | None = None
    feature_names: tuple[str, ...] = ()
    item_created: Int64Array | None = None
    negative_users: IntArray = field(default_factory=lambda: np.zeros(0, np.int32))
    negative_items: IntArray = field(default_factory=lambda: np.zeros(0, np.int32))
    event_types: IntArray | None = None
    event_type_names: tuple[str, ...] = ()
    values: FloatArray | None = None
    contexts: IntArray | None = None  # (n, len(context_fields))
    context_fields: tuple[str, ...] = ()
    context_names: tuple[str, ...] = ()
    item_numbers: FloatArray | None = None
    number_names: tuple[str, ...] = ()
    feature_lookup: TrainingFeatureLookup | None = None
    item_texts: ItemTexts | None = None

    def __post_init__(self) -> None:
        n = len(self.users)
        if not (len(self.items) == len(self.timestamps) == len(self.weights) == n):
            raise ValueError("users, items, timestamps and weights must have one length")
        for name in ("event_types", "values", "contexts"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise ValueError(f"{name} needs one entry per interaction")
        if self.contexts is not None and self.contexts.shape[1:] != (len(self.context_fields),):
            raise ValueError("contexts needs one column per context field")

    @property
    def size(self) -> int:
        return len(self.users)

    def user_item_matrix(self) -> sp.csr_matrix:
        """(n_users x n_items) float32, repeated interactions summed."""
        matrix = sp.csr_matrix(
            (self.weights, (self.users, self.items)),
            shape=(self.n_users, self.n_items),
            dtype=np.float32,
        )
        matrix.sum_duplicates()
        return matrix

    def sequences(self) -> tuple[Int64Array, IntArray]:
        """Each user's items oldest first, as ``(indptr, items)``; user u is
        ``items[indptr[u]:indptr[u + 1]]``."""
        order = np.argsort(self.users, kind="stable")
        counts = np.bincount(self.users, minlength=self.n_users)
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr, self.items[order]

    def item_counts(self) -> FloatArray:
        """Summed weight per item."""
        counts = np.bincount(self.items, weights=self.weights, minlength=self.n_items)
        return counts.astype(np.float32)

    def subset(self, mask: npt.NDArray[np.bool_]) -> TrainingData:
        """The interactions where ``mask`` holds; vocabularies and item metadata unchanged."""
        return TrainingData(
            users=self.users[mask], items=self.items[mask], timestamps=self.timestamps[mask],
            weights=self.weights[mask], n_users=self.n_users, n_items=self.n_items,
            item_features=self.item_features, feature_names=self.feature_names,
            item_created=self.item_created, negative_users=self.negative_users,
            negative_items=self.negative_items,
            event_types=None if self.event_types is None else self.event_types[mask],
            event_type_names=self.event_type_names,
            values=None if self.values is None else self.values[mask],
            contexts=None if self.contexts is None else self.contexts[mask],
            context_fields=self.context_fields, context_names=self.context_names,
            item_numbers=self.item_numbers, number_names=self.number_names,
            feature_lookup=self.feature_lookup, item_texts=self.item_texts,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Query:
    """A batch of users to score, each with the recent history the model may use.

    ``users[i]`` is -1 for a user the model never saw (cold, or anonymous). The history of
    query i is ``history_items[history_indptr[i]:history_indptr[i + 1]]``, oldest first; it may
    hold events newer than the model, which is how a click changes the next answer.
    ``times[i]`` is query i's request time in epoch seconds (recipes that decay or trend count
    only what happened before it); ``None`` means "now", i.e. after everything the model saw.

    Optional event columns parallel to ``history_items`` (None where unknown): the events'
    ``history_timestamps``, ``history_event_types`` (codes into ``event_type_names``, -1: no
    type) and ``history_values`` (NaN: no value); ``contexts[i]`` is query i's request context
    (``{"DEVICE": "tv"}``). Recipes that do not use them ignore them.

    ``feature_lookup`` (optional) reads declared features online for query row i's candidates.
    """

    users: IntArray
    history_indptr: Int64Array
    history_items: IntArray
    times: Int64Array | None = None
    history_timestamps: Int64Array | None = None
    history_event_types: IntArray | None = None
    event_type_names: tuple[str, ...] = ()
    history_values: FloatArray | None = None
    contexts: tuple[Mapping[str, str], ...] | None = None
    feature_lookup: QueryFeatureLookup | None = None

    def __post_init__(self) -> None:
        if len(self.history_indptr) != len(self.users) + 1:
            raise ValueError("history_indptr needs one entry per user plus one")
        if self.times is not None and len(self.times) != len(self.users):
            raise ValueError("times needs one entry per user")
        for name in ("history_timestamps", "history_event_types", "history_values"):
            column = getattr(self, name)
            if column is not None and len(column) != len(self.history_items):
                raise ValueError(f"{name} needs one entry per history item")
        if self.contexts is not None and len(self.contexts) != len(self.users):
            raise ValueError("contexts needs one entry per user")

    def __len__(self) -> int:
        return len(self.users)

    @staticmethod
    def single(
        user: int,
        history: npt.ArrayLike = (),
        *,
        time: int | None = None,
        timestamps: npt.ArrayLike | None = None,
        event_types: Sequence[str | None] | None = None,
        values: Sequence[float | None] | None = None,
        context: Mapping[str, str] | None = None,
    ) -> Query:
        """One user's query; the optional event columns run parallel to ``history``."""
        items = np.asarray(history, dtype=np.int32)
        names = tuple(sorted({t for t in event_types or () if t is not None}))
        codes = None
        if event_types is not None:
            code_of = {name: code for code, name in enumerate(names)}
            codes = np.array([code_of.get(t, -1) if t else -1 for t in event_types], np.int32)
        return Query(
            users=np.array([user], dtype=np.int32),
            history_indptr=np.array([0, len(items)], dtype=np.int64),
            history_items=items,
            times=None if time is None else np.array([time], dtype=np.int64),
            history_timestamps=None if timestamps is None else np.asarray(timestamps, np.int64),
            history_event_types=codes,
            event_type_names=names,
            history_values=None if values is None else np.array(
                [np.nan if v is None else v for v in values], np.float32),
            contexts=None if context is None else (dict(context),),
        )  # fmt: skip

    def rows(self, start: int, stop: int) -> Query:
        """Queries ``start..stop - 1`` with their histories and event columns."""
        first, last = int(self.history_indptr[start]), int(self.history_indptr[stop])

        def part(column: npt.NDArray[Any] | None) -> Any:
            return None if column is None else column[first:last]

        return Query(
            users=self.users[start:stop],
            history_indptr=self.history_indptr[start : stop + 1] - first,
            history_items=self.history_items[first:last],
            times=None if self.times is None else self.times[start:stop],
            history_timestamps=part(self.history_timestamps),
            history_event_types=part(self.history_event_types),
            event_type_names=self.event_type_names,
            history_values=part(self.history_values),
            contexts=None if self.contexts is None else self.contexts[start:stop],
            feature_lookup=_shifted(self.feature_lookup, start),
        )

    def history(self, i: int) -> IntArray:
        return self.history_items[self.history_indptr[i] : self.history_indptr[i + 1]]

    def history_matrix(self, n_items: int, *, last: int | None = None) -> sp.csr_matrix:
        """(len(self) x n_items) binary matrix of each history (optionally its ``last`` items).

        Items the model never saw (index < 0 or >= ``n_items``, added after training) are dropped.
        """
        rows = np.repeat(np.arange(len(self), dtype=np.int32), np.diff(self.history_indptr))
        cols = self.history_items
        keep = (cols >= 0) & (cols < n_items)
        if last is not None:
            from_end = self.history_indptr[1:][rows] - np.arange(len(cols))  # 1 = newest
            keep &= from_end <= last
        rows, cols = rows[keep], cols[keep]
        matrix = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self), n_items)
        )
        matrix.data[:] = 1.0  # duplicates summed by the constructor count once
        return matrix


def _shifted(lookup: QueryFeatureLookup | None, start: int) -> QueryFeatureLookup | None:
    """``lookup`` for the queries from ``start`` on: their row numbers are relative to it."""
    if lookup is None or start == 0:
        return lookup

    def shifted(row: int, items: IntArray, names: tuple[str, ...]) -> FloatArray:
        return lookup(row + start, items, names)

    return shifted


class Model(Protocol):
    """A trained model: scores every item for each query."""

    n_items: int

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items) float32; higher is better. Seen items are *not* removed here."""
        ...

    def save(self, folder: Path) -> None: ...


@runtime_checkable
class HistoryWindow(Protocol):
    """Models that say how much of a user's history they score from, so that serving reads
    just that (issue 14). ``history_window``: the latest N events (0: none; similar-items:
    its ``history_length``); None: the whole history, as a set of items (EASE, ALS, BPR:
    order, repeats and event columns do not change their scores). ``evaluate`` passes the
    whole history and the model cuts its window itself, so served and evaluated scores agree.
    """

    @property
    def history_window(self) -> int | None: ...


def history_window(model: object, *, default: int) -> int | None:
    """``model``'s :class:`HistoryWindow`, or ``default`` latest events for a model without one."""
    # hasattr, not isinstance: a runtime-checkable protocol's check cost ~80 µs a request.
    return model.history_window if hasattr(model, "history_window") else default


@runtime_checkable
class ScoresItems(Protocol):
    """Models that score a given list of items better than by reading it off :meth:`score`'s
    row (the learned ranker: every listed item gets its own features and the trees' score, not
    only the items its candidate generation would have picked). Serving's ``rank`` (a
    personalized-ranking ``inputList``) and batch ranking use it when the model has it."""

    def score_items(self, query: Query, items: IntArray) -> FloatArray:
        """``(len(items),)`` float32 scores of ``items`` for the first query; higher is better."""
        ...


# The most actions ahead a "next session" slate ranks for (``horizon``; issue 17).
MAX_HORIZON = 8


@runtime_checkable
class ScoresHorizon(Protocol):
    """Models that rank items for the user's next few actions, not only the next one (the
    ``sequential`` recipe trained with ``predict_next`` > 1; a "next session" slate)."""

    @property
    def predict_next(self) -> int:
        """The largest horizon the model answers for."""
        ...

    def score_horizon(self, query: Query, horizon: int) -> FloatArray:
        """(len(query) x n_items) float32: each item's score for appearing among the next
        ``horizon`` items (1 <= horizon <= predict_next); horizon 1 is :meth:`Model.score`."""
        ...


@runtime_checkable
class LiveUpdates(Protocol):
    """Models that fold in live events without retraining (e.g. trending counts)."""

    def observe(
        self, items: IntArray, timestamps: Int64Array, *, weights: FloatArray | None = None
    ) -> None:
        """Count new interactions (weight 1 unless given); items >= n_items (unknown when
        trained) are ignored."""
        ...


@runtime_checkable
class IncrementalFit(Protocol):
    """Recipes that grow a previous version's model to today's data and train it on the events
    since (``train --incremental``) instead of fitting from scratch (``sequential``)."""

    def fit_incremental(
        self, previous: Model, data: TrainingData, config: RecipeConfig, *, since: int,
        previous_items: IntArray, previous_feature_names: tuple[str, ...] | None = None,
        seed: int = 0, progress: ProgressFn | None = None,
    ) -> Model:  # fmt: skip
        """``previous`` grown to ``data``: ``previous_items`` (n_items,) is each item's index in
        ``previous`` (-1: new), ``since`` (epoch seconds) where the new events start."""
        ...


class OnlineFeatures(Protocol):
    """Declared features' values now (the feature store, ``features/``), as serving reads them
    for a model that declares some (:func:`declared_features`)."""

    def online(
        self, group: str, names: Sequence[str], *, user_id: str | None,
        item_ids: Sequence[str], now: float | None = None,
        context: Mapping[str, str] | None = None,
    ) -> npt.NDArray[np.float32]: ...  # fmt: skip


def declared_features(model_or_config: object) -> tuple[str, ...]:
    """The declared feature names a model (or a recipe config) reads through the feature
    lookups (its ``features``; the ranker's), or ``()``."""
    config = getattr(model_or_config, "config", model_or_config)
    return tuple(getattr(config, "features", ()) or ())


@runtime_checkable
class ItemSimilarity(Protocol):
    """Models that answer "items like this one"."""

    def similar_items(self, items: IntArray) -> FloatArray:
        """(len(items) x n_items) similarity of every item to each anchor item."""
        ...


@runtime_checkable
class UserSimilarity(Protocol):
    """Models that answer "people like this person"."""

    n_users: int

    def similar_users(self, query: Query) -> FloatArray:
        """(len(query) x n_users) similarity of every known user to each query user."""
        ...


@runtime_checkable
class UserAffinity(Protocol):
    """Models that answer "which users will want this item" (segments)."""

    n_users: int

    def users_for_items(self, items: IntArray) -> FloatArray:
        """(len(items) x n_users) affinity of every user to each item."""
        ...


@runtime_checkable
class HistoryContributions(Protocol):
    """Models whose score is a sum over the query's history items (plus terms no history item
    owns, such as popularity), so each history item's part of a score is exact (explanations)."""

    def history_contributions(self, query: Query, items: IntArray) -> tuple[IntArray, FloatArray]:
        """For the first query only: its distinct known history items ``(H,)`` and the part of
        each of ``items``' scores that each of them adds, ``(len(items) x H)`` float32 (on the
        scale of the model's own scores, before exploration blending)."""
        ...


@runtime_checkable
class Embeddings(Protocol):
    """Models whose item and user vectors are reused downstream (issue 17): a user's vector
    dotted with an item's is the model's score of that item (or its item-vector part, before
    extras such as a genre bias). ``tastebud.embeddings`` aligns them across versions."""

    def item_embeddings(self) -> FloatArray | None:
        """(n_items x d) float32, or None when the model as configured has none (EASE)."""
        ...

    def user_embeddings(self, query: Query) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """(len(query) x d) float32 vectors from each query's history, and which rows have
        one (False: a user with neither a history nor a trained vector)."""
        ...


class Recipe(Protocol):
    name: ClassVar[str]
    config_type: ClassVar[type[RecipeConfig]]

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> Model: ...

    def load(self, folder: Path) -> Model: ...


# artifacts --------------------------------------------------------------------------------------
def save_arrays(folder: Path, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Write ``model.json`` (format, metadata) and ``arrays.npz`` (numpy and scipy CSR arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {}
    sparse_names = []
    for name, value in arrays.items():
        if sp.issparse(value):
            csr = sp.csr_matrix(value)
            parts = {"data": csr.data, "indices": csr.indices, "indptr": csr.indptr}
            parts["shape"] = np.array(csr.shape)
            flat |= {f"{name}.{part}": value for part, value in parts.items()}
            sparse_names.append(name)
        elif value is not None:
            flat[name] = np.asarray(value)
    np.savez(folder / "arrays.npz", **flat)  # type: ignore[arg-type]
    body = {"format": ARTIFACT_FORMAT, "sparse": sparse_names, **meta}
    (folder / "model.json").write_text(json.dumps(body, indent=2, sort_keys=True))


def load_arrays(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read what :func:`save_arrays` wrote: ``(metadata, arrays)``; no pickles involved. Large
    dense arrays are read-only views of the file's pages, shared by every process."""
    meta = json.loads((folder / "model.json").read_text())
    if int(meta.get("format", 0)) > ARTIFACT_FORMAT:
        raise ValueError(
            f"{folder}: artifact format {meta['format']} is newer than this tastebud "
            f"understands ({ARTIFACT_FORMAT}); upgrade tastebud"
        )
    raw = read_npz(folder / "arrays.npz")  # large arrays memory-mapped (recipes/mapped.py)
    arrays: dict[str, Any] = {}
    for name in meta.get("sparse", []):
        arrays[name] = sp.csr_matrix(
            (raw.pop(f"{name}.data"), raw.pop(f"{name}.indices"), raw.pop(f"{name}.indptr")),
            shape=tuple(raw.pop(f"{name}.shape")),
        )
    arrays |= raw
    return meta, arrays
