"""A campaign's rules fallback (issue 15's availability): when its model cannot answer — the
version does not load, scoring raises, or the answer misses ``deadline_ms`` — the rule order
answers with ``source: "rules"`` and the fallback is counted (engine level, SQLite and
PostgreSQL)."""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tests.serving.test_campaigns import ask, ids, item_counts


@pytest.fixture
def deployed(loaded: Engine, group: str) -> tuple[Engine, str]:
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization",
                                              "params": {"algorithm": "ease"}})  # fmt: skip
    version = loaded.train(group, "for-you").id
    return loaded, version


def fallbacks(reason: str, campaign: str = "c") -> float:
    """Answers the rule engine gave for ``campaign`` because of ``reason``, so far."""
    labels = {"campaign": campaign, "reason": reason, "source": "rules"}
    return REGISTRY.get_sample_value("tastebud_campaign_fallbacks_total", labels) or 0.0


def rule_order(engine: Engine, group: str, k: int) -> list[str]:
    counts = item_counts(engine, group)
    return sorted(counts, key=lambda item: (-counts[item], int(item[1:])))[:k]


def test_a_missing_version_answers_from_the_rules(deployed: tuple[Engine, str], group: str) -> None:
    engine, version = deployed
    engine.create_campaign(group, "c", "for-you",
                           config={"min_interactions": 0, "fallback": "rules"})  # fmt: skip
    assert ask(engine, group, user_id="u45", k=5)["source"] == "model"
    shutil.rmtree(engine.settings.artifacts / version)
    engine.recommender.forget_loaded()
    before = fallbacks("load_error")
    answer = ask(engine, group, user_id="u45", k=5, exclude_seen=False)
    assert answer["source"] == "rules" and answer["solutionVersionId"] is None
    assert ids(answer) == rule_order(engine, group, 5)
    assert fallbacks("load_error") == before + 1


def test_without_the_fallback_the_error_is_the_answer(
    deployed: tuple[Engine, str], group: str
) -> None:
    engine, version = deployed
    engine.create_campaign(group, "c", "for-you", config={"min_interactions": 0})
    shutil.rmtree(engine.settings.artifacts / version)
    engine.recommender.forget_loaded()
    with pytest.raises(NotFound, match="has no artifacts"):
        ask(engine, group, user_id="u45", k=5)


def test_a_scoring_error_answers_from_the_rules(deployed: tuple[Engine, str], group: str) -> None:
    engine, version = deployed
    engine.create_campaign(group, "c", "for-you", config={
        "min_interactions": 0, "fallback": "rules", "cache_ttl_seconds": 0})  # fmt: skip
    model = engine.recommender.versions.get(version).model

    def unreachable(query: Any) -> Any:
        raise ConnectionError("feature store unreachable")

    model.score = unreachable  # type: ignore[method-assign]  # what a ranker does when Redis is down
    before = fallbacks("score_error")
    answer = ask(engine, group, user_id="u45", k=5)
    assert answer["source"] == "rules" and len(answer["itemList"]) == 5
    assert fallbacks("score_error") == before + 1


def test_an_answer_past_the_deadline_is_replaced(deployed: tuple[Engine, str], group: str) -> None:
    engine, version = deployed
    engine.create_campaign(group, "c", "for-you", config={
        "min_interactions": 0, "fallback": "rules", "deadline_ms": 50,
        "cache_ttl_seconds": 0})  # fmt: skip
    model = engine.recommender.versions.get(version).model
    score, release = model.score, threading.Event()

    def slow(query: Any) -> Any:
        release.wait(5)
        return score(query)

    assert ask(engine, group, user_id="u45", k=5)["source"] == "model"  # in time
    model.score = slow  # type: ignore[method-assign]
    before = fallbacks("deadline")
    started = time.monotonic()
    answer = ask(engine, group, user_id="u45", k=5)
    waited = time.monotonic() - started
    release.set()
    assert answer["source"] == "rules" and waited < 2.5  # it did not wait for the model
    assert fallbacks("deadline") == before + 1


def test_a_deadline_needs_a_fallback(deployed: tuple[Engine, str], group: str) -> None:
    engine, _ = deployed
    with pytest.raises(InvalidInput, match="deadline_ms needs fallback"):
        engine.create_campaign(group, "c", "for-you", config={"deadline_ms": 50})
