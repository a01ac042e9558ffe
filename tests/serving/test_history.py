"""What a request reads of a user's history (issue 14), on SQLite and PostgreSQL: with a serving
window (``serving.history_length``) of 4 events and users of 12, items from beyond every window
are still excluded, and each recipe scores from the history ``evaluate`` gives it, so served
answers equal the evaluated ranking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tastebud.engine import Engine
from tastebud.evaluation.evaluate import rank_top_k
from tastebud.recipes import Query
from tastebud.serving.recommend import top_k
from tastebud.settings import ServingSettings, Settings
from tastebud.store import Store
from tests.recipes.conftest import clustered, one_torch_thread
from tests.serving.conftest import write_clustered

__all__ = ["one_torch_thread"]  # tiny torch models on one thread, as the recipe tests

WINDOW = 4  # serving.history_length: each user has 12 events, 3 times as many
SOLUTIONS = {
    "ease": {"recipe": "user-personalization", "params": {"algorithm": "ease"}},
    "als": {"recipe": "user-personalization", "params": {"algorithm": "als", "factors": 8}},
    "items": {"recipe": "similar-items", "params": {"mode": "cosine", "history_length": 3}},
    "items-long": {"recipe": "similar-items", "params": {"mode": "cosine"}},  # window 20 > 4
    "popular": {"recipe": "popularity-count"},
    "people": {"recipe": "similar-users"},  # declares no window: reads the latest 4 events
    "sequential": {
        "recipe": "sequential",
        "params": {"epochs": 2, "hidden": 8, "max_len": 2, "batch_size": 16, "validation_users": 8},
    },
}
USERS = [f"u{u}" for u in range(60)]


@pytest.fixture
def short(store: Store, store_url: str, group: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine with a 4-event serving window over the planted clusters, every solution
    trained."""
    settings = Settings(
        home=tmp_path / "home", default_group=group, database_url=store_url,
        serving=ServingSettings(history_length=WINDOW),
    )  # fmt: skip
    engine = Engine(settings, store=store)
    interactions, _ = write_clustered(tmp_path)
    engine.import_file(group, "interactions", interactions, mode="full")
    for name, body in SOLUTIONS.items():
        engine.create_solution(group, name, body | {"evaluate": False})
        engine.train(group, name)
    yield engine
    engine.close()


def histories() -> dict[str, list[str]]:
    """Each user's items, oldest first (the planted data's timestamps follow its order)."""
    data = clustered()
    found: dict[str, list[str]] = {}
    for user, item in zip(data.users.tolist(), data.items.tolist(), strict=True):
        found.setdefault(f"u{user}", []).append(f"i{item}")
    return found


def test_items_beyond_the_window_are_never_recommended_again(short: Engine, group: str) -> None:
    everything = {f"i{i}" for i in range(40)}
    for solution in SOLUTIONS:
        for user in ("u3", "u41"):
            seen = set(histories()[user])
            assert len(seen) == 12 and len(short.store.recent_events(group, user, 100)) == 12
            answer = short.recommender.recommend(group, {"solution": solution}, user_id=user,
                                                 k=40)  # fmt: skip
            got = [r.id for r in answer.results]
            assert len(got) == len(set(got))
            # every unseen item, and not one of the 8 the 4-event window no longer holds
            assert set(got) == everything - seen, solution


def test_served_answers_equal_the_evaluated_ranking(short: Engine, group: str) -> None:
    """``evaluate`` queries with the whole history, time-ordered, and excludes it (full
    ranking, ties to the lower index): the default serving path answers the same top 10."""
    history = histories()
    for solution in ("ease", "als", "items", "items-long", "popular"):
        version = short.recommender.resolve_version(group, solution=solution)
        items = [version.items.indices(history[user]) for user in USERS]
        indptr = np.zeros(len(USERS) + 1, np.int64)
        np.cumsum([len(i) for i in items], out=indptr[1:])
        query = Query(
            users=version.users.indices(USERS), history_indptr=indptr,
            history_items=np.concatenate(items).astype(np.int32),
        )  # fmt: skip
        ranked = rank_top_k(version.model, query, 10)
        for row, user in enumerate(USERS):
            served = short.recommender.recommend(group, {"solution": solution}, user_id=user,
                                                 k=10)  # fmt: skip
            assert [r.id for r in served.results] == version.items.ids(ranked[row]), (
                solution, user)  # fmt: skip


def test_a_filter_sees_the_serving_window_whatever_the_model(short: Engine, group: str) -> None:
    """``Interactions`` conditions read the latest ``serving.history_length`` events, also for
    a model that reads fewer (popularity: none) or more (similar-items: 20)."""
    short.create_filter(
        group, "not-recent", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")'
    )
    latest = set(histories()["u3"][-WINDOW:])
    for solution in ("popular", "items-long", "ease"):
        answer = short.recommender.recommend(
            group, {"solution": solution}, user_id="u3", k=40, exclude_seen=False,
            filter_name="not-recent",
        )  # fmt: skip
        got = {r.id for r in answer.results}
        assert got == {f"i{i}" for i in range(40)} - latest, solution


def test_ties_at_the_cut_keep_the_lowest_indexes_as_evaluate_does() -> None:
    """``argpartition`` keeps any of the items tied at the k-th score; serving keeps the lowest
    indexes, as ``evaluation.rank_top_k``, so equal scores never make the two differ."""
    assert top_k(np.array([0.5, 0, 0, 1, 0, 0, 0.5, 0], np.float32), 4).tolist() == [3, 0, 6, 1]
    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 4, size=50).astype(np.float32)  # many ties
        exclude = rng.choice(50, size=5, replace=False).astype(np.int32)
        kept = np.setdiff1d(np.arange(50), exclude)
        expected = kept[np.lexsort((kept, -scores[kept]))][:7]
        assert top_k(scores, 7, exclude=exclude).tolist() == expected.tolist()
