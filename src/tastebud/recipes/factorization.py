"""Numeric kernels shared by the user-model recipes: EASE, ALS and BPR fitting, user vectors
computed from a query's history, and the matrices those need.

``implicit`` does the iterative fitting (ALS, BPR); what is written here is closed-form algebra
over the arrays a model keeps (item factors, the EASE weights), so a saved model scores without
``implicit``'s own pickles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from tastebud.errors import InvalidInput
from tastebud.recipes.base import FloatArray, TrainingData

# implicit parallelises over users itself; two threads keep fitting polite on shared machines.
FIT_THREADS = 2
# EASE keeps a dense n_items x n_items matrix: 40,000 items is 6.4 GB in float32.
EASE_MAX_ITEMS = 40_000
# Below this the EASE inverse runs in float64 (8 bytes x n_items^2); above, float32 to halve memory.
EASE_FLOAT64_MAX_ITEMS = 12_000
# Floats per batch of padded histories in the ALS fold-in (32 MB of float64).
_FOLD_IN_BUDGET = 1 << 22

IterationFn = Callable[[int], None]


# EASE ------------------------------------------------------------------------------------------
def fit_ease(matrix: sp.csr_matrix, *, l2: float) -> FloatArray:
    """EASE item-item weights (Steck 2019, "Embarrassingly Shallow Autoencoders").

    Closed form: ``P = (XᵀX + λI)⁻¹`` and ``B = I - P · diag(1 / diag(P))``, so ``diag(B) = 0``.

    Raises:
        InvalidInput: more than :data:`EASE_MAX_ITEMS` items.
    """
    n_items = matrix.shape[1]
    if n_items > EASE_MAX_ITEMS:
        raise InvalidInput(
            f"algorithm: 'ease' keeps a dense n_items x n_items matrix and {n_items} items is "
            f"more than {EASE_MAX_ITEMS}; use algorithm 'als'"
        )
    dtype = np.float64 if n_items <= EASE_FLOAT64_MAX_ITEMS else np.float32
    gram: npt.NDArray[np.floating[Any]] = np.asarray((matrix.T @ matrix).toarray(), dtype=dtype)
    gram[np.diag_indices(n_items)] = gram.diagonal() + l2
    # the Gram matrix plus λI is symmetric positive definite, so the inverse is well conditioned
    precision = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    weights = precision / -np.diag(precision)  # column j divided by -P_jj
    weights[np.diag_indices(n_items)] = 0.0
    return np.asarray(weights, dtype=np.float32)


# ALS -------------------------------------------------------------------------------------------
def fit_als(
    matrix: sp.csr_matrix,
    *,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
    on_iteration: IterationFn | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Implicit-feedback ALS (Hu, Koren & Volinsky 2008) through ``implicit``.

    ``matrix`` holds preferences: positive entries are interactions (confidence ``alpha * value``),
    negative entries are dislikes (preference 0 with confidence ``alpha * |value|``).

    Returns:
        ``(user_factors, item_factors)``, float32.
    """
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit asks for single-threaded BLAS: it runs its own threads over users
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
            num_threads=FIT_THREADS, random_state=seed,
        )  # fmt: skip
        model.fit(matrix, show_progress=False, callback=_iteration_callback(on_iteration))
    return _factor_arrays(model)


def item_gram(item_factors: FloatArray, regularization: float) -> npt.NDArray[np.float64]:
    """``YᵀY + λI``, the part of every user's ALS system that does not depend on the user:
    computed once per model (it is a pass over every item vector)."""
    item = np.asarray(item_factors, dtype=np.float64)
    gram: npt.NDArray[np.float64] = item.T @ item + regularization * np.eye(item.shape[1])
    return gram


def als_user_factors(
    confidences: sp.csr_matrix,
    item_factors: FloatArray,
    *,
    regularization: float,
    gram: npt.NDArray[np.float64] | None = None,
) -> FloatArray:
    """The ALS least-squares step for a batch of users (Hu et al. 2008, eq. 4).

    ``x_u = (YᵀY + λI + Yᵀ(Cᵘ - I)Y)⁻¹ Yᵀ Cᵘ p(u)``, with confidences already scaled by alpha:
    a positive entry c means p=1 with confidence c, a negative one p=0 with confidence |c|, and
    every other item p=0 with confidence 1 — the convention of ``implicit``'s
    ``recalculate_user``, so a user refitted here matches one refitted there.

    Only the items in the histories are read, so a request costs O(history), not O(catalogue),
    when ``gram`` (:func:`item_gram`) is passed in.

    Returns:
        (n_rows x factors) float32; a row with no entries gets the zero vector.
    """
    if gram is None:
        gram = item_gram(item_factors, regularization)
    positive = confidences.copy()
    positive.data = np.maximum(positive.data, 0.0)
    rhs = np.asarray(positive @ item_factors, dtype=np.float64)  # Yᵀ Cᵘ p(u), one row per user
    if not (np.abs(confidences.data) != 1.0).any():  # one shared system (alpha = 1, binary)
        return np.linalg.solve(gram, rhs.T).T.astype(np.float32)
    return _solve_per_user(confidences, item_factors, gram, rhs)


def als_fold_in(
    items: npt.NDArray[np.integer[Any]],
    confidence: float,
    item_factors: FloatArray,
    gram: npt.NDArray[np.float64],
) -> FloatArray:
    """:func:`als_user_factors` for one user whose distinct ``items`` all have ``confidence``
    (> 0): the same system, built from the history's item vectors alone — no sparse matrices,
    whose construction cost more than the solve on the real-time path."""
    vectors = np.asarray(item_factors[items], dtype=np.float64)
    system = gram if confidence == 1.0 else gram + (confidence - 1.0) * (vectors.T @ vectors)
    rhs = confidence * vectors.sum(axis=0)
    solved: FloatArray = np.linalg.solve(system, rhs).astype(np.float32)
    return solved


def _solve_per_user(
    confidences: sp.csr_matrix,
    item: FloatArray,
    gram: npt.NDArray[np.float64],
    rhs: npt.NDArray[np.float64],
) -> FloatArray:
    """Per-user systems, solved in groups of similar history length (powers of two), so that
    padding to a group's longest history costs at most twice the work, not the longest user's."""
    lengths = np.diff(confidences.indptr)
    groups = np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64)
    result = np.empty(rhs.shape, dtype=np.float32)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        result[rows] = _solve_padded(confidences[rows], item, gram, rhs[rows])
    return result


def _solve_padded(
    confidences: sp.csr_matrix,
    item: FloatArray,
    gram: npt.NDArray[np.float64],
    rhs: npt.NDArray[np.float64],
) -> FloatArray:
    """Batched solves of ``(gram + Σ_i (|c_ui| - 1) y_i y_iᵀ) x_u = rhs_u``, histories padded."""
    extra = np.abs(confidences.data.astype(np.float64)) - 1.0
    n_rows, n_factors = rhs.shape
    lengths = np.diff(confidences.indptr)
    longest = max(int(lengths.max(initial=0)), 1)
    step = max(1, _FOLD_IN_BUDGET // (longest * n_factors))
    result = np.empty((n_rows, n_factors), dtype=np.float32)
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        lo, hi = confidences.indptr[start], confidences.indptr[stop]
        rows = np.repeat(np.arange(stop - start), lengths[start:stop])
        slots = np.arange(lo, hi) - confidences.indptr[start:stop][rows]
        # padded[u, k] = y_i for the k-th item of user u, zero beyond its history
        padded = np.zeros((stop - start, longest, n_factors))
        padded[rows, slots] = item[confidences.indices[lo:hi]]
        weighted = np.zeros((stop - start, longest, 1))
        weighted[rows, slots, 0] = extra[lo:hi]
        systems = gram + (padded * weighted).transpose(0, 2, 1) @ padded
        result[start:stop] = np.linalg.solve(systems, rhs[start:stop, :, None])[..., 0]
    return result


# BPR -------------------------------------------------------------------------------------------
def fit_bpr(
    matrix: sp.csr_matrix,
    *,
    factors: int,
    learning_rate: float,
    regularization: float,
    iterations: int,
    seed: int,
    on_iteration: IterationFn | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Bayesian Personalized Ranking (Rendle et al. 2009) through ``implicit``.

    Returns:
        ``(user_factors, item_factors)`` with ``factors + 1`` columns: implicit appends an item
        bias column to the items and a constant 1 to the users.
    """
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    # one thread: implicit's Hogwild SGD with several threads races, and the same seed must give
    # the same model
    model = BayesianPersonalizedRanking(
        factors=factors, learning_rate=learning_rate, regularization=regularization,
        iterations=iterations, num_threads=1, random_state=seed,
    )  # fmt: skip
    model.fit(matrix, show_progress=False, callback=_iteration_callback(on_iteration))
    return _factor_arrays(model)


def mean_item_factors(history: sp.csr_matrix, item_factors: FloatArray) -> FloatArray:
    """Each row's mean item factor vector over its history (zero for an empty row)."""
    counts = np.asarray(history.sum(axis=1), dtype=np.float32).ravel()
    sums = np.asarray(history @ item_factors, dtype=np.float32)
    return np.asarray(sums / np.maximum(counts, 1.0)[:, None], dtype=np.float32)


# matrices --------------------------------------------------------------------------------------
def impression_matrix(data: TrainingData) -> sp.csr_matrix:
    """(n_users x n_items) binary: items shown to a user that the user never interacted with."""
    shown = sp.csr_matrix(
        (np.ones(len(data.negative_users), np.float32), (data.negative_users, data.negative_items)),
        shape=(data.n_users, data.n_items),
    )
    shown.sum_duplicates()
    shown.data[:] = 1.0
    interacted = data.user_item_matrix()
    interacted.data[:] = 1.0
    negatives = (shown - shown.multiply(interacted)).tocsr()
    negatives.eliminate_zeros()
    return negatives


def known_users(users: npt.NDArray[np.int32], n_users: int) -> npt.NDArray[np.bool_]:
    """Which query users the model saw in training (-1 and users added later did not)."""
    return (users >= 0) & (users < n_users)


def _iteration_callback(on_iteration: IterationFn | None) -> Callable[..., None] | None:
    if on_iteration is None:
        return None
    callback = on_iteration

    def report(iteration: int, *_: object) -> None:
        callback(iteration)

    return report


def _factor_arrays(model: object) -> tuple[FloatArray, FloatArray]:
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)  # type: ignore[attr-defined]
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)  # type: ignore[attr-defined]
    return users, items
