"""``user-personalization``: items for this user, from EASE, ALS or BPR.

Every algorithm scores from the query's *history*, so events newer than the model count:

- ``ease`` (Steck 2019): ``scores = history @ B``. The default while the catalogue has at most
  20,000 items (``algorithm="auto"``; ALS above); refused above 40,000 items. A known user with
  an empty history gets popularity (EASE keeps no user vectors).
- ``als`` (Hu et al. 2008, via ``implicit``): the user vector is recomputed from the history with
  the ALS least-squares step (each history item has confidence ``alpha``; training used
  ``alpha * weight``, implicit's convention rather than the paper's ``1 + alpha * r``); a known
  user with an empty history keeps its trained vector.
- ``bpr`` (Rendle et al. 2009, via ``implicit``): a known user's trained vector blended with the
  mean item vector of the history (``BPR_HISTORY_BLEND``), a cold user the history mean alone.

A query with neither a history nor a trained vector gets the item popularity.

Impressions (items shown but not interacted with) count as negatives: ALS trains on them as
"preference 0 with confidence 1 + impression_negative_weight" (``implicit``'s negative entries)
and uses them again in a known user's least-squares step; EASE and BPR lower each impressed item's
score by ``impression_negative_weight`` standard deviations of that user's scores. An impressed
item that is now in the query's history is no longer a negative.

Exploration (``exploration_weight`` > 0) blends the min-max normalised model scores with a bonus
for new and rarely-seen items (:func:`exploration_bonus`): ``(1 - w) * model + w * bonus``;
0 leaves the model's scores untouched, 1 ranks by the bonus alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from pydantic import Field

from tastebud.recipes import factorization as fz
from tastebud.recipes import shortlists
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
from tastebud.recipes.mapped import derived_array

if TYPE_CHECKING:
    import optuna

_log = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400.0
# "auto" picks EASE up to this many items (its dense item x item matrix stays under 1.6 GB).
AUTO_EASE_MAX_ITEMS = 20_000
# BPR: weight of the history's mean item vector against a known user's trained vector; 0.75
# beat 0 (trained vector only), 0.5 and 1 on ml-1m-seq validation (ndcg@10 .045 vs .037/.043/.042).
BPR_HISTORY_BLEND = 0.75

# Tuned on ml-1m-seq validation (leave-last-out): the two algorithms want very different values.
DEFAULT_REGULARIZATION = {"als": 0.1, "bpr": 0.003}
DEFAULT_ITERATIONS = {"als": 15, "bpr": 100}

Algorithm = Literal["auto", "ease", "als", "bpr"]


class UserPersonalizationConfig(RecipeConfig):
    """Hyperparameters of ``user-personalization`` (and ``personalized-ranking``)."""

    algorithm: Algorithm = Field(
        default="auto",
        description="ease, als or bpr; auto = ease up to 20,000 items, als above",
    )
    factors: int = Field(default=128, ge=1, le=1024, description="ALS/BPR latent factors")
    regularization: float | None = Field(
        default=None, ge=0.0, le=1e4, description="ALS/BPR L2 penalty; None: ALS 0.1, BPR 0.003"
    )
    alpha: float = Field(default=1.0, gt=0.0, le=1e4, description="ALS confidence scaling")
    iterations: int | None = Field(
        default=None, ge=1, le=1000, description="ALS sweeps / BPR epochs; None: ALS 15, BPR 100"
    )
    learning_rate: float = Field(default=0.01, gt=0.0, le=1.0, description="BPR SGD step")
    l2: float = Field(default=250.0, gt=0.0, le=1e7, description="EASE L2 penalty λ")
    exploration_weight: float = Field(
        default=0.0, ge=0.0, le=1.0, description="0 = model only, 1 = new/rare items only"
    )
    exploration_item_age_cutoff: float = Field(
        default=30.0, gt=0.0, le=36_500.0, description="days an item counts as new"
    )
    impression_negative_weight: float = Field(
        default=1.0, ge=0.0, le=1_000.0, description="how strongly shown-not-clicked items count"
    )
    shortlist_length: int = Field(
        default=200, ge=0, le=2_000,
        description="user-personalization from 20,000 items: each user's best items scored at "
        "training, answering exactly until the user's next event (0: off; recipes/shortlists.py)",
    )  # fmt: skip

    def resolved_algorithm(self, n_items: int) -> Literal["ease", "als", "bpr"]:
        """The algorithm ``auto`` stands for with a catalogue of ``n_items``."""
        if self.algorithm != "auto":
            return self.algorithm
        return "ease" if n_items <= AUTO_EASE_MAX_ITEMS else "als"

    def regularization_for(self, algorithm: str) -> float:
        """``regularization``, or the algorithm's tuned default when it is None."""
        if self.regularization is not None:
            return self.regularization
        return DEFAULT_REGULARIZATION.get(algorithm, 0.0)

    def iterations_for(self, algorithm: str) -> int:
        """``iterations``, or the algorithm's tuned default when it is None."""
        if self.iterations is not None:
            return self.iterations
        return DEFAULT_ITERATIONS.get(algorithm, 1)


class UserPersonalizationModel:
    """A fitted EASE, ALS or BPR model plus the popularity and exploration vectors."""

    history_window = None  # every algorithm reads the whole history as a set of items

    def __init__(
        self,
        config: UserPersonalizationConfig,
        algorithm: str,
        arrays: dict[str, Any],
        *,
        recipe: str = "user-personalization",
        folder: Path | None = None,
    ) -> None:
        """``folder``: where the model was loaded from; arrays derived at load are kept there,
        mapped by every process (``recipes/mapped.py``)."""
        self.config = config
        self.algorithm = algorithm
        self.recipe = recipe
        weights = arrays.get("weights")
        if weights is not None and not (weights.flags.c_contiguous and weights.dtype == np.float32):
            # EASE's B row-major: sparse @ dense ravels its right side, and a column-major B
            # (as the solver returns it) was copied whole on every call (~60 ms at 3,416 items).
            rows = _derived(
                folder, "weights_rows", lambda: np.ascontiguousarray(weights, np.float32)
            )
            arrays = arrays | {"weights": rows}
        self.arrays = arrays
        self._refreshed = shortlists.Refreshed()  # users' latest full scans (shortlists.py)
        self.popularity: FloatArray = arrays["popularity"]
        self.exploration_bonus: FloatArray = arrays["exploration_bonus"]
        self.impressions: sp.csr_matrix = arrays["impressions"]
        self.n_users, self.n_items = self.impressions.shape
        # ALS's YᵀY + λI, built once at load: each request then reads only its history's items.
        self._gram: npt.NDArray[np.float64] | None = None
        if algorithm == "als":
            regularization = config.regularization_for("als")
            self._gram = fz.item_gram(arrays["item_factors"], regularization)
        # Item vectors as contiguous columns: a user's scores are one pass over them (2x faster
        # than multiplying by the transposed view).
        factors = arrays.get("item_factors")
        self._item_columns: FloatArray = _derived(
            folder,
            "item_columns",
            lambda: np.ascontiguousarray(
                factors.T if factors is not None else np.zeros((0, 0), np.float32)
            ),
        )

    def score(self, query: Query) -> FloatArray:
        """(len(query) x n_items) float32 scores from each query's history; seen items stay."""
        if self.algorithm == "als" and len(query) and not self.impressions.nnz:
            # One user at a time, as real time scores: a batched solve rounds differently, and
            # near-ties would then order differently in batch jobs than in live answers.
            rows = [self._score_one_als(query.rows(i, i + 1)) for i in range(len(query))]
            return np.concatenate(rows) if len(rows) > 1 else rows[0]
        history = query.history_matrix(self.n_items)
        known = fz.known_users(query.users, self.n_users)
        negatives = self._negatives(query, history, known)
        if self.algorithm == "ease":
            scores = np.asarray(history @ self.arrays["weights"], dtype=np.float32)
        elif self.algorithm == "als":
            scores = self._als_users(query, history, negatives, known) @ self._item_columns
        else:
            scores = self._bpr_users(query, history, known) @ self._item_columns
        if self.algorithm != "als":
            scores = penalise(scores, negatives, self.config.impression_negative_weight)
        has_vector = known if self.algorithm != "ease" else np.zeros(len(query), bool)
        nothing = (history.getnnz(axis=1) == 0) & ~has_vector
        scores[nothing] = self.popularity
        return blend_exploration(scores, self.exploration_bonus, self.config.exploration_weight)

    def shortlist(self, query: Query) -> shortlists.Shortlist | None:
        """The user's best items from training or from the user's latest full scan, or
        rescored since (see ``recipes/shortlists.py``); None when the full scan must answer."""
        return shortlists.lookup(self.arrays, query, self.by_vector, self._refreshed)

    def scanned(self, query: Query, scores: FloatArray) -> None:
        """A one-user query's full scan gave ``scores`` (its :meth:`score`): they become the
        user's shortlist from now on, where shortlists are rescored by vector."""
        by_vector = self.by_vector
        if by_vector is not None and "shortlist_vectors" in self.arrays:
            length = self.arrays["shortlist_items"].shape[1]
            shortlists.refresh(self._refreshed, query, by_vector.vector(query), scores, length)

    @property
    def by_vector(self) -> shortlists.VectorScoring | None:
        """How real-time scores come from one user vector, where they are its inner products
        with the item vectors (ALS without logged impressions or exploration); else None."""
        if self.algorithm != "als" or self.impressions.nnz or self.config.exploration_weight:
            return None
        return shortlists.VectorScoring(self._one_vector, self._scores_of,
                                        self.arrays["item_factors"])  # fmt: skip

    def _one_vector(self, query: Query) -> FloatArray | None:
        """The vector :meth:`_score_one_als` multiplies the items with; None for popularity."""
        assert self._gram is not None
        items = query.history(0)
        items = np.unique(items[(items >= 0) & (items < self.n_items)])
        user = int(query.users[0])
        if len(items):
            return fz.als_fold_in(items, self.config.alpha, self.arrays["item_factors"],
                                  self._gram)  # fmt: skip
        if 0 <= user < self.n_users:
            vector: FloatArray = self.arrays["user_factors"][user]
            return vector
        return None  # nothing known of the user

    def _score_one_als(self, query: Query) -> FloatArray:
        """:meth:`score` of one ALS query when no impressions were logged (every real-time
        request then): the same scores, from the history's item vectors alone."""
        return self._scores_of(self._one_vector(query))

    def _scores_of(self, vector: FloatArray | None) -> FloatArray:
        """(1 x n_items) scores from one user vector (None: popularity), as :meth:`score`."""
        if vector is not None:
            scores = (vector @ self._item_columns)[None, :]
        else:
            scores = self.popularity[None, :].astype(np.float32)
        return blend_exploration(scores, self.exploration_bonus, self.config.exploration_weight)

    def history_contributions(self, query: Query, items: IntArray) -> tuple[IntArray, FloatArray]:
        """What each distinct history item of the first query adds to ``items``' scores, exactly.

        EASE: ``B[j, i]``. ALS: ``c_j · y_iᵀ W y_j`` with ``W = (YᵀCᵘY + λI)⁻¹``, the user's own
        fold-in system (Hu, Koren & Volinsky 2008, section 5: the fold-in is linear in the
        history once ``W`` is fixed). BPR: ``share / n · y_jᵀ y_i``, the history mean's part of
        the blended user vector (the trained vector and the item bias belong to no history item).
        Impression penalties and exploration are not the history's and are left out.
        """
        first = query.rows(0, 1)
        history = first.history_matrix(self.n_items)
        held: IntArray = history.indices.astype(np.int32)  # distinct items, sorted
        targets = np.asarray(items, dtype=np.int64)
        if not len(held):
            return held, np.zeros((len(targets), 0), np.float32)
        known = fz.known_users(first.users, self.n_users)
        if self.algorithm == "ease":
            parts = np.asarray(self.arrays["weights"][np.ix_(held, targets)]).T
        elif self.algorithm == "als":
            parts = self._als_contributions(first, history, known, held, targets)
        else:
            vectors = self.arrays["item_factors"][:, :-1]  # the last column is the item bias
            share = BPR_HISTORY_BLEND if known[0] else 1.0
            parts = (share / len(held)) * (vectors[targets] @ vectors[held].T)
        return held, np.asarray(parts, dtype=np.float32)

    def _als_contributions(
        self, query: Query, history: sp.csr_matrix, known: np.ndarray, held: IntArray,
        targets: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float64]:  # fmt: skip
        """``(len(targets) x H)``: ``c_j · y_iᵀ (gram + Σ_k (|c_k| - 1) y_k y_kᵀ)⁻¹ y_j``, the
        system :func:`fz.als_user_factors` solves for this user, split over its right side."""
        assert self._gram is not None
        alpha = self.config.alpha
        negatives = self._negatives(query, history, known)
        confidences = sp.csr_matrix(history * alpha - negatives * (
            1.0 + self.config.impression_negative_weight))  # fmt: skip
        item = np.asarray(self.arrays["item_factors"], dtype=np.float64)
        rows = item[confidences.indices]
        extra = np.abs(confidences.data.astype(np.float64)) - 1.0
        system = self._gram + (rows * extra[:, None]).T @ rows
        solved = np.linalg.solve(system, item[held].T)  # (factors x H)
        parts: npt.NDArray[np.float64] = alpha * (item[targets] @ solved)
        return parts

    def item_vectors(self) -> FloatArray | None:
        """ALS and BPR score by inner products with these (serving's approximate top-k)."""
        if self.algorithm == "ease" or self.config.exploration_weight != 0.0:
            return None
        vectors: FloatArray = self.arrays["item_factors"]
        return vectors

    def user_vectors(self, query: Query) -> FloatArray | None:
        """The vectors :meth:`score` multiplies with :meth:`item_vectors`; None when some
        query is answered otherwise (popularity, impression penalties, exploration)."""
        if self.item_vectors() is None:
            return None
        history = query.history_matrix(self.n_items)
        known = fz.known_users(query.users, self.n_users)
        if ((history.getnnz(axis=1) == 0) & ~known).any():
            return None  # popularity answers these
        negatives = self._negatives(query, history, known)
        if self.algorithm == "als":
            return self._als_users(query, history, negatives, known)
        if negatives.nnz and self.config.impression_negative_weight:
            return None  # BPR penalises impressions after scoring
        return self._bpr_users(query, history, known)

    def item_embeddings(self) -> FloatArray | None:
        """ALS and BPR item factors (BPR's last column is the item bias); EASE has none."""
        return None if self.algorithm == "ease" else self.arrays["item_factors"]

    def user_embeddings(self, query: Query) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """The user vectors :meth:`score` multiplies with the item factors (ALS: the
        least-squares step over the history, BPR: the blend); EASE has none."""
        history = query.history_matrix(self.n_items)
        known = fz.known_users(query.users, self.n_users)
        present = known | (history.getnnz(axis=1) > 0)
        if self.algorithm == "ease":
            return np.zeros((len(query), 0), np.float32), np.zeros(len(query), np.bool_)
        if self.algorithm == "als":
            negatives = self._negatives(query, history, known)
            return self._als_users(query, history, negatives, known), present
        return self._bpr_users(query, history, known), present

    def save(self, folder: Path) -> None:
        meta = {
            "recipe": self.recipe,
            "algorithm": self.algorithm,
            "config": self.config.model_dump(),
        }
        save_arrays(folder, meta, self.arrays)

    def _negatives(self, query: Query, history: sp.csr_matrix, known: np.ndarray) -> sp.csr_matrix:
        """Each known user's impressed-not-clicked items, minus those now in its history."""
        if not self.impressions.nnz:  # no impressions were logged: nothing to slice
            return sp.csr_matrix(history.shape, dtype=np.float32)
        rows = np.where(known, query.users, 0)
        shown = self.impressions[rows].multiply(known[:, None].astype(np.float32)).tocsr()
        negatives = (shown - shown.multiply(history)).tocsr()
        negatives.eliminate_zeros()
        return negatives

    def _als_users(
        self, query: Query, history: sp.csr_matrix, negatives: sp.csr_matrix, known: np.ndarray
    ) -> FloatArray:
        item_factors = self.arrays["item_factors"]
        confidences = history * self.config.alpha - negatives * (
            1.0 + self.config.impression_negative_weight
        )
        regularization = self.config.regularization_for("als")
        users = fz.als_user_factors(
            sp.csr_matrix(confidences), item_factors, regularization=regularization,
            gram=self._gram,
        )  # fmt: skip
        keep_trained = known & (history.getnnz(axis=1) == 0)
        users[keep_trained] = self.arrays["user_factors"][query.users[keep_trained]]
        return users

    def _bpr_users(self, query: Query, history: sp.csr_matrix, known: np.ndarray) -> FloatArray:
        item_factors = self.arrays["item_factors"]
        from_history = fz.mean_item_factors(history, item_factors)
        from_history[:, -1] = 1.0  # the last column carries the item bias (see fit_bpr)
        trained = self.arrays["user_factors"][np.where(known, query.users, 0)]
        with_history = history.getnnz(axis=1) > 0
        # weight of the history: none without one, all of it for a user the model never saw
        share = np.where(known, np.where(with_history, BPR_HISTORY_BLEND, 0.0), 1.0)[:, None]
        users: FloatArray = ((1.0 - share) * trained + share * from_history).astype(np.float32)
        return users


def _derived(folder: Path | None, name: str, make: Callable[[], FloatArray]) -> FloatArray:
    """``make()``, kept in ``folder`` and mapped when the model was loaded from one."""
    return make() if folder is None else derived_array(folder, name, make)


def penalise(scores: FloatArray, negatives: sp.csr_matrix, weight: float) -> FloatArray:
    """Lower each negative (row, item) by ``weight`` standard deviations of the row's scores."""
    if weight == 0.0 or negatives.nnz == 0:
        return scores
    coo = negatives.tocoo()
    spread = scores.std(axis=1)
    scores[coo.row, coo.col] -= weight * spread[coo.row]
    return scores


def blend_exploration(scores: FloatArray, bonus: FloatArray, weight: float) -> FloatArray:
    """``(1 - weight) * minmax(scores) + weight * bonus`` per row; weight 0 returns scores as is."""
    if weight == 0.0:
        return scores
    low = scores.min(axis=1, keepdims=True)
    span = np.maximum(scores.max(axis=1, keepdims=True) - low, 1e-12)
    blended = (1.0 - weight) * (scores - low) / span + weight * bonus[None, :]
    return np.asarray(blended, dtype=np.float32)


def exploration_bonus(data: TrainingData, *, age_cutoff_days: float) -> FloatArray:
    """Per item in [0, 1]: the mean of freshness and rarity (rarity alone without creation times).

    Freshness falls linearly from 1 (created at the latest event) to 0 (created
    ``age_cutoff_days`` or more before it, or unknown); rarity is ``1 - log1p(count) /
    log1p(max count)``, so an item nobody touched gets 1.
    """
    counts = data.item_counts().astype(np.float64)
    top = np.log1p(counts.max(initial=0.0))
    rarity = 1.0 - np.log1p(counts) / top if top > 0 else np.ones(data.n_items)
    if data.item_created is None:
        return rarity.astype(np.float32)
    created = data.item_created.astype(np.float64)
    latest = float(data.timestamps.max()) if data.size else float(created.max(initial=0))
    age_days = (latest - created) / SECONDS_PER_DAY
    freshness = np.where(created >= 0, np.clip(1.0 - age_days / age_cutoff_days, 0.0, 1.0), 0.0)
    return ((freshness + rarity) / 2.0).astype(np.float32)


def popularity_scores(data: TrainingData) -> FloatArray:
    """Item popularity scaled to [0, 1], the answer when a query has nothing to go on."""
    counts = data.item_counts()
    top = counts.max(initial=0.0)
    return (counts / top if top > 0 else counts).astype(np.float32)


def fit_user_model(
    data: TrainingData,
    config: UserPersonalizationConfig,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
    recipe: str = "user-personalization",
) -> UserPersonalizationModel:
    """Fit the configured algorithm; shared by the recipes built on a user model."""
    started = time.perf_counter()
    algorithm = config.resolved_algorithm(data.n_items)
    impressions = fz.impression_matrix(data)
    arrays: dict[str, Any] = {
        "popularity": popularity_scores(data),
        "exploration_bonus": exploration_bonus(
            data, age_cutoff_days=config.exploration_item_age_cutoff
        ),
        "impressions": impressions,
    }
    arrays |= _fit_algorithm(algorithm, data, impressions, config, seed, progress)
    if progress is not None:
        progress(1.0, f"{algorithm} fitted")
    _log.info(
        "fit done recipe=%s algorithm=%s users=%d items=%d interactions=%d seconds=%.2f",
        recipe, algorithm, data.n_users, data.n_items, data.size, time.perf_counter() - started,
    )  # fmt: skip
    return UserPersonalizationModel(config, algorithm, arrays, recipe=recipe)


def _fit_algorithm(
    algorithm: str,
    data: TrainingData,
    impressions: sp.csr_matrix,
    config: UserPersonalizationConfig,
    seed: int,
    progress: ProgressFn | None,
) -> dict[str, Any]:
    matrix = data.user_item_matrix()
    if algorithm == "ease":
        return {"weights": fz.fit_ease(matrix, l2=config.l2)}
    regularization = config.regularization_for(algorithm)
    iterations = config.iterations_for(algorithm)

    def on_iteration(iteration: int) -> None:
        if progress is not None:
            progress((iteration + 1) / iterations, f"{algorithm} iteration {iteration + 1}")

    if algorithm == "als":
        # implicit multiplies by alpha; a dislike of confidence 1 + w is stored as -(1 + w) / alpha
        dislike = (1.0 + config.impression_negative_weight) / config.alpha
        matrix = sp.csr_matrix(matrix - impressions * dislike)
        users, items = fz.fit_als(
            matrix, factors=config.factors, regularization=regularization, alpha=config.alpha,
            iterations=iterations, seed=seed,
            on_iteration=on_iteration,
        )  # fmt: skip
    else:
        users, items = fz.fit_bpr(
            matrix, factors=config.factors, learning_rate=config.learning_rate,
            regularization=regularization, iterations=iterations, seed=seed,
            on_iteration=on_iteration,
        )  # fmt: skip
    return {"user_factors": users, "item_factors": items}


class UserPersonalization:
    """The ``user-personalization`` recipe."""

    name: ClassVar[str] = "user-personalization"
    config_type: ClassVar[type[RecipeConfig]] = UserPersonalizationConfig

    def fit(
        self,
        data: TrainingData,
        config: RecipeConfig,
        *,
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> UserPersonalizationModel:
        """Fit EASE, ALS or BPR on the interactions (and impressions, for ALS).

        Raises:
            InvalidInput: EASE asked for on more than 40,000 items.
        """
        settings = UserPersonalizationConfig.model_validate(config.model_dump())
        model = fit_user_model(data, settings, seed=seed, progress=progress, recipe=self.name)
        if settings.shortlist_length and data.n_items >= shortlists.SHORTLIST_FROM_ITEMS:
            model.arrays |= shortlists.build(model.score, data, settings.shortlist_length,
                                             progress, by_vector=model.by_vector)  # fmt: skip
        return model

    def load(self, folder: Path) -> UserPersonalizationModel:
        """Read a model written by :meth:`UserPersonalizationModel.save`."""
        meta, arrays = load_arrays(folder)
        config = UserPersonalizationConfig(**meta["config"])
        return UserPersonalizationModel(config, meta["algorithm"], arrays, recipe=self.name,
                                        folder=folder)  # fmt: skip

    def search_space(self, trial: optuna.Trial) -> dict[str, object]:
        """Optuna search space: the algorithm, then that algorithm's own hyperparameters."""
        return user_model_space(trial)


def user_model_space(trial: optuna.Trial) -> dict[str, object]:
    """Search space over EASE, ALS and BPR, shared by the recipes built on a user model."""
    algorithm = trial.suggest_categorical("algorithm", ["ease", "als", "bpr"])
    if algorithm == "ease":
        return {"algorithm": algorithm, "l2": trial.suggest_float("l2", 10.0, 5_000.0, log=True)}
    params: dict[str, object] = {
        "algorithm": algorithm,
        "factors": trial.suggest_int("factors", 16, 256, log=True),
        "regularization": trial.suggest_float("regularization", 1e-4, 10.0, log=True),
    }
    # optuna wants one distribution per parameter name, hence the prefixed iteration names
    if algorithm == "als":
        params["alpha"] = trial.suggest_float("alpha", 0.5, 50.0, log=True)
        params["iterations"] = trial.suggest_int("als_iterations", 5, 30)
    else:
        params["learning_rate"] = trial.suggest_float("learning_rate", 1e-3, 0.1, log=True)
        params["iterations"] = trial.suggest_int("bpr_iterations", 20, 200, log=True)
    return params
