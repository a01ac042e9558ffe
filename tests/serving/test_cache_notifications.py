"""On PostgreSQL the result cache reads the tail of new events when the store notifies that
some arrived, instead of polling it: an event stored by another process drops the user's
answers with no request asking, and a listener that lost its connection polls meanwhile and
listens again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tastebud.serving import cache as cache_module
from tastebud.serving.cache import LocalAnswers, ResultCache
from tastebud.store import open_store
from tastebud.store.base import Event, Store
from tests.conftest import unique_name


@pytest.fixture
def pg_group(pg_url: str) -> Iterator[tuple[Store, str]]:
    store = open_store(pg_url)
    group = unique_name("notify")
    store.create_group(group)
    try:
        yield store, group
    finally:
        store.delete_group(group)
        store.close()


@contextmanager
def _cache(url: str, *, interval: float) -> Iterator[ResultCache]:
    store = open_store(url)
    cache = ResultCache(store, LocalAnswers(), interval=interval)
    try:
        yield cache
    finally:
        cache.close()
        store.close()


def _click(user: str, n: int) -> list[Event]:
    return [Event(user_id=user, item_id="i1", timestamp=1_700_000_000 + n, event_type="click")]


def _eventually(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_an_event_from_another_process_is_read_when_notified(
    pg_url: str, pg_group: tuple[Store, str]
) -> None:
    _, group = pg_group
    # Polling alone would not read the tail again for a minute (a huge interval).
    with _cache(pg_url, interval=60.0) as cache:
        cache.sync_soon(group)  # the first lookup: reads the tail, starts the listener
        assert cache.changes.started(group) is not None
        assert _eventually(cache._listening)
        other = open_store(pg_url)  # another worker, a stream consumer, an import
        other.put_events(group, _click("u1", 1))
        other.close()
        assert _eventually(lambda: cache.changes.latest(group, "u1") > 0, seconds=2.0)
        assert cache.sync(group) == cache.changes.watermark(group)  # no read needed


def test_a_listener_cut_off_polls_meanwhile_and_listens_again(
    pg_url: str, pg_group: tuple[Store, str]
) -> None:
    store, group = pg_group
    with _cache(pg_url, interval=0.0) as cache:
        cache.sync_soon(group)
        assert _eventually(cache._listening)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = 'LISTEN tastebud_tail' AND pid <> pg_backend_pid()"
            )
        assert _eventually(lambda: not cache._listening(), seconds=2.0)
        store.put_events(group, _click("u2", 2))
        cache.sync_soon(group)  # not listening: the lookup reads the tail itself
        assert cache.changes.latest(group, "u2") > 0

        assert _eventually(cache._listening)
        store.put_events(group, _click("u3", 3))
        assert _eventually(lambda: cache.changes.latest(group, "u3") > 0, seconds=2.0)


def test_sqlite_has_no_listener_its_tail_is_polled(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'tastebud.db'}")
    store.migrate()
    assert store.tail_listener(lambda: None) is None
    cache = ResultCache(store, LocalAnswers(), interval=0.0)
    group = store.create_group("g").name
    cache.sync_soon(group)
    store.put_events(group, _click("u1", 1))
    cache.sync_soon(group)  # polled by the lookup
    assert cache.changes.latest(group, "u1") > 0
    cache.close()


def test_a_lost_notification_is_made_up_by_a_safety_poll(
    pg_url: str, pg_group: tuple[Store, str]
) -> None:
    store, group = pg_group
    with _cache(pg_url, interval=0.0) as cache:
        store.put_events(group, _click("u4", 4))
        cache.sync_soon(group)
        assert _eventually(cache._listening)
        seen = cache.changes.latest(group, "u4")
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # no trigger: no notification
            conn.execute(
                "INSERT INTO interactions (group_id, user_idx, item_idx, ts) SELECT group_id, "
                "user_idx, item_idx, ts + 1 FROM interactions WHERE group_id = "
                "(SELECT id FROM dataset_groups WHERE name = %s)",
                (group,),
            )
        cache.sync_soon(group)
        assert cache.changes.latest(group, "u4") == seen  # notified reads only, none came

        def polled() -> bool:
            cache.sync_soon(group)
            return cache.changes.latest(group, "u4") > seen

        assert _eventually(polled, seconds=3 * cache_module._POLL_WHILE_NOTIFIED)
