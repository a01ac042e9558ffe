"""``similar-users``: people like this person (matchmaking).

Three ways to compare users, chosen by ``method``:

- ``interactions``: cosine between binary interaction rows, zero below ``min_shared`` shared items;
- ``vectors``: cosine between ALS user vectors (Hu et al. 2008, via ``implicit``), the query's
  vector recomputed from its history with the ALS least-squares step;
- ``hybrid``: ``vector_weight * vectors + (1 - vector_weight) * interactions``.

A query user is represented by its history (so a new attendee's first clicks count at once); a
known user with an empty history falls back to its training row and vector, a cold one with no
history is similar to nobody. :meth:`similar_users` does *not* drop the user itself (it is
usually its own best match); serving excludes self. :meth:`score` is user-kNN: the items of the
``neighbours`` most similar other users, weighted by similarity (popularity when there are none).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field

from tastebud.recipes import factorization as fz
from tastebud.recipes.base import (
    FloatArray,
    ProgressFn,
    Query,
    RecipeConfig,
    TrainingData,
    load_arrays,
    save_arrays,
)
from tastebud.recipes.user_personalization import popularity_scores

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

Method = Literal["interactions", "vectors", "hybrid"]


class SimilarUsersConfig(RecipeConfig):
    """Hyperparameters of ``similar-users``."""

    method: Method = Field(default="hybrid", description="interactions, vectors or hybrid")
    min_shared: int = Field(default=1, ge=1, le=10_000, description="shared items to count")
    vector_weight: float = Field(default=0.5, ge=0.0, le=1.0, description="hybrid: vectors' share")
    neighbours: int = Field(default=50, ge=1, le=100_000, description="users behind score()")
    factors: int = Field(default=64, ge=1, le=1024, description="ALS latent factors")
    regularization: float = Field(default=0.1, ge=0.0, le=1e4, description="ALS L2 penalty")
    alpha: float = Field(default=1.0, gt=0.0, le=1e4, description="ALS confidence scaling")
    iterations: int = Field(default=15, ge=1, le=1000, description="ALS sweeps")

    @property
    def uses_vectors(self) -> bool:
        return self.method != "interactions"


class SimilarUsersModel:
    """Binary interaction rows and (for vectors/hybrid) ALS factors of the training users."""

    def __init__(self, config: SimilarUsersConfig, arrays: dict[str, Any]) -> None:
        self.config = config
        self.arrays = arrays
        self.interactions: sp.csr_matrix = arrays["interactions"]
        self.popularity: FloatArray = arrays["popularity"]
        self.n_users, self.n_items = self.interactions.shape
        norms = np.sqrt(self.interactions.getnnz(axis=1)).astype(np.float32)
        self._row_norms = np.maximum(norms, 1.0)
        if config.uses_vectors:
            self._unit_users = _unit_rows(arrays["user_factors"])

    def similar_users(self, query: Query) -> FloatArray:
        """(len(query) x n_users) float32 similarity of every known user to each query user."""
        rows = self._query_rows(query)
        if self.config.method == "interactions":
            return self._interaction_cosine(rows)
        vectors = self._vector_cosine(rows)
        if self.config.method == "vectors":
            return vectors
        weight = self.config.vector_weight
        return weight * vectors + (1.0 - weight) * self._interaction_cosine(rows)

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items) float32 user-kNN scores; popularity where no neighbour."""
        similarity = self.similar_users(query)
        known = fz.known_users(query.users, self.n_users)
        similarity[np.flatnonzero(known), query.users[known]] = 0.0  # not one's own neighbour
        weights = _top_neighbours(similarity, self.config.neighbours)
        total = np.asarray(weights.sum(axis=1), dtype=np.float32).ravel()
        scores = np.asarray((weights @ self.interactions).toarray(), dtype=np.float32)
        scores /= np.maximum(total, 1e-12)[:, None]
        scores[total <= 0] = self.popularity
        return scores

    def save(self, folder: Path) -> None:
        meta = {"recipe": SimilarUsers.name, "config": self.config.model_dump()}
        save_arrays(folder, meta, self.arrays)

    def _query_rows(self, query: Query) -> sp.csr_matrix:
        """Each query's binary history; a known user with none gets its training row."""
        history = query.history_matrix(self.n_items)
        fallback = fz.known_users(query.users, self.n_users) & (history.getnnz(axis=1) == 0)
        rows = np.where(fallback, query.users, 0)
        stored = self.interactions[rows].multiply(fallback[:, None].astype(np.float32))
        return sp.csr_matrix(history + stored)

    def _interaction_cosine(self, rows: sp.csr_matrix) -> FloatArray:
        shared = np.asarray((rows @ self.interactions.T).toarray(), dtype=np.float32)
        query_norms = np.maximum(np.sqrt(rows.getnnz(axis=1)), 1.0).astype(np.float32)
        cosine = np.asarray(shared / query_norms[:, None] / self._row_norms[None, :], np.float32)
        cosine[shared < self.config.min_shared] = 0.0
        return cosine

    def _vector_cosine(self, rows: sp.csr_matrix) -> FloatArray:
        vectors = fz.als_user_factors(
            rows * self.config.alpha,
            self.arrays["item_factors"],
            regularization=self.config.regularization,
        )
        return np.asarray(_unit_rows(vectors) @ self._unit_users.T, dtype=np.float32)


def _unit_rows(matrix: FloatArray) -> FloatArray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


def _top_neighbours(similarity: FloatArray, k: int) -> sp.csr_matrix:
    """Sparse rows keeping each row's ``k`` largest positive similarities."""
    n_rows, n_users = similarity.shape
    k = min(k, n_users)
    top: npt.NDArray[np.intp] = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(similarity, top, axis=1).clip(min=0.0)
    rows = np.repeat(np.arange(n_rows), k)
    weights = sp.csr_matrix((values.ravel(), (rows, top.ravel())), shape=(n_rows, n_users))
    weights.eliminate_zeros()
    return weights


class SimilarUsers:
    """The ``similar-users`` recipe."""

    name: ClassVar[str] = "similar-users"
    config_type: ClassVar[type[RecipeConfig]] = SimilarUsersConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> SimilarUsersModel:
        """Keep the binary interaction rows; fit ALS user vectors unless method=interactions."""
        started = time.perf_counter()
        settings = SimilarUsersConfig.model_validate(config.model_dump())
        interactions = data.user_item_matrix()
        interactions.data[:] = 1.0
        arrays: dict[str, Any] = {
            "interactions": interactions,
            "popularity": popularity_scores(data),
        }
        if settings.uses_vectors:
            users, items = fz.fit_als(
                data.user_item_matrix(), factors=settings.factors,
                regularization=settings.regularization, alpha=settings.alpha,
                iterations=settings.iterations, seed=seed,
            )  # fmt: skip
            arrays |= {"user_factors": users, "item_factors": items}
        if progress is not None:
            progress(1.0, "fitted")
        _log.info(
            "fit done recipe=%s method=%s users=%d interactions=%d seconds=%.2f",
            self.name, settings.method, data.n_users, data.size, time.perf_counter() - started,
        )  # fmt: skip
        return SimilarUsersModel(settings, arrays)

    def load(self, folder: Path) -> SimilarUsersModel:
        """Read a model written by :meth:`SimilarUsersModel.save`."""
        meta, arrays = load_arrays(folder)
        return SimilarUsersModel(SimilarUsersConfig(**meta["config"]), arrays)

    def search_space(self, trial: optuna.Trial) -> dict[str, object]:
        """Optuna search space: the method, the neighbourhood and the ALS vectors."""
        method = trial.suggest_categorical("method", ["interactions", "vectors", "hybrid"])
        params: dict[str, object] = {
            "method": method,
            "neighbours": trial.suggest_int("neighbours", 10, 500, log=True),
        }
        if method != "vectors":
            params["min_shared"] = trial.suggest_int("min_shared", 1, 5)
        if method == "interactions":
            return params
        params["factors"] = trial.suggest_int("factors", 16, 256, log=True)
        params["regularization"] = trial.suggest_float("regularization", 1e-3, 10.0, log=True)
        if method == "hybrid":
            params["vector_weight"] = trial.suggest_float("vector_weight", 0.0, 1.0)
        return params
