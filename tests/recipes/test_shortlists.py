"""Shortlists: each user's best items from training, keyed by the history they came from."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tastebud.recipes import Query, TrainingData, get_recipe, parse_config
from tastebud.recipes.shortlists import Shortlist, build, history_key, lookup

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
    assert found is not None and len(found.items) == 5
    assert found.floor == found.scores[-1]
    assert lookup(model.arrays, Query.single(3, np.append(history, 39))) is None  # a new event
    assert lookup(model.arrays, Query.single(-1, history)) is None  # a user the model never saw
    assert lookup(model.arrays, Query.single(4, history)) is None  # someone else's history
    off = recipe.fit(data, parse_config(recipe, {"algorithm": "als", "factors": 8,
                                                 "shortlist_length": 0}), seed=1)  # fmt: skip
    assert lookup(off.arrays, Query.single(3, history)) is None


def rescorable(monkeypatch: pytest.MonkeyPatch) -> tuple[TrainingData, Any]:
    """ALS with shortlists of 20 on 120 items, 4 of them the widest (so the bound is used)."""
    monkeypatch.setattr("tastebud.recipes.shortlists.SHORTLIST_FROM_ITEMS", 0)
    monkeypatch.setattr("tastebud.recipes.shortlists.WIDE_ITEMS", 4)
    data = clustered(n_users=80, n_items=120, per_user=15)
    recipe = get_recipe("user-personalization")
    model = recipe.fit(data, parse_config(recipe, {"algorithm": "als", "factors": 8,
                                                   "shortlist_length": 20}), seed=1)  # fmt: skip
    return data, model


def test_a_changed_users_rescored_shortlist_bounds_every_other_item(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After new events, no item outside the rescored candidates scores above the floor under
    the user's new vector, and most changed users keep a shortlist above it."""
    data, model = rescorable(monkeypatch)
    assert model.arrays["shortlist_norm_bound"][0] > 0  # the bound is not vacuous here
    rng = np.random.default_rng(3)
    useful = 0
    for user in range(data.n_users):
        history = np.unique(data.items[data.users == user])
        new = np.setdiff1d(np.arange(data.n_items), history)
        clicked = rng.choice(new, size=int(rng.integers(1, 3)), replace=False)
        query = Query.single(user, np.concatenate([history, clicked]).astype(np.int32))
        found = model.shortlist(query)
        assert isinstance(found, Shortlist)
        assert found.floor > model.arrays["shortlist_scores"][user][-1]  # rescored, bound raised
        scores = model.score(query)[0]
        outside = np.setdiff1d(np.arange(data.n_items), np.union1d(found.items, query.history(0)))
        assert (scores[outside] <= found.floor).all()  # seen items are never answered
        np.testing.assert_allclose(found.scores, scores[found.items], rtol=1e-5, atol=1e-6)
        assert (np.diff(found.scores) <= 0).all()  # best first
        unseen = np.setdiff1d(found.items, query.history(0))
        useful += int(np.sort(scores[unseen])[-5] > found.floor)
    assert useful >= data.n_users // 2


def test_models_scored_otherwise_are_not_rescored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tastebud.recipes.shortlists.SHORTLIST_FROM_ITEMS", 0)
    data = clustered()
    recipe = get_recipe("user-personalization")
    params = {"algorithm": "als", "factors": 8, "shortlist_length": 5, "exploration_weight": 0.3}
    model = recipe.fit(data, parse_config(recipe, params), seed=1)
    assert "shortlist_vectors" not in model.arrays
    history = data.items[data.users == 3]
    assert model.shortlist(Query.single(3, np.append(history, 39))) is None


def test_a_full_scan_becomes_the_users_reference_for_later_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scored in full after several events, a user's next event is measured from that scan:
    the bound still holds, and it is tighter than the one from training."""
    data, model = rescorable(monkeypatch)
    trained = {key: model.arrays[key] for key in model.arrays if key.startswith("shortlist_")}
    rng = np.random.default_rng(5)
    tighter = 0
    for user in range(data.n_users):
        history = np.unique(data.items[data.users == user])
        new = rng.choice(np.setdiff1d(np.arange(data.n_items), history), size=7, replace=False)
        before = Query.single(user, np.concatenate([history, new[:6]]).astype(np.int32))
        scores = model.score(before)[0]
        model.scanned(before, scores)
        exact = model.shortlist(before)
        assert isinstance(exact, Shortlist)
        unseen = scores.copy()
        unseen[before.history(0)] = -np.inf
        np.testing.assert_array_equal(exact.items, np.argsort(-unseen, kind="stable")[:20])
        assert exact.floor == exact.scores[-1]  # nothing changed since the scan: exact
        after = Query.single(user, np.append(before.history(0), new[6]).astype(np.int32))
        found = model.shortlist(after)
        assert isinstance(found, Shortlist)
        now = model.score(after)[0]
        outside = np.setdiff1d(np.arange(data.n_items), np.union1d(found.items, after.history(0)))
        assert (now[outside] <= found.floor).all()
        from_training = lookup(trained, after, model.by_vector)
        assert from_training is not None
        tighter += int(found.floor < from_training.floor)
    assert tighter >= data.n_users * 3 // 4
