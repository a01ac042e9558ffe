"""The predicted intent in answers and the intent segments, on the clustered data: users
u0..u29 only touch genre-a items, u30..u59 genre-b ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tastebud.batch.formats import parse_line
from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.messaging.spec import read_segment
from tastebud.segments import intent_segments, kmeans

INTENT_PARAMS = {"intent_heads": True, "epochs": 8, "hidden": 16, "max_len": 8,
                 "batch_size": 16, "lr": 0.01, "validation_users": 0}  # fmt: skip


@pytest.fixture
def backend() -> str:
    """The stores' reads are tested by their contract: SQLite only, one training per test."""
    return "sqlite"


def train_intent_solutions(engine: Engine, group: str) -> None:
    """``next``: sequential with intent heads; ``popular``: a recipe without them."""
    engine.create_solution(group, "next", {"recipe": "sequential", "evaluate": False,
                                           "params": INTENT_PARAMS})  # fmt: skip
    engine.train(group, "next")
    engine.create_solution(group, "popular", {"recipe": "popularity-count", "evaluate": False})
    engine.train(group, "popular")


@pytest.fixture
def intents(loaded: Engine, group: str) -> Engine:
    train_intent_solutions(loaded, group)
    return loaded


def test_answers_carry_the_intent_only_when_asked(intents: Engine, group: str) -> None:
    ask = intents.recommender.recommend
    plain = ask(group, {"solution": "next"}, user_id="u0", k=3)
    assert plain.intent is None
    for user, genre in (("u0", "a"), ("u45", "b")):
        answer = ask(group, {"solution": "next"}, user_id=user, k=3, include_intent=True)
        assert answer.intent is not None and set(answer.intent) == {"GENRES"}
        assert max(answer.intent["GENRES"], key=answer.intent["GENRES"].__getitem__) == genre
        assert [r.id for r in answer.results] == [
            r.id for r in ask(group, {"solution": "next"}, user_id=user, k=3).results
        ]
    visitor = ask(group, {"solution": "next"}, user_id=None, k=3, include_intent=True)
    assert visitor.intent == {}  # no history: nothing to predict from
    with pytest.raises(InvalidInput, match=r"\(popularity-count\) has no intent heads"):
        ask(group, {"solution": "popular"}, user_id="u0", k=3, include_intent=True)
    recommender = intents.recommender
    popular = recommender.resolve_version(group, solution="popular")
    with pytest.raises(InvalidInput, match="has no intent heads"):
        intent_segments(recommender, group, popular, clusters=2)
    version = recommender.resolve_version(group, solution="next")
    with pytest.raises(InvalidInput, match=r"within 2\.\.256"):
        intent_segments(recommender, group, version, clusters=1)
    with pytest.raises(InvalidInput, match="at least as many users with events"):
        intent_segments(recommender, group, version, clusters=61)


def test_intent_segments_recover_the_planted_clusters(
    intents: Engine, group: str, tmp_path: Path
) -> None:
    recommender = intents.recommender
    version = recommender.resolve_version(group, solution="next")
    found = intent_segments(recommender, group, version, clusters=2)
    assert sorted(c.size for c in found.clusters) == [30, 30] and found.without_history == 0
    first = {found.users[f"u{u}"] for u in range(30)}
    second = {found.users[f"u{u}"] for u in range(30, 60)}
    assert len(first) == 1 and len(second) == 1 and first != second
    (a,) = first
    assert max(found.clusters[a].intent["GENRES"].items(), key=lambda kv: kv[1])[0] == "a"
    files = found.write(tmp_path / "segments")
    _, users = read_segment((tmp_path / "segments" / f"cluster-{a}.jsonl").open(), source="x")
    assert sorted(users) == sorted(f"u{u}" for u in range(30))
    line = (tmp_path / "segments" / f"cluster-{a}.jsonl").read_text().splitlines()[0]
    assert parse_line(line, "recommend").request.user_id in users  # type: ignore[union-attr]
    summary = json.loads(files[-1].read_text())
    assert [c["size"] for c in summary["clusters"]] == [30, 30] and "users" not in summary


def test_kmeans_finds_planted_blobs() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 10
    labels = np.repeat(np.arange(4), 25)
    found = kmeans(centers[labels] + rng.normal(size=(100, 8)), 4)
    assert len({(int(t), int(f)) for t, f in zip(labels, found, strict=True)}) == 4
