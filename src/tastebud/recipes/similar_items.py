"""``similar-items``: items like this one, from co-interaction, metadata and popularity.

Two ways to learn the item-item neighbour matrix ``S`` (n_items x n_items CSR, the top
``neighbors`` per row):

- ``cosine``: symmetric co-occurrence in the same user's history, ``X.T @ X`` cosine-normalised
  (item-kNN, Sarwar et al. 2001); pairs co-interacted by fewer than ``min_co_count`` users dropped.
- ``sequential``: directional, "A followed by B within ``window`` steps of the user's time-ordered
  sequence", each pair weighted ``1 / d ** distance_exponent`` for step distance ``d``. Each
  target is divided by its popularity to the power ``damping`` (so blockbusters do not follow
  everything), and each anchor's kept neighbours are normalised to sum to one, like transition
  probabilities. Defaults were tuned on ml-1m-seq's validation items (leave-last-out).

A query is scored from its ``history_length`` most recent items, the most recent weighing 1 and
each older one ``recency_decay`` times the next: ``scores = H @ S`` for the batch's weighted
history matrix ``H``. Items with little or no co-interaction lean on cosine similarity of their
``item_features`` (weight ``metadata_weight``, shrinking as the item gathers co-interactions), and
a small popularity term breaks ties and fills in when nothing else knows the item or the user.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from tastebud.recipes.base import (
    FloatArray,
    IntArray,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

# An item's metadata weight is metadata_weight * COLD_SUPPORT / (COLD_SUPPORT + its neighbours):
# full for a cold item, ~5% of it for an item with 100 co-interaction neighbours.
COLD_SUPPORT = 5.0
# Cosine co-occurrence is computed for this many (anchor x item) cells at a time, bounding memory.
BLOCK_CELLS = 1 << 24
# "More like this" never returns the anchor itself: its own entry scores below every other item.
SELF_SCORE = -1.0


class SimilarItemsConfig(RecipeConfig):
    """Hyperparameters of ``similar-items``."""

    mode: Literal["cosine", "sequential"] = Field(
        default="sequential", description="symmetric co-occurrence or directional follow-ups"
    )
    window: int = Field(default=8, ge=1, le=50, description="sequential: max steps from A to B")
    distance_exponent: float = Field(
        default=1.0, ge=0.0, le=4.0, description="sequential: a pair d steps apart weighs 1/d**this"
    )
    damping: float = Field(
        default=0.0, ge=0.0, le=1.0, description="sequential: divide by target popularity**this"
    )
    min_co_count: int = Field(
        default=1, ge=1, le=10_000, description="drop pairs seen fewer times than this"
    )
    neighbors: int = Field(default=100, ge=1, le=10_000, description="neighbours kept per item")
    history_length: int = Field(
        default=20, ge=1, le=1_000, description="most recent history items that score a query"
    )
    recency_decay: float = Field(
        default=0.75, gt=0.0, le=1.0, description="weight ratio of each history item to the next"
    )
    metadata_weight: float = Field(
        default=0.1, ge=0.0, le=10.0, description="weight of item-feature cosine for cold items"
    )
    popularity_weight: float = Field(
        default=1e-3, ge=0.0, le=1.0, description="weight of normalised popularity (ties, fill)"
    )
    text_weight: float = Field(
        default=1.0, ge=0.0, le=10.0,
        description="weight of the text cosine (textual item fields) for an anchor nobody has "
        "touched yet",
    )  # fmt: skip


class SimilarItemsModel:
    """Neighbour rows, normalised item features and popularity; scores histories and anchors."""

    def __init__(
        self,
        config: SimilarItemsConfig,
        *,
        neighbours: sp.csr_matrix,
        popularity: FloatArray,
        metadata_scale: FloatArray,
        features: sp.csr_matrix | None,
        text: FloatArray | None = None,
    ) -> None:
        self.config = config
        self.text = None if text is None else np.asarray(text, np.float32)  # (I, E) unit rows
        self.neighbours = sp.csr_matrix(neighbours, dtype=np.float32)
        self.popularity = np.asarray(popularity, np.float32)  # max 1
        self.metadata_scale = np.asarray(metadata_scale, np.float32)
        self.features = None if features is None else sp.csr_matrix(features, dtype=np.float32)
        self.n_items = self.neighbours.shape[0]

    @property
    def history_window(self) -> int:
        """Scores read the latest ``history_length`` events (serving reads no more)."""
        return self.config.history_length

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items): neighbours of the recent history, then metadata, popularity."""
        config = self.config
        history = history_weights(
            query, self.n_items, last=config.history_length, decay=config.recency_decay
        )
        return self._expand(history)

    def history_contributions(self, query: Query, items: IntArray) -> tuple[IntArray, FloatArray]:
        """What each recent history item of the first query adds to ``items``' scores: its
        recency weight times its neighbour entry plus its metadata term (popularity is no
        history item's)."""
        config = self.config
        weights = history_weights(
            query.rows(0, 1), self.n_items, last=config.history_length, decay=config.recency_decay
        )
        held: IntArray = weights.indices.astype(np.int32)
        targets = np.asarray(items, dtype=np.int64)
        parts = np.asarray(self.neighbours[held][:, targets].toarray(), dtype=np.float32)
        if self.features is not None and config.metadata_weight > 0:
            shared = (self.features[held] @ self.features[targets].T).toarray()
            parts += self.metadata_scale[held, None] * shared
        parts *= weights.data[:, None]
        return held, np.ascontiguousarray(parts.T, dtype=np.float32)

    def similar_items(self, items: IntArray) -> FloatArray:
        """(len(items) x n_items) similarity to each anchor; unknown anchors get popularity."""
        anchors = np.asarray(items, np.int64)
        known = (anchors >= 0) & (anchors < self.n_items)
        rows = np.flatnonzero(known)
        onehot = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, anchors[known])),
            shape=(len(anchors), self.n_items),
        )
        scores = self._expand(onehot)
        if self.text is not None and self.config.text_weight > 0:
            # nobody touched the anchor (no neighbours, no popularity): its text speaks for it
            untouched = rows[self.popularity[anchors[known]] == 0]
            cosine = self.text[anchors[untouched]] @ self.text.T  # zero rows: no text
            scores[untouched] += self.config.text_weight * cosine
        scores[rows, anchors[known]] = SELF_SCORE
        return scores

    def _expand(self, weights: sp.csr_matrix) -> FloatArray:
        """Dense scores of the item mixtures in ``weights`` (n_rows x n_items)."""
        scores = np.asarray((weights @ self.neighbours).toarray(), np.float32)
        if self.features is not None and self.config.metadata_weight > 0:
            leaning = sp.csr_matrix(weights.multiply(self.metadata_scale[None, :]))
            scores += np.asarray(((leaning @ self.features) @ self.features.T).toarray())
        scores += self.config.popularity_weight * self.popularity[None, :]
        return scores

    def save(self, folder: Path) -> None:
        meta = {"recipe": SimilarItems.name, "config": self.config.model_dump()}
        arrays = {
            "neighbours": self.neighbours,
            "popularity": self.popularity,
            "metadata_scale": self.metadata_scale,
            "features": self.features,
            "text": self.text,
        }
        save_arrays(folder, meta, arrays)


# building blocks --------------------------------------------------------------------------------
def history_weights(query: Query, n_items: int, *, last: int, decay: float) -> sp.csr_matrix:
    """(len(query) x n_items) CSR: each query's ``last`` most recent known items, the newest
    weighing 1 and each older one ``decay`` times the next; repeats add up."""
    indptr = query.history_indptr
    start, stop = int(indptr[0]), int(indptr[-1])
    items = query.history_items[start:stop].astype(np.int64)
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(len(query)), lengths)
    steps_back = np.repeat(indptr[1:], lengths) - 1 - np.arange(start, stop)
    keep = (steps_back < last) & (items >= 0) & (items < n_items)
    weights = np.power(decay, steps_back[keep]).astype(np.float32)
    matrix = sp.csr_matrix((weights, (rows[keep], items[keep])), shape=(len(query), n_items))
    matrix.sum_duplicates()
    return matrix


def keep_top(matrix: sp.csr_matrix, n: int, *, first_row: int = 0) -> sp.csr_matrix:
    """The ``n`` largest positive entries of each row, item-to-itself entries dropped (row r
    is item ``first_row + r``); rows are densified a block at a time for ``argpartition``."""
    matrix = sp.csr_matrix(matrix)
    pieces = []
    for low, high in _blocks(matrix.shape[0], matrix.shape[1]):
        dense = matrix[low:high].toarray()
        rows = np.arange(high - low)
        selves = first_row + low + rows
        inside = selves < matrix.shape[1]
        dense[rows[inside], selves[inside]] = 0.0
        pieces.append(_top_of_dense(dense, n))
    if not pieces:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix(sp.vstack(pieces, format="csr"), dtype=np.float32)


def _top_of_dense(dense: FloatArray, n: int) -> sp.csr_matrix:
    keep = dense > 0
    if n < dense.shape[1]:
        top = np.zeros_like(keep)
        np.put_along_axis(top, np.argpartition(-dense, n - 1, axis=1)[:, :n], True, axis=1)
        keep &= top
    return sp.csr_matrix(np.where(keep, dense, 0.0).astype(np.float32))


def _blocks(n_rows: int, n_columns: int) -> Iterator[tuple[int, int]]:
    size = max(1, BLOCK_CELLS // max(n_columns, 1))
    for low in range(0, n_rows, size):
        yield low, min(low + size, n_rows)


def cosine_neighbours(data: TrainingData, config: SimilarItemsConfig) -> sp.csr_matrix:
    """Top-N cosine similarity of co-interaction, computed in blocks of anchor items."""
    weighted = data.user_item_matrix()
    binary = weighted.copy()
    binary.data[:] = 1.0
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=0)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    by_item, by_item_binary = weighted.T.tocsr(), binary.T.tocsr()
    blocks = [sp.csr_matrix((0, data.n_items), dtype=np.float32)]
    for low, high in _blocks(data.n_items, data.n_items):
        co = (by_item[low:high] @ weighted).tocsr()
        if config.min_co_count > 1:  # co-interaction counts gate the similarities
            support = by_item_binary[low:high] @ binary
            co = co.multiply(support >= config.min_co_count).tocsr()
        co = co.multiply(inverse[low:high, None]).multiply(inverse[None, :])
        blocks.append(keep_top(co, config.neighbors, first_row=low))
    return sp.csr_matrix(sp.vstack(blocks, format="csr"), dtype=np.float32)


def follow_counts(data: TrainingData, config: SimilarItemsConfig) -> tuple[sp.csr_matrix, ...]:
    """``(strength, count)``: "A followed by B within ``window`` steps" as (n_items x n_items)
    CSR, strength weighted ``1 / d ** distance_exponent``; an item following itself is skipped."""
    indptr, sequence = data.sequences()
    owner = np.repeat(np.arange(data.n_users), np.diff(indptr))
    shape = (data.n_items, data.n_items)
    strength = sp.csr_matrix(shape, dtype=np.float32)
    count = sp.csr_matrix(shape, dtype=np.float32)
    for distance in range(1, config.window + 1):  # a handful of shifts, each fully vectorised
        before, after = sequence[:-distance], sequence[distance:]
        pair = (owner[distance:] == owner[:-distance]) & (before != after)
        ones = np.ones(int(pair.sum()), np.float32)
        pairs = sp.csr_matrix((ones, (before[pair], after[pair])), shape=shape)
        count = count + pairs
        strength = strength + pairs * np.float32(distance**-config.distance_exponent)
    return strength, count


def sequential_neighbours(
    data: TrainingData, config: SimilarItemsConfig, popularity: FloatArray
) -> sp.csr_matrix:
    """Top-N popularity-damped transition probabilities from follow counts."""
    strength, count = follow_counts(data, config)
    if config.min_co_count > 1:
        strength = strength.multiply(count >= config.min_co_count).tocsr()
    damp = np.power(np.maximum(popularity, 1.0), -config.damping).astype(np.float32)
    # normalised after pruning, so each anchor's kept neighbours share one unit of mass
    # (validated on ml-1m-seq: slightly better than the untruncated transition probability)
    return _row_normalise(keep_top(strength.multiply(damp[None, :]).tocsr(), config.neighbors))


def _row_normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(matrix.multiply(inverse[:, None]), dtype=np.float32)


def metadata_features(data: TrainingData) -> sp.csr_matrix | None:
    """L2-normalised item features, so ``F @ F.T`` is their cosine; None without features."""
    if data.item_features is None or data.item_features.shape[1] == 0:
        return None
    features = sp.csr_matrix(data.item_features, dtype=np.float32)
    norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(features.multiply(inverse[:, None]), dtype=np.float32)


def untouched_text(data: TrainingData) -> FloatArray | None:
    """The items' text vectors when some item that nobody touched has text (the only anchors
    that read them), else None: the sentence model is not loaded for nothing."""
    texts = data.item_texts
    if texts is None:
        return None
    untouched = np.bincount(data.items, minlength=data.n_items) == 0
    return texts.vectors if bool((untouched & texts.has_text).any()) else None


class SimilarItems:
    """The ``similar-items`` recipe."""

    name: ClassVar[str] = "similar-items"
    config_type: ClassVar[type[RecipeConfig]] = SimilarItemsConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> SimilarItemsModel:
        """Learn the neighbour matrix; deterministic, so ``seed`` is unused."""
        started = time.perf_counter()
        settings = SimilarItemsConfig.model_validate(config.model_dump())
        counts = data.item_counts()
        if settings.mode == "cosine":
            neighbours = cosine_neighbours(data, settings)
        else:
            neighbours = sequential_neighbours(data, settings, counts)
        if progress is not None:
            progress(0.9, "neighbours")
        support = np.diff(neighbours.indptr).astype(np.float32)
        model = SimilarItemsModel(
            settings,
            neighbours=neighbours,
            popularity=counts / max(float(counts.max(initial=0.0)), 1e-12),
            metadata_scale=settings.metadata_weight * COLD_SUPPORT / (COLD_SUPPORT + support),
            features=metadata_features(data),
            text=untouched_text(data),
        )
        if progress is not None:
            progress(1.0, "done")
        _log.info(
            "fit done recipe=%s mode=%s items=%d neighbours=%d seconds=%.3f",
            self.name, settings.mode, data.n_items, neighbours.nnz, time.perf_counter() - started,
        )  # fmt: skip
        return model

    def load(self, folder: Path) -> SimilarItemsModel:
        """Read a model written by :meth:`SimilarItemsModel.save`."""
        meta, arrays = load_arrays(folder)
        return SimilarItemsModel(
            SimilarItemsConfig(**meta["config"]),
            neighbours=arrays["neighbours"],
            popularity=arrays["popularity"],
            metadata_scale=arrays["metadata_scale"],
            features=arrays.get("features"),
            text=arrays.get("text"),
        )

    def search_space(self, trial: optuna.trial.BaseTrial) -> dict[str, object]:
        """Optuna search space; the mode is searched too, sequential knobs only when chosen."""
        mode = trial.suggest_categorical("mode", ["sequential", "cosine"])
        params: dict[str, object] = {
            "mode": mode,
            "min_co_count": trial.suggest_int("min_co_count", 1, 5),
            "neighbors": trial.suggest_int("neighbors", 20, 500, log=True),
            "history_length": trial.suggest_int("history_length", 1, 50, log=True),
            "recency_decay": trial.suggest_float("recency_decay", 0.1, 1.0),
            "metadata_weight": trial.suggest_float("metadata_weight", 0.0, 1.0),
        }
        if mode == "sequential":
            params["window"] = trial.suggest_int("window", 1, 10)
            params["distance_exponent"] = trial.suggest_float("distance_exponent", 0.0, 2.0)
            params["damping"] = trial.suggest_float("damping", 0.0, 1.0)
        return params
