"""Embeddings of the recipes that have them, on the planted two-cluster data: two trainings with
different seeds agree once aligned, and neither scores nor top-k move with the alignment."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tastebud.embeddings.alignment import Reference, align
from tastebud.ids import Vocabulary
from tastebud.recipes import Embeddings, Query, get_recipe, parse_config
from tests.recipes.conftest import clustered

# 6 epochs: after 3, two seeds of this tiny model agreed at cosine 0.8997, on the edge of 0.9
TINY_SEQUENTIAL = {"epochs": 6, "hidden": 16, "max_len": 8, "batch_size": 16,
                   "validation_users": 8}  # fmt: skip
CASES = [
    ("user-personalization", {"algorithm": "als", "factors": 8}),
    ("user-personalization", {"algorithm": "bpr", "factors": 8}),
    ("item-affinity", {"algorithm": "als", "factors": 8}),
    ("sequential", TINY_SEQUENTIAL),
]


def fit(recipe_name: str, params: dict[str, Any], *, seed: int) -> Embeddings:
    recipe = get_recipe(recipe_name)
    model = recipe.fit(clustered(), parse_config(recipe, params), seed=seed)
    assert isinstance(model, Embeddings)
    return model


def histories(n_users: int = 60) -> Query:
    """Every training user, with its training items as the history (oldest first)."""
    data = clustered()
    indptr, items = data.sequences()
    return Query(users=np.arange(n_users, dtype=np.int32), history_indptr=indptr,
                 history_items=items)  # fmt: skip


@pytest.mark.parametrize(("recipe", "params"), CASES)
def test_two_seeds_agree_after_alignment_and_answers_do_not_move(
    recipe: str, params: dict[str, Any]
) -> None:
    first, second = fit(recipe, params, seed=0), fit(recipe, params, seed=1)
    ids = Vocabulary([f"i{i}" for i in range(40)])
    old, new = first.item_embeddings(), second.item_embeddings()
    assert old is not None and new is not None
    space = align("sv-2", recipe=recipe, items=ids, vectors=new,
                  previous=Reference("sv-1", recipe, "space-1", ids, old))  # fmt: skip
    assert space.space_id == "space-1" and space.shared_items == 40
    assert space.cosine_after is not None and space.cosine_after >= 0.9
    assert space.cosine_before is not None and space.cosine_before < 0.5  # unrelated axes

    query = histories()
    users, present = second.user_embeddings(query)
    assert present.all()
    raw = users @ new.T
    aligned = space.apply(users) @ space.apply(new).T
    np.testing.assert_allclose(aligned, raw, rtol=1e-4, atol=1e-4)  # dot products kept
    # the aligned top 10 are the raw top 10 (up to items tied within float32 rounding)
    top_aligned = np.argsort(-aligned, axis=1, kind="stable")[:, :10]
    best_raw = -np.sort(-raw, axis=1)[:, :10]
    np.testing.assert_allclose(np.take_along_axis(raw, top_aligned, 1), best_raw, atol=1e-4)


@pytest.mark.parametrize(("recipe", "params"), CASES)
def test_user_vectors_dotted_with_item_vectors_are_the_scores(
    recipe: str, params: dict[str, Any]
) -> None:
    model = fit(recipe, params, seed=0)
    query = histories()
    users, _ = model.user_embeddings(query)
    items = model.item_embeddings()
    assert items is not None
    scores = model.score(query)  # type: ignore[attr-defined]
    np.testing.assert_allclose(users @ items.T, scores, rtol=1e-3, atol=1e-3)


def test_a_user_with_nothing_to_go_on_has_no_vector() -> None:
    model = fit("sequential", TINY_SEQUENTIAL, seed=0)
    query = Query(users=np.array([-1, 3], np.int32), history_indptr=np.array([0, 0, 2]),
                  history_items=np.array([1, 2], np.int32))  # fmt: skip
    vectors, present = model.user_embeddings(query)
    assert present.tolist() == [False, True] and not vectors[0].any()
    als = fit("user-personalization", {"algorithm": "als", "factors": 8}, seed=0)
    _, known = als.user_embeddings(Query(users=np.array([-1, 3], np.int32),
                                         history_indptr=np.zeros(3, np.int64),
                                         history_items=np.zeros(0, np.int32)))  # fmt: skip
    assert known.tolist() == [False, True]  # a trained user keeps its vector


def test_ease_has_no_embeddings() -> None:
    model = fit("user-personalization", {"algorithm": "ease"}, seed=0)
    assert model.item_embeddings() is None
