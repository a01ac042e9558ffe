"""Shortlists: each user's best items from training, keyed by the history they came from."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.recipes import Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.shortlists import build, history_key, lookup

from .conftest import clustered


def test_a_history_key_ignores_order_and_repeats() -> None:
    assert history_key(np.array([3, 1, 2])) == history_key(np.array([1, 2, 3, 3, 1]))
    assert history_key(np.array([1, 2])) != history_key(np.array([1, 2, 3]))
    assert history_key(np.array([], np.int32)) != 0  # 0 means "no shortlist"


def test_build_keeps_each_users_best_unseen_items_in_answer_order() -> None:
    data = clustered()
    recipe = get_recipe("user-personalization")
    model = recipe.fit(data, parse_config(recipe, {"algorithm": "als", "factors": 8,
                                                   "shortlist_length": 0}), seed=1)  # fmt: skip
    arrays = build(model.score, data, length=7)
    assert arrays["shortlist_items"].shape == (data.n_users, 7)
    for user in (0, 17, 45):
        history = np.unique(data.items[data.users == user])
        scores = model.score(Query.single(user, history))[0]
        scores[history] = -np.inf  # the user's own items never make the shortlist
        expected = np.lexsort((np.arange(data.n_items), -scores))[:7]
        np.testing.assert_array_equal(arrays["shortlist_items"][user], expected)
        np.testing.assert_allclose(arrays["shortlist_scores"][user], scores[expected], rtol=1e-5)
        assert arrays["shortlist_keys"][user] == history_key(history)


def test_lookup_answers_only_for_the_history_it_was_scored_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tastebud.recipes.shortlists.SHORTLIST_FROM_ITEMS", 0)
    data: TrainingData = clustered()
    recipe = get_recipe("user-personalization")
    model = recipe.fit(data, parse_config(recipe, {"algorithm": "als", "factors": 8,
                                                   "shortlist_length": 5}), seed=1)  # fmt: skip
    history = data.items[data.users == 3]
    found = lookup(model.arrays, Query.single(3, history[::-1].copy()))  # order does not count
    assert found is not None and len(found[0]) == 5
    assert lookup(model.arrays, Query.single(3, np.append(history, 39))) is None  # a new event
    assert lookup(model.arrays, Query.single(-1, history)) is None  # a user the model never saw
    assert lookup(model.arrays, Query.single(4, history)) is None  # someone else's history
    off = recipe.fit(data, parse_config(recipe, {"algorithm": "als", "factors": 8,
                                                 "shortlist_length": 0}), seed=1)  # fmt: skip
    assert lookup(off.arrays, Query.single(3, history)) is None
