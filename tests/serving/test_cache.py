"""The result cache's Redis answers: shared by workers, kept near each one, dropped together."""

from __future__ import annotations

import sys
import threading
import time
import uuid

import redis

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.serving.cache import LocalAnswers, RedisAnswers, ResultCache, UserChanges
from tests.serving.test_precomputed import REDIS_URL


def test_redis_answers_are_shared_kept_near_and_dropped_with_the_user(
    engine: Engine, group: str
) -> None:
    changes = UserChanges(engine.store, interval=0.0)
    watermark, _ = changes.sync(group)
    writer, reader = RedisAnswers(REDIS_URL), RedisAnswers(REDIS_URL)  # two workers
    key, answer = uuid.uuid4().hex, b'{"itemList":[]}'
    writer.put(group, "u1", key, answer, ttl=60, watermark=watermark)
    assert reader.get(group, "u1", key, changes) == answer  # through Redis
    redis.Redis.from_url(REDIS_URL).delete(f"tb:a:{group}:u1:{key}")
    # both kept the answer they wrote or read: no round trip for the next request
    assert writer.get(group, "u1", key, changes) == answer
    assert reader.get(group, "u1", key, changes) == answer
    assert reader.get(group, "u2", key, changes) is None

    click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
    engine.put_events(
        group, PutEventsRequest.model_validate({"userId": "u1", "eventList": [click]})
    )
    changes.sync(group)  # the user's event reaches every worker through the store's tail
    assert writer.get(group, "u1", key, changes) is None
    assert reader.get(group, "u1", key, changes) is None


def test_an_answer_read_from_redis_expires_with_it(engine: Engine, group: str) -> None:
    changes = UserChanges(engine.store, interval=0.0)
    watermark, _ = changes.sync(group)
    writer, reader = RedisAnswers(REDIS_URL), RedisAnswers(REDIS_URL)
    key = uuid.uuid4().hex
    writer.put(group, "u1", key, b"{}", ttl=0.05, watermark=watermark)
    assert reader.get(group, "u1", key, changes) == b"{}"

    time.sleep(0.08)
    assert reader.get(group, "u1", key, changes) is None
    assert writer.get(group, "u1", key, changes) is None


def test_sync_soon_reads_in_the_background_only_while_the_last_read_is_recent(
    engine: Engine, group: str
) -> None:
    cache = ResultCache(engine.store, LocalAnswers(), interval=0.3)
    cache.sync(group)
    click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
    try:
        engine.put_events(group, events("u1", click))
        cache.sync_soon(group)  # read under one interval ago: nothing to do yet
        assert cache.changes.latest(group, "u1") == 0
        time.sleep(0.35)  # due, and the last read is recent: a background thread reads
        cache.sync_soon(group)
        assert any(t.name.startswith("tastebud-cache") for t in threading.enumerate())
        deadline = time.monotonic() + 5
        while cache.changes.latest(group, "u1") == 0:
            assert time.monotonic() < deadline, "the background sync never read the event"
            time.sleep(0.01)

        engine.put_events(group, events("u2", click))
        time.sleep(0.65)  # a quiet server: the last read is two intervals old
        cache.sync_soon(group)
        assert cache.changes.latest(group, "u2") > 0  # read before returning
    finally:
        cache.close()


def test_events_accepted_here_drop_their_users_answers_at_once(engine: Engine, group: str) -> None:
    """However recent the last read of the tail: no read needed in the accepting process."""
    serving = engine.settings.serving.model_copy(update={"cache_sync_seconds": 60.0})
    with Engine(engine.settings.model_copy(update={"serving": serving})) as here:
        watermark = here.cache.sync(group)
        here.cache.put(group, "u1", "k", b"{}", ttl=60, watermark=watermark)
        click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
        here.put_events(group, events("u1", click))
        assert here.cache.get(group, "u1", "k") is None
        engine.put_events(group, events("u2", click))  # accepted by another process
        assert here.cache.changes.latest(group, "u2") == 0  # seen within cache_sync_seconds


def test_a_touch_lasts_until_a_read_of_the_tail_begun_after_it(engine: Engine, group: str) -> None:
    changes = UserChanges(engine.store, interval=0.0)
    changes.sync(group)
    click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
    engine.put_events(group, events("u1", click))
    changes.touch(group, ["u1"])
    assert changes.latest(group, "u1") == sys.maxsize  # newer than any answer
    changes.sync(group)
    arrived = changes.latest(group, "u1")
    assert 0 < arrived < sys.maxsize  # the tail's arrival number replaces it
    changes.touch(group, ["u1"])  # a touch whose events a read had already seen
    assert changes.latest(group, "u1") == sys.maxsize
    changes.sync(group)  # reads nothing new, yet clears it: it began after the touch
    assert changes.latest(group, "u1") == arrived


def events(user: str, *clicks: dict[str, object]) -> PutEventsRequest:
    return PutEventsRequest.model_validate({"userId": user, "eventList": list(clicks)})
