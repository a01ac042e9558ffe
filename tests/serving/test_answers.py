"""Every kind of answer on planted two-cluster data: the right cluster comes first."""

from __future__ import annotations

import numpy as np
import pytest

from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tastebud.recipes import get_recipe, parse_config
from tastebud.serving.recommend import rank_by_scores
from tests.serving.test_explain import pairs, version_of

CLUSTER_A_ITEMS = {f"i{i}" for i in range(20)}
CLUSTER_A_USERS = {f"u{u}" for u in range(30)}


@pytest.fixture
def trained(loaded: Engine, group: str) -> Engine:
    solutions = {
        "for-you": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
        "like-this": {"recipe": "similar-items", "params": {"mode": "cosine"}},
        "people": {"recipe": "similar-users"},
        "affinity": {"recipe": "item-affinity", "params": {"algorithm": "ease"}},
    }
    for name, body in solutions.items():
        loaded.create_solution(group, name, body | {"evaluate": False})
        loaded.train(group, name)
    return loaded


def ids(answer) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.id for r in answer.results]


def test_user_recommendations_stay_in_the_users_cluster(trained: Engine, group: str) -> None:
    answer = trained.recommender.recommend(group, {"solution": "for-you"}, user_id="u3", k=5)
    assert set(ids(answer)) <= CLUSTER_A_ITEMS
    history = set(trained.recommender.user_history(group, "u3"))
    assert not history & set(ids(answer))


def test_similar_items_and_cold_item(trained: Engine, group: str) -> None:
    answer = trained.recommender.similar_items(group, {"solution": "like-this"}, item_id="i2", k=5)
    assert set(ids(answer)) <= CLUSTER_A_ITEMS - {"i2"}
    unknown = trained.recommender.similar_items(group, {"solution": "like-this"},
                                                item_id="never-seen", k=3)  # fmt: skip
    assert len(unknown.results) == 3  # popular items instead of an error


def test_similar_users_never_include_the_user(trained: Engine, group: str) -> None:
    answer = trained.recommender.similar_users(group, {"solution": "people"}, user_id="u4", k=5)
    assert "u4" not in ids(answer) and set(ids(answer)) <= CLUSTER_A_USERS
    with pytest.raises(NotFound):
        trained.recommender.similar_users(group, {"solution": "people"}, user_id="nobody", k=5)


def test_segments_for_an_item_and_an_attribute(trained: Engine, group: str) -> None:
    by_item = trained.recommender.users_for_item(group, {"solution": "affinity"}, item_id="i25",
                                                 k=10)  # fmt: skip
    assert not set(ids(by_item)) & CLUSTER_A_USERS
    by_genre = trained.recommender.users_for_item(group, {"solution": "affinity"},
                                                  attribute="GENRES=a", k=10)  # fmt: skip
    assert set(ids(by_genre)) <= CLUSTER_A_USERS
    with pytest.raises(NotFound, match="GENRES=z"):
        trained.recommender.users_for_item(group, {"solution": "affinity"}, attribute="GENRES=z")
    with pytest.raises(InvalidInput, match="exactly one"):
        trained.recommender.users_for_item(group, {"solution": "affinity"})


def test_erased_users_are_never_answered(trained: Engine, group: str) -> None:
    before = trained.recommender.similar_users(group, {"solution": "people"}, user_id="u4", k=29)
    erased = ids(before)[:3]
    trained.delete_users(group, erased)
    after = trained.recommender.similar_users(group, {"solution": "people"}, user_id="u4", k=29)
    assert not set(erased) & set(ids(after))
    segment = trained.recommender.users_for_item(group, {"solution": "affinity"}, item_id="i1",
                                                 k=60)  # fmt: skip
    assert not set(erased) & set(ids(segment))


def test_a_recipe_without_the_capability_says_so(trained: Engine, group: str) -> None:
    with pytest.raises(InvalidInput, match="does not answer similar users"):
        trained.recommender.similar_users(group, {"solution": "for-you"}, user_id="u1")


def test_rank_by_scores_orders_ties_by_input_and_puts_unknown_and_nan_items_last() -> None:
    data = pairs(n_pairs=3, n_users=20)
    version = version_of(get_recipe("popularity-count").fit(data, parse_config(
        get_recipe("popularity-count"), {})), data, "popularity-count")  # fmt: skip
    scores = np.array([0.5, 0.9, 0.5, np.nan, 0.1, 0.9], np.float32)  # items i0..i5
    listed = ["i0", "new", "i2", "i3", "i1", "i5", "i4"]
    ranked = rank_by_scores(version, scores, listed)
    assert [s.id for s in ranked] == ["i1", "i5", "i0", "i2", "i4", "i3", "new"]
    assert [s.score for s in ranked][:5] == pytest.approx([0.9, 0.9, 0.5, 0.5, 0.1])
    assert ranked[-1].score is None
