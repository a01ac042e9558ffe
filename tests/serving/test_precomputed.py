"""Precomputed answers in Redis: the writer and reader, and campaigns falling back to them when
their model cannot answer (a real Redis; campaigns on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import redis
from prometheus_client import REGISTRY

from tastebud import observability
from tastebud.api.app import create_app
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound, NotReady
from tastebud.serving.precomputed import (
    PrecomputedReader,
    PrecomputedTarget,
    PrecomputedWriter,
)
from tastebud.settings import ApiSettings
from tests.api.overload import add_slow_route
from tests.api.servers import server_thread
from tests.serving.test_campaigns import CLUSTER_B, ask, ids
from tests.serving.test_live import watch

REDIS_URL = os.environ.get("TASTEBUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PLANTED = ["i1", "i2", "i3", "i4", "i5", "i30", "i6", "i31", "i7", "i8"]  # mostly cluster A


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test-precomputed-{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


def write(prefix: str, entries: dict[str, list[str]], *, version: str = "sv-batch") -> None:
    with PrecomputedWriter(PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix)) as writer:
        writer.write([(user, {"recommendedItems": items,
                              "scores": [round(1 - n / 100, 2) for n in range(len(items))],
                              "solutionVersionId": version, "createdAt": 1_765_000_000})
                      for user, items in entries.items()])  # fmt: skip


def fallbacks(reason: str, source: str, campaign: str = "c") -> float:
    value = REGISTRY.get_sample_value(
        "tastebud_campaign_fallbacks_total",
        {"campaign": campaign, "reason": reason, "source": source},
    )
    return value or 0.0


# writer and reader ------------------------------------------------------------------------------
def test_round_trip_is_plain_json_with_the_ttl(prefix: str) -> None:
    target = PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix, ttl_seconds=60)
    answer = {"recommendedItems": ["i1", "i2"], "scores": np.array([0.9, 0.5], np.float32),
              "solutionVersionId": "sv-1", "createdAt": 1_765_000_000}  # fmt: skip
    with PrecomputedWriter(target) as writer:
        assert writer.write([("u1", answer), ("u2", {"recommendedItems": []})]) == 2
        assert writer.write([]) == 0
    with PrecomputedWriter(PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix)) as writer:
        writer.write([("forever", {"recommendedItems": ["i9"]})])

    expected = {"recommendedItems": ["i1", "i2"], "scores": [0.9, 0.5],  # float32: shortest form
                "solutionVersionId": "sv-1", "createdAt": 1_765_000_000}  # fmt: skip
    reader = PrecomputedReader(REDIS_URL)
    assert reader.get(prefix, "u1") == expected
    assert reader.get(prefix, "nobody") is None
    raw = redis.Redis.from_url(REDIS_URL)  # what an app reads without tastebud: GET recs:u1
    assert orjson.loads(raw.get(f"{prefix}u1")) == expected
    assert 55 <= raw.ttl(f"{prefix}u1") <= 60
    assert raw.ttl(f"{prefix}forever") == -1  # no TTL: kept until overwritten
    raw.set(f"{prefix}garbage", b"not json")
    raw.set(f"{prefix}list", b"[1, 2]")
    raw.hset(f"{prefix}hash", "recommendedItems", "i1")
    assert [reader.get(prefix, key) for key in ("garbage", "list", "hash")] == [None] * 3
    assert reader.get(prefix, "u1") == expected  # an odd key is not an outage
    raw.close()


def test_a_batch_is_one_round_trip(prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[int] = []
    original = redis.connection.Connection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        original(self, command, check_health)

    writer = PrecomputedWriter(PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix))
    writer.write([("warm-up", {"recommendedItems": []})])  # connects (its own round trips)
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    entries = [(f"u{n}", {"recommendedItems": [f"i{n}"], "scores": [1.0]}) for n in range(5000)]
    assert writer.write(entries) == 5000
    monkeypatch.undo()
    writer.close()
    assert len(sends) == 1  # 5,000 SETs sent in one write, replies read back in one pass
    raw = redis.Redis.from_url(REDIS_URL)
    assert sum(1 for _ in raw.scan_iter(match=f"{prefix}u*", count=5000)) == 5000
    raw.close()


def test_bad_targets_and_entries_are_named(prefix: str) -> None:
    for url in ("http://127.0.0.1:6379/0", "redis://", "redis://host:port/0", "redis://h/db0",
                "unix:///tmp/redis.sock", "127.0.0.1:6379"):  # fmt: skip
        with pytest.raises(InvalidInput, match="precomputed url") as raised:
            PrecomputedTarget.parse(url)
        assert url in raised.value.message
    with pytest.raises(InvalidInput) as hidden:
        PrecomputedTarget.parse("http://:s3cret@host/0")
    assert "s3cret" not in hidden.value.message and "***@host/0" in hidden.value.message
    with pytest.raises(InvalidInput, match=r"ttl_seconds.*0"):
        PrecomputedTarget.parse(REDIS_URL, ttl_seconds=0)
    with pytest.raises(InvalidInput, match=r"key_prefix.*'tb:a:'"):
        PrecomputedTarget.parse(REDIS_URL, key_prefix="tb:a:")
    assert PrecomputedTarget.parse("rediss://cache.example:6380/2").key("u1") == "recs:u1"

    with PrecomputedWriter(PrecomputedTarget.parse(REDIS_URL, key_prefix=prefix)) as writer:
        with pytest.raises(InvalidInput, match=r"entry id.*''"):
            writer.write([("u1", {"recommendedItems": []}), ("", {"recommendedItems": []})])
        with pytest.raises(InvalidInput, match="'u2': not JSON-serializable"):
            writer.write([("u1", {"recommendedItems": []}), ("u2", {"x": object()})])
    assert PrecomputedReader(REDIS_URL).get(prefix, "u1") is None  # nothing of either batch


def test_an_outage_costs_one_short_timeout_then_nothing() -> None:
    silent = socket.socket()  # accepts connections, never answers: a hung Redis
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    reader = PrecomputedReader(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
    started = time.monotonic()
    with pytest.raises(NotReady, match="precomputed source"):
        reader.get("recs:", "u1")
    assert time.monotonic() - started < 0.5
    started = time.monotonic()
    with pytest.raises(NotReady, match="unavailable"):
        reader.get("recs:", "u1")
    assert time.monotonic() - started < 0.01  # no second wait while it is known to be down
    silent.close()
    with pytest.raises(NotReady, match=re.escape("redis://***@127.0.0.1:1/0")):
        PrecomputedReader("redis://:pw@127.0.0.1:1/0").get("recs:", "u1")  # refused, redacted


# campaigns --------------------------------------------------------------------------------------
@pytest.fixture
def ease(loaded: Engine, group: str) -> Engine:
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization",
                                              "params": {"algorithm": "ease"}})  # fmt: skip
    return loaded


def deploy(engine: Engine, group: str, prefix: str, **config: Any) -> None:
    settings = {"min_interactions": 0,
                "precomputed": {"url": REDIS_URL, "key_prefix": prefix}} | config  # fmt: skip
    engine.create_campaign(group, "c", "for-you", config=settings)


def artifacts(engine: Engine, version_id: str) -> Path:
    return engine.settings.artifacts / version_id


@pytest.mark.parametrize("damage", ["deleted", "corrupt"])
def test_unloadable_version_answers_from_redis_then_the_model_again(
    ease: Engine, group: str, prefix: str, damage: str, caplog: pytest.LogCaptureFixture,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    version = ease.train(group, "for-you")
    write(prefix, {"u45": PLANTED}, version=version.id)
    deploy(ease, group, prefix)
    # The campaigns' clock moves only when the test says: a slow machine cannot outrun the delay.
    clock = [time.monotonic()]
    monkeypatch.setattr(
        "tastebud.serving.campaigns.time", SimpleNamespace(monotonic=lambda: clock[0])
    )
    ease.campaigns.load_retry_seconds = 5.0
    cached = ask(ease, group, user_id="u45", k=5)
    assert cached["source"] == "model" and set(ids(cached)) <= CLUSTER_B

    folder = artifacts(ease, version.id)
    shutil.copytree(folder, tmp_path / "backup")
    if damage == "deleted":
        shutil.rmtree(folder)
    else:
        (folder / "model" / "arrays.npz").write_bytes(b"\x00" * 64)
    ease.recommender.forget_loaded()  # as a fresh worker (or one after an erasure) would
    before = fallbacks("load_error", "precomputed")
    with caplog.at_level(logging.WARNING, logger="tastebud.serving.campaigns"):
        answer = ask(ease, group, user_id="u45", k=4)
    assert answer["source"] == "precomputed" and answer["cache"] == "off"
    assert ids(answer) == PLANTED[:4] and answer["itemList"][0]["score"] == 1.0
    assert answer["solutionVersionId"] == version.id and answer["campaign"] == "c"
    assert answer["recommendationId"].startswith("rec-")
    assert fallbacks("load_error", "precomputed") == before + 1
    assert "campaign fallback campaign=c reason=load_error source=precomputed" in caplog.text
    # The model's answer cached before the failure is still the best one to give.
    assert ask(ease, group, user_id="u45", k=5) == {**cached, "cache": "hit"}
    # No key for this user: the rule engine answers.
    rules = ask(ease, group, user_id="u46", k=4)
    assert rules["source"] == "rules" and rules["solutionVersionId"] is None
    assert fallbacks("load_error", "rules") >= 1

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(tmp_path / "backup", folder)  # repaired
    assert ask(ease, group, user_id="u45", k=3)["source"] == "precomputed"  # within the delay
    clock[0] += 5.1
    again = ask(ease, group, user_id="u45", k=3)
    assert again["source"] == "model" and set(ids(again)) <= CLUSTER_B


def break_at_score_time(engine: Engine, version_id: str) -> bytes:
    """Rewrite the EASE weight matrix one row short: the version still loads (weights are only
    read when scoring), and every score fails on the matrix product. Returns the good file."""
    path = artifacts(engine, version_id) / "model" / "arrays.npz"
    good = path.read_bytes()
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["weights"] = arrays["weights"][:-1]
    with path.open("wb") as out:
        np.savez(out, **arrays)  # type: ignore[arg-type]
    return good


def test_a_model_that_raises_when_scoring_answers_from_redis(
    ease: Engine, group: str, prefix: str
) -> None:
    version = ease.train(group, "for-you")
    good = break_at_score_time(ease, version.id)
    write(prefix, {"u45": PLANTED}, version=version.id)
    deploy(ease, group, prefix)  # loads fine: the deployment is accepted
    before = fallbacks("score_error", "precomputed")
    answer = ask(ease, group, user_id="u45", k=3)
    assert answer["source"] == "precomputed" and ids(answer) == PLANTED[:3]
    assert fallbacks("score_error", "precomputed") == before + 1
    with pytest.raises(ValueError, match="dimension mismatch"):  # what it hides
        ease.recommender.recommend(group, {"version_id": version.id}, user_id="u45")
    # Precomputed answers are not cached: the next request asks the model again.
    assert ask(ease, group, user_id="u45", k=3)["cache"] == "off"
    assert fallbacks("score_error", "precomputed") == before + 2

    (artifacts(ease, version.id) / "model" / "arrays.npz").write_bytes(good)
    ease.recommender.forget_loaded()  # the repaired file is read again
    healed = ask(ease, group, user_id="u45", k=3)
    assert healed["source"] == "model" and set(ids(healed)) <= CLUSTER_B


class Load:
    """An in-flight gauge as the API's middleware offers it (the test sets the share)."""

    def __init__(self) -> None:
        self.share = 0.0
        observability.track_inflight(self)

    def inflight_share(self) -> float:
        return self.share


def test_overload_answers_from_the_cache_or_redis_without_model_work(
    ease: Engine, group: str, prefix: str
) -> None:
    ease.train(group, "for-you")
    write(prefix, {"u45": PLANTED, "u46": PLANTED[::-1]})
    deploy(ease, group, prefix)  # overload_share 0.8 by default
    cached = ask(ease, group, user_id="u46", k=5)
    scored: list[str] = []
    original = ease.recommender.recommend

    def counted(*args: Any, **kwargs: Any) -> Any:
        scored.append(args[1].id)
        return original(*args, **kwargs)

    ease.recommender.recommend = counted  # type: ignore[method-assign]
    before = fallbacks("overload", "precomputed")
    load = Load()
    load.share = 0.85
    assert ask(ease, group, user_id="u46", k=5) == {**cached, "cache": "hit"}
    answer = ask(ease, group, user_id="u45", k=5)
    assert answer["source"] == "precomputed" and ids(answer) == PLANTED[:5]
    assert ask(ease, group, user_id=None, k=5)["source"] == "rules"  # a visitor: no key
    assert fallbacks("overload", "precomputed") == before + 1
    assert [v.split(":")[0] for v in scored] == ["rules"]  # no model scored under load
    load.share = 0.5
    assert ask(ease, group, user_id="u45", k=5)["source"] == "model"
    ease.update_campaign(group, "c", config={"precomputed": {"url": REDIS_URL,
                                                             "key_prefix": prefix,
                                                             "overload_share": None}})  # fmt: skip
    load.share = 1.0
    assert ask(ease, group, user_id="u45", k=6)["source"] == "model"  # opted out
    del load  # gone from the gauges with its last reference


def test_under_real_load_the_api_answers_from_redis(ease: Engine, group: str, prefix: str) -> None:
    """With half the in-flight limit busy (2 slow requests of 4, plus its own), the campaign
    answers from Redis; once the load is gone, from the model."""
    ease.train(group, "for-you")
    write(prefix, {"u45": PLANTED})
    deploy(ease, group, prefix, cache_ttl_seconds=0,
           precomputed={"url": REDIS_URL, "key_prefix": prefix, "overload_share": 0.5})  # fmt: skip
    token = ease.create_token(f"{group}-reader", scope="recommend")
    settings = ease.settings.model_copy(update={"api": ApiSettings(max_inflight_requests=4)})
    app = create_app(settings, engine=ease)
    release = add_slow_route(app)
    with server_thread(app) as url:
        asyncio.run(_under_load(url, group, token, release))


async def _under_load(url: str, group: str, token: str, release: threading.Event) -> None:
    path = f"/v1/dataset-groups/{group}/campaigns/c/recommendations"
    body = {"userId": "u45", "numResults": 3}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        calm = await client.post(path, json=body, headers=headers)
        assert calm.status_code == 200 and calm.json()["source"] == "model"
        holding = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        deadline = time.monotonic() + 5
        while REGISTRY.get_sample_value("tastebud_http_inflight_requests") != 2:
            assert time.monotonic() < deadline, "the slow requests never arrived"
            await asyncio.sleep(0.01)
        busy = await client.post(path, json=body, headers=headers)  # the 3rd of 4 in flight
        assert busy.status_code == 200, busy.text
        assert busy.json()["source"] == "precomputed" and ids(busy.json()) == PLANTED[:3]
        release.set()
        await asyncio.gather(*holding)
        after = await client.post(path, json=body, headers=headers)
        assert after.json()["source"] == "model"


def test_what_a_precomputed_answer_still_obeys(ease: Engine, group: str, prefix: str) -> None:
    version = ease.train(group, "for-you")
    write(prefix, {"u45": PLANTED})
    deploy(ease, group, prefix, cache_ttl_seconds=0)
    break_at_score_time(ease, version.id)
    ease.recommender.forget_loaded()
    assert ids(ask(ease, group, user_id="u45", k=3)) == ["i1", "i2", "i3"]  # numResults cuts

    ease.put_events(group, watch("u45", ["i1", "i3"], at=3_000_000))  # after the batch ran
    assert ids(ask(ease, group, user_id="u45", k=3)) == ["i2", "i4", "i5"]
    kept = ask(ease, group, user_id="u45", k=3, exclude_seen=False)
    assert ids(kept) == ["i1", "i2", "i3"]  # the request asked to keep what the user saw

    ease.create_filter(group, "only-b", 'INCLUDE ItemID WHERE Items.GENRES IN ("b")')
    filtered = ask(ease, group, user_id="u45", k=5, filter_name="only-b")
    assert filtered["source"] == "precomputed" and ids(filtered) == ["i30", "i31"]
    ease.create_filter(group, "not-clicked",
                       'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')  # fmt: skip
    unclicked = ask(ease, group, user_id="u45", k=3, filter_name="not-clicked",
                    exclude_seen=False)  # fmt: skip
    assert ids(unclicked) == ["i2", "i4", "i5"]  # an Interactions filter reads the new events
    with pytest.raises(NotFound, match="filter 'missing'"):  # the request's own mistake
        ask(ease, group, user_id="u45", filter_name="missing")
    # Nothing left after the filter, a list to rank: the rule engine answers.
    ease.create_filter(group, "nothing", 'INCLUDE ItemID WHERE Items.GENRES IN ("z")')
    assert ask(ease, group, user_id="u45", filter_name="nothing")["source"] == "rules"
    ranked = ask(ease, group, user_id="u45", input_list=("i30", "i1"), k=2)
    assert ranked["source"] == "rules" and sorted(ids(ranked)) == ["i1", "i30"]


def test_items_like_an_item_come_from_that_items_key(
    loaded: Engine, group: str, prefix: str
) -> None:
    loaded.create_solution(group, "like", {"recipe": "similar-items"})
    version = loaded.train(group, "like")
    source = {"url": REDIS_URL, "key_prefix": prefix}
    loaded.create_campaign(
        group, "c", "like", config={"min_interactions": 0, "precomputed": source}
    )
    write(prefix, {"i30": ["i31", "i33", "i1"]}, version=version.id)  # u45 clicked i33
    shutil.rmtree(artifacts(loaded, version.id))
    loaded.recommender.forget_loaded()
    answer = ask(loaded, group, item_id="i30", user_id="u45", k=3)
    assert answer["source"] == "precomputed"
    assert ids(answer) == ["i31", "i33", "i1"]  # seen items stay, as in the model's answer


def test_redis_down_falls_back_to_rules_at_once(ease: Engine, group: str) -> None:
    version = ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you", config={
        "min_interactions": 0, "precomputed": {"url": "redis://127.0.0.1:1/0"}})  # fmt: skip
    shutil.rmtree(artifacts(ease, version.id))
    ease.recommender.forget_loaded()
    started = time.monotonic()
    assert ask(ease, group, user_id="u45", k=3)["source"] == "rules"
    assert time.monotonic() - started < 1.0


def test_without_a_precomputed_source_nothing_changes(ease: Engine, group: str) -> None:
    version = ease.train(group, "for-you")
    ease.create_campaign(group, "c", "for-you", config={"min_interactions": 0})
    assert ease.get_campaign(group, "c").config["precomputed"] is None
    assert ask(ease, group, user_id="u45")["source"] == "model"
    shutil.rmtree(artifacts(ease, version.id))
    ease.recommender.forget_loaded()
    with pytest.raises(NotFound, match="has no artifacts"):  # the error as before
        ask(ease, group, user_id="u46")
    assert ease.campaigns.precomputed._readers == {}  # Redis was never contacted


def test_campaign_config_is_checked(ease: Engine, group: str) -> None:
    with pytest.raises(InvalidInput, match=r"config.precomputed.url.*http://x"):
        ease.create_campaign(group, "c", "for-you", config={"precomputed": {"url": "http://x"}})
    with pytest.raises(InvalidInput, match=r"config.precomputed.overload_share"):
        ease.create_campaign(group, "c", "for-you", config={
            "precomputed": {"url": REDIS_URL, "overload_share": 1.5}})  # fmt: skip
    with pytest.raises(InvalidInput, match=r"config.precomputed.keyPrefix"):
        ease.create_campaign(group, "c", "for-you", config={
            "precomputed": {"url": REDIS_URL, "keyPrefix": "x"}})  # fmt: skip
    ease.create_campaign(group, "c", "for-you", config={"precomputed": {"url": REDIS_URL}})
    stored = ease.get_campaign(group, "c").config["precomputed"]
    assert stored == {"url": REDIS_URL, "key_prefix": "recs:", "overload_share": 0.8}
    ease.update_campaign(group, "c", config={"precomputed": None})
    assert ease.get_campaign(group, "c").config["precomputed"] is None
