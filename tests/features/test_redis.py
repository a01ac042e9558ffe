"""The online store in Redis (DB 3): shared by processes, published once, failing fast."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tastebud.engine import Engine
from tastebud.errors import NotReady
from tastebud.settings import Settings
from tastebud.store import Store
from tests.features.conftest import LIVE, T, event, online, put, shows

REDIS_URL = os.environ.get("TASTEBUD_TEST_FEATURES_REDIS_URL", "redis://127.0.0.1:6379/3")


def _engine(store: Store, group: str, home: Path, url: str) -> Engine:
    settings = Settings(home=home, default_group=group, database_url=store.url, redis_url=url)
    return Engine(settings, store=store)


@pytest.fixture
def engines(store: Store, group: str, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two processes' engines over one store and one Redis."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL} ({exc})", pytrace=False)
    first = _engine(store, group, tmp_path / "a", REDIS_URL)
    second = _engine(store, group, tmp_path / "b", REDIS_URL)
    yield first, second
    first.features.close()
    second.features.close()
    keys = list(client.scan_iter(f"tb:feat:{group}*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_one_process_publishes_and_another_reads(
    engines: tuple[Engine, Engine], group: str
) -> None:
    writer, reader = engines
    shows(writer, group, {"s1": "h1", "s2": "h2"})
    writer.features.apply(group, LIVE)
    put(writer, group, event("u1", "s1", T - 100, event_id="a"),
        event("u2", "s1", T - 50, event_id="b"))  # fmt: skip
    assert online(writer, group, ["views_5m", "viewers_1h"], "u1", ["s1", "s2"], T) == [
        [2.0, 2.0], [0.0, 0.0]
    ]  # fmt: skip
    # The reader does not lead (the writer holds the lease): it reads what was published.
    reader.features.sync(group, now=T)
    values = reader.features.online(group, ["views_5m", "host_seen"], user_id="u1",
                                    item_ids=["s1"], now=T)  # fmt: skip
    assert values.tolist() == [[2.0, 100.0]]
    put(reader, group, event("u1", "s1", T - 100, event_id="a"), event("u3", "s1", T - 5))
    assert online(writer, group, ["views_5m"], "u1", ["s1"], T) == [[3.0]]
    assert reader.features.online(group, ["views_5m"], user_id=None, item_ids=["s1"],
                                  now=T).tolist() == [[3.0]]  # fmt: skip


def test_reads_fail_fast_with_not_ready_when_redis_is_down(
    store: Store, group: str, tmp_path: Path
) -> None:
    shows_engine = Engine(Settings(home=tmp_path, default_group=group), store=store)
    shows_engine.features.apply(group, LIVE)
    down = _engine(store, group, tmp_path / "down", "redis://127.0.0.1:1/3")
    try:
        for _ in range(2):  # the first read (warm-up) and a later one
            with pytest.raises(NotReady, match=r"Redis|online store"):
                down.features.online(group, ["views_5m"], user_id="u1", item_ids=["s1"])
    finally:
        down.features.close()
        shows_engine.features.close()


def test_only_changed_entities_are_written_and_emptied_ones_deleted(
    engines: tuple[Engine, Engine], group: str
) -> None:
    writer, reader = engines
    shows(writer, group, {"s1": "h1", "s2": "h2"})
    writer.features.apply(group, LIVE)
    client = redis.Redis.from_url(REDIS_URL)
    items = f"tb:feat:{group}:1:item"
    put(writer, group, event("u1", "s1", T - 100), event("u2", "s2", T - 50))
    assert online(writer, group, ["views_5m"], "u1", ["s1", "s2"], T) == [[1.0], [1.0]]
    assert sorted(client.hkeys(items)) == [b"s1", b"s2"]
    # A sync that changes s2 alone writes s2's row alone.
    client.hset(items, "s1", b"planted")
    put(writer, group, event("u3", "s2", T - 10))
    assert online(writer, group, ["views_5m"], "u1", ["s2"], T) == [[2.0]]
    assert client.hget(items, "s1") == b"planted"
    client.hdel(items, "s1")
    # Two days on, the item features' windows (1 day at most) are empty: the rows go.
    later = T + 2 * 86_400
    assert online(writer, group, ["views_5m", "completion"], "u1", ["s2"], later)[0][0] == 0.0
    assert client.hkeys(items) == []
    assert reader.features.online(group, ["views_5m"], user_id=None, item_ids=["s2"],
                                  now=later).tolist() == [[0.0]]  # fmt: skip
    client.close()
