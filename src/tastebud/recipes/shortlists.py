"""Shortlists: each trained user's best items, scored at training time, for real-time answers.

Scoring a user over a large catalogue is one pass over every item vector (100k items x 64
factors: 25.6 MB, most of an uncached answer's time). Most users ask again before they act
again, so the scores their history gives are known at training time: each user's best
``length`` items are kept with the model, with a key of the history they were scored from.

A request that excludes seen items (the default), for a user whose history still has that key
(no event since training), answers from the shortlist when it can do so exactly: after the
filter and deleted items are taken out, at least
``k`` items must remain *and* the k-th must score strictly above the shortlist's last item, so
nothing outside the shortlist could have ranked. Otherwise the full scan answers, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from tastebud.recipes.base import FloatArray, IntArray, ProgressFn, Query, TrainingData
from tastebud.recipes.topk import best

SHORTLIST_FROM_ITEMS = 20_000  # below this a full scan costs less than ~0.2 ms: no shortlists
_NO_KEY = np.uint64(0)

Scorer = Callable[[Query], FloatArray]


def history_key(items: IntArray) -> np.uint64:
    """A 64-bit key of a history as a set of item indexes (order and repeats ignored)."""
    distinct = np.unique(np.asarray(items, dtype=np.int32))
    digest = hashlib.blake2b(distinct.tobytes(), digest_size=8).digest()
    key = np.frombuffer(digest, dtype=np.uint64)[0]
    return key if key != _NO_KEY else np.uint64(1)


def build(
    score: Scorer, data: TrainingData, length: int, progress: ProgressFn | None = None
) -> dict[str, npt.NDArray[Any]]:
    """``shortlist_items`` / ``shortlist_scores`` ((n_users x length), best first, ties by item
    index as every answer) and ``shortlist_keys`` (n_users; 0: no shortlist) of each user with
    a training history, scored by ``score`` from that history as a set of items; the history's
    own items are left out, as answers that exclude seen items leave them out.

    One user at a time, as real-time requests are scored: a batch of users is scored by other
    code paths (matrix-matrix products) whose last float bits differ, which could swap two
    nearly tied items; a shortlist must give the answer the full scan gives."""
    length = min(length, data.n_items)
    indptr, items = _histories(data)
    shortlist_items = np.zeros((data.n_users, length), np.int32)
    shortlist_scores = np.zeros((data.n_users, length), np.float32)
    keys = np.zeros(data.n_users, np.uint64)
    every = max(1, data.n_users // 100)
    for user in range(data.n_users):
        history = items[indptr[user] : indptr[user + 1]]
        if len(history):
            scores = score(Query.single(user, history))[0]
            scores[history] = -np.inf  # answers leave out what the user has (exclude_seen)
            top = best(scores, length)
            shortlist_items[user, : len(top)] = top
            shortlist_scores[user, : len(top)] = scores[top]
            shortlist_scores[user, len(top) :] = -np.inf  # fewer finite scores than `length`
            keys[user] = history_key(history)
        if progress is not None and (user + 1) % every == 0:
            progress((user + 1) / data.n_users, f"shortlists {user + 1:,}/{data.n_users:,} users")
    return {"shortlist_items": shortlist_items, "shortlist_scores": shortlist_scores,
            "shortlist_keys": keys}  # fmt: skip


def lookup(arrays: dict[str, Any], query: Query) -> tuple[IntArray, FloatArray] | None:
    """The shortlist of a one-user query whose history is the one it was scored from; None
    when there is none (no shortlists, an unknown user, a history changed since training)."""
    keys = arrays.get("shortlist_keys")
    if keys is None or len(query) != 1:
        return None
    user = int(query.users[0])
    if not 0 <= user < len(keys) or keys[user] == _NO_KEY:
        return None
    history = query.history(0)
    if keys[user] != history_key(history[history >= 0]):
        return None
    return arrays["shortlist_items"][user], arrays["shortlist_scores"][user]


def _histories(data: TrainingData) -> tuple[npt.NDArray[np.int64], IntArray]:
    """Each user's distinct training items, as ``(indptr, items)``."""
    pairs = np.unique(data.users.astype(np.int64) * data.n_items + data.items)
    users, items = np.divmod(pairs, data.n_items)
    indptr = np.zeros(data.n_users + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=data.n_users), out=indptr[1:])
    return indptr, items.astype(np.int32)
