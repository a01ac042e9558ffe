"""Shortlists: each trained user's best items, scored at training time, for real-time answers.

Scoring a user over a large catalogue is one pass over every item vector (100k items x 64
factors: 25.6 MB, most of an uncached answer's time). Most users ask again before they act
again, so the scores their history gives are known at training time: each user's best
``length`` items are kept with the model, with a key of the history they were scored from.

A request that excludes seen items (the default) answers from the shortlist when it can do so
exactly: after the filter and deleted items are taken out, at least ``k`` items must remain
*and* the k-th must score strictly above the shortlist's floor, the most any item outside it can
score. For a user whose history still has the training key (no event since), the floor is the
shortlist's last score.

A user with events since training keeps a shortlist too where scores are inner products with a
user vector (ALS): the shortlist, the user's training history (left out of it) and the few
items of largest norm are rescored with the new vector ``u'``, and the floor raised by how far
the vector moved. Any other item scored at most ``last`` then, so now ``u'·v = u·v + (u'-u)·v
≤ last + |u'-u|·|v|`` (Cauchy-Schwarz), with ``|v|`` at most the largest norm outside the widest
items: one event moves ``u`` little, so most changed users are still answered from a few
hundred items instead of the whole catalogue. The
candidates' scores are computed by a smaller product than the full scan's, so they may differ
from it in the last float32 bit: two items tied to within that may be ordered differently.
Otherwise the full scan answers, as before.

Every event moves ``u`` further from its training vector, so the bound loosens and, a few events
on, most requests of an active user took the full scan again. A full scan scores every item
exactly, so it leaves a new reference point (:class:`Refreshed`, this process's memory): the
user's best items under the vector of that moment, which the next events are measured from.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tastebud.recipes.base import FloatArray, IntArray, ProgressFn, Query, TrainingData
from tastebud.recipes.topk import best

SHORTLIST_FROM_ITEMS = 20_000  # below this a full scan costs less than ~0.2 ms: no shortlists
WIDE_ITEMS = 256  # the items of largest norm, rescored with every changed user's shortlist
REFRESHED_USERS = 20_000  # users whose latest full scan a process keeps (~2 KB each at 200 items)
_NO_KEY = np.uint64(0)

Scorer = Callable[[Query], FloatArray]


@dataclass(frozen=True, slots=True)
class VectorScoring:
    """How a model scores by inner products, which lets a changed user's shortlist be rescored:
    ``vector`` gives a one-user query's user vector (None: it is scored otherwise), ``scores``
    the (1 x n_items) scores from that vector exactly as the model's, ``items`` the item
    vectors."""

    vector: Callable[[Query], FloatArray | None]
    scores: Callable[[FloatArray], FloatArray]
    items: FloatArray


@dataclass(frozen=True, slots=True)
class Shortlist:
    """One user's candidate items, best first (ties by item index), and ``floor``: no item
    outside them scores above it, so top-k from them is exact when the k-th is above it."""

    items: IntArray
    scores: FloatArray
    floor: float


@dataclass(frozen=True, slots=True)
class Reference:
    """A user's exact scores at one point: the user vector then, the best items (best first)
    and their scores, and the items left out of them (the user's history then)."""

    vector: FloatArray
    items: IntArray
    scores: FloatArray
    history: IntArray


class Refreshed:
    """The reference each user's latest full scan left (its history key with it), for the most
    recently scanned ``capacity`` users; shared by a process's request threads."""

    def __init__(self, capacity: int = REFRESHED_USERS) -> None:
        self._capacity = capacity
        self._references: OrderedDict[int, tuple[np.uint64, Reference]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user: int) -> tuple[np.uint64, Reference] | None:
        with self._lock:
            return self._references.get(user)

    def put(self, user: int, key: np.uint64, reference: Reference) -> None:
        with self._lock:
            self._references[user] = (key, reference)
            self._references.move_to_end(user)
            while len(self._references) > self._capacity:
                self._references.popitem(last=False)


def history_key(items: IntArray) -> np.uint64:
    """A 64-bit key of a history as a set of item indexes (order and repeats ignored)."""
    distinct = np.unique(np.asarray(items, dtype=np.int32))
    digest = hashlib.blake2b(distinct.tobytes(), digest_size=8).digest()
    key = np.frombuffer(digest, dtype=np.uint64)[0]
    return key if key != _NO_KEY else np.uint64(1)


def build(
    score: Scorer,
    data: TrainingData,
    length: int,
    progress: ProgressFn | None = None,
    *,
    by_vector: VectorScoring | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """``shortlist_items`` / ``shortlist_scores`` ((n_users x length), best first, ties by item
    index as every answer) and ``shortlist_keys`` (n_users; 0: no shortlist) of each user with
    a training history, scored by ``score`` from that history as a set of items; the history's
    own items are left out, as answers that exclude seen items leave them out.

    With ``by_vector`` (each user scored from its vector, computed once) also what rescores a
    changed user's shortlist: ``shortlist_vectors`` (each user's vector), the training
    histories (``shortlist_history_indptr`` / ``_items``: left out of the shortlist, they may
    score above it), ``shortlist_wide_items`` (the :data:`WIDE_ITEMS` item indexes of largest
    norm) and ``shortlist_norm_bound`` (the largest norm of the other items).

    One user at a time, as real-time requests are scored: a batch of users is scored by other
    code paths (matrix-matrix products) whose last float bits differ, which could swap two
    nearly tied items; a shortlist must give the answer the full scan gives."""
    length = min(length, data.n_items)
    indptr, items = _histories(data)
    shortlist_items = np.zeros((data.n_users, length), np.int32)
    shortlist_scores = np.zeros((data.n_users, length), np.float32)
    keys = np.zeros(data.n_users, np.uint64)
    vectors = np.zeros((data.n_users, by_vector.items.shape[1] if by_vector else 0), np.float32)
    every = max(1, data.n_users // 100)
    for user in range(data.n_users):
        history = items[indptr[user] : indptr[user + 1]]
        if len(history):
            query = Query.single(user, history)
            if by_vector is None:
                scores = score(query)[0]
            else:
                vectors[user] = _vector_of(by_vector, query)
                scores = by_vector.scores(vectors[user])[0]
            scores[history] = -np.inf  # answers leave out what the user has (exclude_seen)
            top = best(scores, length)
            shortlist_items[user, : len(top)] = top
            shortlist_scores[user, : len(top)] = scores[top]
            shortlist_scores[user, len(top) :] = -np.inf  # fewer finite scores than `length`
            keys[user] = history_key(history)
        if progress is not None and (user + 1) % every == 0:
            progress((user + 1) / data.n_users, f"shortlists {user + 1:,}/{data.n_users:,} users")
    arrays: dict[str, npt.NDArray[Any]] = {"shortlist_items": shortlist_items,
                                           "shortlist_scores": shortlist_scores,
                                           "shortlist_keys": keys}  # fmt: skip
    if by_vector is not None:
        arrays |= {"shortlist_vectors": vectors, "shortlist_history_indptr": indptr,
                   "shortlist_history_items": items, **_norm_bound(by_vector.items)}  # fmt: skip
    return arrays


def _vector_of(by_vector: VectorScoring, query: Query) -> FloatArray:
    found = by_vector.vector(query)
    if found is None:  # the model scores this history otherwise
        raise ValueError(f"user {query.users[0]} has a history but no vector to rescore with")
    return found.reshape(-1)


def _norm_bound(item_vectors: FloatArray) -> dict[str, npt.NDArray[Any]]:
    """The :data:`WIDE_ITEMS` items of largest norm, and the largest norm of all others."""
    norms = np.linalg.norm(np.asarray(item_vectors, np.float64), axis=1)
    wide = min(WIDE_ITEMS, len(norms))
    order = np.argsort(-norms, kind="stable")
    bound = norms[order[wide]] if wide < len(norms) else 0.0
    return {"shortlist_wide_items": np.sort(order[:wide]).astype(np.int32),
            "shortlist_norm_bound": np.array([bound], np.float64)}  # fmt: skip


def lookup(
    arrays: dict[str, Any],
    query: Query,
    by_vector: VectorScoring | None = None,
    refreshed: Refreshed | None = None,
) -> Shortlist | None:
    """The shortlist of a one-user query: as scored at training (or by the user's latest full
    scan, ``refreshed``) while its history is the one it was scored from, else rescored with its
    user vector now when the model keeps what that needs (see :func:`build`); None otherwise
    (no shortlists, an unknown user)."""
    keys = arrays.get("shortlist_keys")
    if keys is None or len(query) != 1:
        return None
    user = int(query.users[0])
    if not 0 <= user < len(keys) or keys[user] == _NO_KEY:
        return None
    history = query.history(0)
    key = history_key(history[history >= 0])
    latest = refreshed.get(user) if refreshed is not None else None
    if latest is not None:
        scanned_key, reference = latest
    else:
        scanned_key, reference = keys[user], _trained(arrays, user)
    if scanned_key == key:
        return Shortlist(reference.items, reference.scores, float(reference.scores[-1]))
    if by_vector is None or "shortlist_vectors" not in arrays:
        return None
    wide = arrays["shortlist_wide_items"], float(arrays["shortlist_norm_bound"][0])
    return _rescored(reference, by_vector.vector(query), by_vector.items, wide)


def refresh(
    refreshed: Refreshed, query: Query, vector: FloatArray | None, scores: FloatArray,
    length: int,
) -> None:  # fmt: skip
    """Keep what a one-user query's full scan found (``scores``, every item's, from ``vector``)
    as the user's new reference point, its history left out as :func:`build` leaves it out."""
    if vector is None or len(query) != 1 or query.users[0] < 0:
        return
    user = int(query.users[0])
    history = query.history(0)
    seen = np.unique(history[history >= 0]).astype(np.int32)
    unseen = np.array(scores, np.float32)
    unseen[seen] = -np.inf
    top = best(unseen, min(length, len(unseen)))
    reference = Reference(vector.reshape(-1), top.astype(np.int32), unseen[top], seen)
    refreshed.put(user, history_key(seen), reference)


def _trained(arrays: dict[str, Any], user: int) -> Reference:
    """The reference :func:`build` kept for ``user`` (its vector only where it keeps vectors)."""
    vectors = arrays.get("shortlist_vectors")
    history = np.zeros(0, np.int32)
    if vectors is not None:
        indptr = arrays["shortlist_history_indptr"]
        history = arrays["shortlist_history_items"][indptr[user] : indptr[user + 1]]
    return Reference(
        vectors[user] if vectors is not None else np.zeros(0, np.float32),
        arrays["shortlist_items"][user], arrays["shortlist_scores"][user], history,
    )  # fmt: skip


def _rescored(
    reference: Reference, now: FloatArray | None, item_vectors: FloatArray,
    wide: tuple[IntArray, float],
) -> Shortlist | None:  # fmt: skip
    """A changed user's shortlist: the reference's items and history and ``wide``'s items (those
    of largest norm), scored with the user's vector now; every other item scored at most
    ``last`` then, and has a norm of at most ``wide``'s bound."""
    wide_items, bound = wide
    last = float(reference.scores[-1])
    if now is None or not np.isfinite(last):  # -inf: the shortlist was all the user had left
        return None
    now = now.reshape(-1)
    moved = float(np.linalg.norm(now.astype(np.float64) - reference.vector))
    items = np.unique(np.concatenate([reference.items, reference.history, wide_items]))
    scores = np.asarray(item_vectors[items] @ now, np.float32)
    order = np.lexsort((items, -scores))
    # float32 rounding of the stored last score and of the new products, with room to spare
    rounding = 1e-5 * (abs(last) + (float(np.linalg.norm(now)) + moved) * bound)
    return Shortlist(items[order], scores[order], last + moved * bound + rounding)


def _histories(data: TrainingData) -> tuple[npt.NDArray[np.int64], IntArray]:
    """Each user's distinct training items, as ``(indptr, items)``."""
    pairs = np.unique(data.users.astype(np.int64) * data.n_items + data.items)
    users, items = np.divmod(pairs, data.n_items)
    indptr = np.zeros(data.n_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=data.n_users), out=indptr[1:])
    return indptr, items.astype(np.int32)
