"""Redis down in scaled-out mode (PostgreSQL + Redis, two workers): answers keep coming from the
processes (cache off), every accepted event is stored, ``/ready`` says degraded and why, the
metrics count it; when Redis returns, shared answers and their invalidation resume with no
restart. A private ``redis-server`` is killed and started again in the middle of a load run."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tastebud.engine import Engine
from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.load import LoadRun
from tests.api.servers import ADMIN_TOKEN, RedisProcess, ServeProcess
from tests.conftest import unique_name
from tests.serving.conftest import write_clustered

USERS = [f"u{u}" for u in range(60)]


def trained_group(home: Path, database_url: str, redis_url: str, folder: Path) -> tuple[str, str]:
    """A group with a trained, deployed campaign ``home``: (group, admin token)."""
    group = unique_name("outage")
    with Engine(Settings(home=home, database_url=database_url, redis_url=redis_url)) as engine:
        engine.create_group(group)
        interactions, _ = write_clustered(folder)
        engine.import_file(group, "interactions", interactions, mode="full")
        engine.create_solution(group, "for-you", {"recipe": "user-personalization",
                                                  "params": {"algorithm": "ease"}})  # fmt: skip
        engine.train(group, "for-you")
        engine.create_campaign(group, "home", "for-you", config={"min_interactions": 0})
        token = engine.create_token(f"{group}-admin", scope="admin")
    return group, token


def stored_event_ids(store: Store, group: str) -> set[str]:
    return {event.event_id for user in USERS
            for event in store.recent_events(group, user, 1_000_000) if event.event_id}  # fmt: skip


def metric(url: str, name: str, labels: str) -> float:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).text
    found = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def ask(url: str, group: str, headers: dict[str, str], user: str) -> dict[str, Any]:
    response = httpx.post(f"{url}/v1/dataset-groups/{group}/campaigns/home/recommendations",
                          json={"userId": user, "numResults": 5}, headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.fixture
def scaled_out(
    pg_url: str, pg_cleanup_store: Store, tmp_path: Path
) -> Iterator[tuple[RedisProcess, list[ServeProcess], str, dict[str, str]]]:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    home = tmp_path / "home"
    group, token = trained_group(home, pg_url, redis.url, tmp_path)
    env = {"TASTEBUD_DATABASE_URL": pg_url, "TASTEBUD_REDIS_URL": redis.url,
           "TASTEBUD_API__ACCESS_LOG": "false"}  # fmt: skip
    workers = [ServeProcess(home, env=env), ServeProcess(home, env=env)]
    try:
        for worker in workers:
            worker.wait_ready()
        yield redis, workers, group, {"Authorization": f"Bearer {token}"}
    finally:
        for worker in workers:
            worker.stop()
        redis.stop()
        pg_cleanup_store.delete_group(group)
        pg_cleanup_store.revoke_token(f"{group}-admin")


def test_redis_outage_loses_no_answer_and_no_event(
    scaled_out: tuple[RedisProcess, list[ServeProcess], str, dict[str, str]],
    pg_cleanup_store: Store,
) -> None:
    redis, workers, group, headers = scaled_out
    a, b = workers[0].url, workers[1].url
    load = LoadRun([a, b], group, headers, USERS).start()
    time.sleep(1.5)
    before = load.total()
    redis.stop()
    time.sleep(2.0)
    during = load.total()
    ready = httpx.get(f"{a}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded" and ready.json()["degraded"] == ["redis"]
    assert "Connection" in ready.json()["checks"]["redis"]  # why: Redis refuses connections
    redis.start()
    time.sleep(2.0)
    load.stop()

    assert load.recommendations and set(load.recommendations) == {200}, load.recommendations
    assert during - before > 20  # answers kept coming while Redis was down
    assert set(load.events) == {200} and not load.unsent, load.events
    assert load.accepted <= stored_event_ids(pg_cleanup_store, group)  # no event lost
    assert sum(metric(w.url, "tastebud_dependency_errors_total", 'dependency="redis"')
               for w in workers[:1]) >= 1  # fmt: skip
    assert httpx.get(f"{b}/ready").json()["status"] == "ready"

    # Back: answers are shared through Redis again, and an event still invalidates them.
    user = unique_name("visitor")
    first = ask(a, group, headers, user)
    shared = ask(b, group, headers, user)
    assert (first["cache"], shared["cache"]) == ("miss", "hit")
    assert shared["recommendationId"] == first["recommendationId"]
    event = {"userId": user, "eventList": [{"itemId": "i25", "eventType": "click",
                                            "sentAt": 4_000_000}]}  # fmt: skip
    assert httpx.post(f"{a}/v1/dataset-groups/{group}/events", json=event,
                      headers=headers).status_code == 200  # fmt: skip
    time.sleep(0.05)  # each worker reads new events every 5 ms
    after = ask(b, group, headers, user)
    assert after["cache"] == "miss" and after["recommendationId"] != first["recommendationId"]
