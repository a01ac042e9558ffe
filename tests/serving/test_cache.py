"""The result cache's shared answers (Redis, or a file for one home's workers): shared by
workers, kept near each one, dropped together."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path

import redis

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.serving.cache import (
    ANSWERS_FILE,
    FileAnswers,
    LocalAnswers,
    RedisAnswers,
    ResultCache,
    UserChanges,
    remove_answers_file,
)
from tests.serving.test_precomputed import REDIS_URL


def test_redis_answers_are_shared_kept_near_and_dropped_with_the_user(
    engine: Engine, group: str
) -> None:
    changes = UserChanges(engine.store, interval=0.0)
    watermark, _ = changes.sync(group)
    writer, reader = RedisAnswers(REDIS_URL), RedisAnswers(REDIS_URL)  # two workers
    key, answer = uuid.uuid4().hex, b'{"itemList":[]}'
    writer.put(group, "u1", key, answer, ttl=60, watermark=watermark)
    assert writer.nearby(group, "u1", key, changes) == answer
    assert reader.nearby(group, "u1", key, changes) is None  # the event loop's: no round trip
    assert reader.get(group, "u1", key, changes) == answer  # through Redis
    assert reader.nearby(group, "u1", key, changes) == answer
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


def click_event(engine: Engine, group: str, user: str) -> None:
    click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
    engine.put_events(group, events(user, click))


def test_file_answers_are_shared_by_a_homes_workers_and_dropped_with_the_user(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    path = tmp_path / "answers.sqlite"
    writer, reader = FileAnswers(path), FileAnswers(path)  # two workers, each its own tail
    writer_changes = UserChanges(engine.store, interval=0.0)
    reader_changes = UserChanges(engine.store, interval=0.0)
    watermark, _ = writer_changes.sync(group)
    reader_changes.sync(group)
    key, answer = uuid.uuid4().hex, b'{"itemList":[]}'
    writer.put(group, "u1", key, answer, ttl=60, watermark=watermark)
    assert reader.get(group, "u1", key, reader_changes) == answer  # through the file
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM answers")
    assert reader.get(group, "u1", key, reader_changes) == answer  # kept near
    assert reader.get(group, "u2", key, reader_changes) is None

    writer.put(group, "u3", key, answer, ttl=60, watermark=watermark)
    click_event(engine, group, "u3")
    reader_changes.sync(group)  # the event reaches the reader through the store's tail
    assert reader.get(group, "u3", key, reader_changes) is None
    writer.put(group, "u4", key, answer, ttl=0.05, watermark=watermark)
    time.sleep(0.08)
    assert reader.get(group, "u4", key, reader_changes) is None  # expired


def test_a_worker_started_after_an_event_ignores_answers_computed_before_it(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    path = tmp_path / "answers.sqlite"
    writer_changes = UserChanges(engine.store, interval=0.0)
    before, _ = writer_changes.sync(group)
    click_event(engine, group, "u1")  # a slow answer is computed from before this event ...
    FileAnswers(path).put(group, "u1", "k", b"stale", ttl=60, watermark=before)
    late = UserChanges(engine.store, interval=0.0)  # ... and a worker starts after it: its
    late.sync(group)  # tail begins past the event, so it cannot judge that answer
    assert late.latest(group, "u1") == 0
    assert FileAnswers(path).get(group, "u1", "k", late) is None
    fresh, _ = writer_changes.sync(group)
    FileAnswers(path).put(group, "u1", "k", b"fresh", ttl=60, watermark=fresh)
    assert FileAnswers(path).get(group, "u1", "k", late) == b"fresh"


def test_a_write_to_a_busy_answers_file_is_skipped_not_waited_on(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    path = tmp_path / "answers.sqlite"
    answers, changes = FileAnswers(path), UserChanges(engine.store, interval=0.0)
    watermark, _ = changes.sync(group)
    answers.put(group, "u1", "k", b"{}", ttl=60, watermark=watermark)
    other = FileAnswers(path)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process is writing
    try:
        started = time.monotonic()
        other.put(group, "u2", "k", b"{}", ttl=60, watermark=watermark)  # skipped
        assert time.monotonic() - started < 0.5
        assert other.get(group, "u1", "k", changes) == b"{}"  # readers never wait (WAL)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert other.get(group, "u2", "k", changes) == b"{}"  # kept in its own process
    assert FileAnswers(path).get(group, "u2", "k", changes) is None  # not in the file


def test_serve_starts_its_workers_with_an_empty_answers_file(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    changes = UserChanges(engine.store, interval=0.0)
    watermark, _ = changes.sync(group)
    FileAnswers(tmp_path / ANSWERS_FILE).put(group, "u1", "k", b"{}", ttl=60, watermark=watermark)
    remove_answers_file(tmp_path)
    assert not list(tmp_path.glob(ANSWERS_FILE + "*"))
    assert FileAnswers(tmp_path / ANSWERS_FILE).get(group, "u1", "k", changes) is None
