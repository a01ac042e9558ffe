"""A "next k items" target (issue 17): a ranking for the user's next few actions, scored
against the items the user did next.

The split is ``leave_last_out(data, count=k)``: each user's last k interactions are the test's
relevant items, in time order, the first being the next item. The metrics:

- ``ndcg@10_next_k``: binary gain, each relevant item hit in the top 10 counts once, divided by
  the ideal DCG of ``min(k, 10)`` hits (``metrics.normalized_dcg_at_k``);
- ``hit_rate@10_next_k``: share of users with any of their next k items in the top 10;
- ``ndcg@10_next_item``: the same ranking against the next item alone (what a slate costs
  the very next action).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tastebud.evaluation.evaluate import rank_top_k
from tastebud.evaluation.metrics import ndcg_at_k, normalized_dcg_at_k, relevance_hits
from tastebud.evaluation.splits import Targets
from tastebud.recipes.base import FloatArray, Model, Query, ScoresHorizon

DEPTH = 10


@dataclass
class AtHorizon:
    """``model`` whose :meth:`score` is its slate for the next ``horizon`` actions
    (:meth:`ScoresHorizon.score_horizon`), so the evaluation's full ranking scores it."""

    model: ScoresHorizon
    horizon: int
    n_items: int

    def score(self, query: Query) -> FloatArray:
        return self.model.score_horizon(query, self.horizon)

    def save(self, folder: Path) -> None:
        raise NotImplementedError("a view for evaluation: save the model itself")


def next_items_metrics(model: Model, targets: Targets, *, horizon: int = 1) -> dict[str, float]:
    """The metrics of the module docstring for ``model``'s ranking at ``horizon`` (1: its
    ordinary next-item scores; more: a :class:`ScoresHorizon` model's slate)."""
    scorer = model
    if horizon > 1:
        if not isinstance(model, ScoresHorizon):
            raise TypeError(f"{type(model).__name__} has no slates (score_horizon)")
        scorer = AtHorizon(model, horizon, model.n_items)
    ranked = rank_top_k(scorer, targets.query, DEPTH)
    relevant = targets.relevant()
    counts = np.diff(targets.relevant_indptr)
    k = int(counts.max(initial=1))
    first = targets.relevant_items[targets.relevant_indptr[:-1]]
    return {
        f"ndcg@{DEPTH}_next_{k}": normalized_dcg_at_k(ranked, relevant, DEPTH),
        f"hit_rate@{DEPTH}_next_{k}": float(relevance_hits(ranked, relevant, DEPTH).any(1).mean()),
        f"ndcg@{DEPTH}_next_item": ndcg_at_k(ranked, first, DEPTH),
    }
