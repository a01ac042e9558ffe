"""Redis down in scaled-out mode (PostgreSQL + Redis, two workers): answers keep coming from the
processes (cache off), every accepted event is stored, ``/ready`` says degraded and why, the
metrics count it; when Redis returns, shared answers and their invalidation resume with no
restart. A private ``redis-server`` is killed and started again in the middle of a load run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.outages import (
    STARTUP_SECONDS,
    USERS,
    LoadRun,
    ask,
    metric,
    send_event,
    stored_event_ids,
    trained_group,
)
from tests.api.servers import RedisProcess, ServeProcess
from tests.conftest import unique_name


@pytest.fixture
def scaled_out(
    pg_url: str, pg_cleanup_store: Store, tmp_path: Path
) -> Iterator[tuple[RedisProcess, list[ServeProcess], str, dict[str, str]]]:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=pg_url, redis_url=redis.url)
    group, token = trained_group(settings, tmp_path)
    env = {"TASTEBUD_DATABASE_URL": pg_url, "TASTEBUD_REDIS_URL": redis.url,
           "TASTEBUD_API__ACCESS_LOG": "false"}  # fmt: skip
    workers = [ServeProcess(home, env=env), ServeProcess(home, env=env)]
    try:
        for worker in workers:
            worker.wait_ready(STARTUP_SECONDS)
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
    assert send_event(a, group, headers, user, "i25").status_code == 200
    time.sleep(0.05)  # each worker reads new events every 5 ms
    after = ask(b, group, headers, user)
    assert after["cache"] == "miss" and after["recommendationId"] != first["recommendationId"]
