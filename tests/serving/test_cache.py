"""The result cache's Redis answers: shared by workers, kept near each one, dropped together."""

from __future__ import annotations

import time
import uuid

import redis

from tastebud.engine import Engine
from tastebud.ingest import PutEventsRequest
from tastebud.serving.cache import RedisAnswers, UserChanges
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
