"""Approximate top-k (faiss IVF) for factor models: recall against exact scoring, exclusions,
filters, and the fall-back to exact answers."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from tastebud.engine import Engine
from tastebud.ids import Vocabulary
from tastebud.recipes import Query
from tastebud.serving.recommend import nearest_items, recommend_items
from tastebud.serving.versions import LoadedVersion, empty_slots, with_nearest
from tastebud.settings import ServingSettings, Settings

N_ITEMS, DIMENSIONS = 4_000, 16


class Factors:
    """A model scoring by inner products of fixed user and item vectors."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        self.users, self.items = users, items

    def score(self, query: Query) -> np.ndarray:
        return np.asarray(self.users[query.users] @ self.items.T, dtype=np.float32)

    def item_vectors(self) -> np.ndarray:
        return self.items

    def user_vectors(self, query: Query) -> np.ndarray:
        return self.users[query.users]

    def save(self, folder: Any) -> None:
        raise NotImplementedError


@pytest.fixture(scope="module")
def version() -> LoadedVersion:
    rng = np.random.default_rng(0)
    # Tastes cluster (as learned factors do): vectors around 40 centres.
    centres = rng.normal(size=(40, DIMENSIONS))
    users = centres[rng.integers(40, size=50)] + 0.3 * rng.normal(size=(50, DIMENSIONS))
    items = centres[rng.integers(40, size=N_ITEMS)] + 0.3 * rng.normal(size=(N_ITEMS, DIMENSIONS))
    users, items = users.astype(np.float32), items.astype(np.float32)
    user_ids, item_ids = Vocabulary([f"u{i}" for i in range(50)]), Vocabulary(
        [f"i{i}" for i in range(N_ITEMS)])  # fmt: skip
    plain = LoadedVersion(
        id="v", recipe="test", meta={}, model=Factors(users, items), users=user_ids,
        items=item_ids, popularity=np.zeros(N_ITEMS, np.float32), item_features=None,
        deleted_users=empty_slots(user_ids), deleted_items=empty_slots(item_ids),
    )  # fmt: skip
    indexed = with_nearest(plain, min_items=1_000)
    assert indexed.nearest is not None and with_nearest(plain, min_items=5_000).nearest is None
    return indexed


def test_recall_against_exact_scoring(version: LoadedVersion) -> None:
    hits = 0
    for user in range(50):
        query = Query.single(user, [user, user + 1])
        approximate = nearest_items(version, query, k=25)
        assert approximate is not None
        exact = recommend_items(version, user_id=f"u{user}", history=[f"i{user}", f"i{user + 1}"])
        hits += len({s.id for s in approximate} & {s.id for s in exact})
        assert not {f"i{user}", f"i{user + 1}"} & {s.id for s in approximate}  # seen: excluded
        scores = [s.score for s in approximate]
        assert scores == sorted(scores, reverse=True)
    assert hits / (50 * 25) >= 0.9  # the benchmark records the figure on a real-size catalogue


def test_narrow_filters_and_models_without_vectors_take_the_exact_path(
    version: LoadedVersion,
) -> None:
    class Narrow:
        def first(self, n: int) -> tuple[np.ndarray, np.ndarray]:
            return np.arange(10, dtype=np.int32), np.zeros(0, np.int32)

    assert nearest_items(version, Query.single(0), k=5, selection=Narrow()) is None  # type: ignore[arg-type]
    ease_like = dataclasses.replace(version, model=object())
    assert nearest_items(ease_like, Query.single(0), k=5) is None


def test_serving_uses_the_index_on_large_catalogues(loaded: Engine, group: str) -> None:
    settings = Settings(home=loaded.settings.home, default_group=group,
                        serving=ServingSettings(approximate_from_items=10))  # fmt: skip
    engine = Engine(settings, store=loaded.store)
    als = {"algorithm": "als", "factors": 8}
    engine.create_solution(group, "als", {"recipe": "user-personalization", "params": als})
    version = engine.train(group, "als")
    loaded_version = engine.recommender.versions.get(version.id)
    assert loaded_version.nearest is not None
    answer = engine.recommender.recommend(group, {"solution": "als"}, user_id="u45", k=5)
    exact = recommend_items(loaded_version, user_id="u45",
                            history=engine.recommender.user_history(group, "u45"), k=5)  # fmt: skip
    assert len(answer.results) == 5
    assert len({r.id for r in answer.results} & {r.id for r in exact}) >= 4
