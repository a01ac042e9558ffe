"""Redis answers through an outage, on a private ``redis-server`` that hangs (SIGSTOP: its data
stays) and comes back: lookups fall back to this process, and users who acted meanwhile never
get an answer Redis kept from before, even from a process that knew nothing of their events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tastebud.breaker import Breaker
from tastebud.serving.cache import RedisAnswers, UserChanges
from tastebud.store import Store, open_store
from tests.api.servers import RedisProcess


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.resume()
    server.stop()


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'tastebud.db'}")
    yield store
    store.close()


def answers(url: str) -> RedisAnswers:
    return RedisAnswers(url, breaker=Breaker("redis", retry_seconds=0.05))


def test_users_who_acted_during_an_outage_get_no_answer_from_before(
    redis: RedisProcess, sqlite: Store
) -> None:
    changes = UserChanges(sqlite)
    worker = answers(redis.url)
    worker.put("g", "u1", "k", b"old answer", ttl=60, watermark=5)
    worker.put("g", "u2", "k", b"other answer", ttl=60, watermark=5)

    redis.pause()
    worker.note_changes("g", [("u1", 9)])  # u1 acted: Redis cannot hear of it now
    assert worker.breaker.down
    assert worker.get("g", "u3", "k", changes) is None  # a miss, at once: no error
    redis.resume()
    time.sleep(0.1)
    assert worker.get("g", "u3", "k", changes) is None  # Redis answers: the outage is over
    assert not worker.breaker.down

    restarted = answers(redis.url)  # a process started after the outage knows of no event
    assert restarted.get("g", "u1", "k", UserChanges(sqlite)) is None
    assert restarted.get("g", "u2", "k", UserChanges(sqlite)) == b"other answer"


def test_lookups_answer_from_the_process_while_redis_hangs(
    redis: RedisProcess, sqlite: Store
) -> None:
    changes = UserChanges(sqlite)
    worker = answers(redis.url)
    worker.put("g", "u1", "k", b"kept here", ttl=60, watermark=0)
    redis.pause()
    worker.put("g", "u2", "k", b"computed meanwhile", ttl=60, watermark=0)
    assert worker.get("g", "u1", "k", changes) == b"kept here"
    assert worker.get("g", "u2", "k", changes) == b"computed meanwhile"
    assert worker.breaker.down and "Timeout" in worker.breaker.reason
