"""Issue 15's availability: a ranker whose declared features live in Redis keeps answering when
Redis stops in the middle of a load run — from the rule order, within the deadline — and
returns to the model once Redis is back, without a restart (SQLite and PostgreSQL; a private
``redis-server``, never the machine's)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tastebud.demo import live_world
from tastebud.demo.live_shows import CAMPAIGNS, FEATURES, RANKER, SCHEMAS, SOLUTIONS
from tastebud.demo.synthetic import write_csv
from tastebud.engine import Engine
from tastebud.serving.campaigns import CampaignRequest
from tastebud.settings import Settings
from tastebud.store import Store
from tests.api.servers import RedisProcess
from tests.serving.test_campaign_fallback import fallbacks

# The demo's ranker, smaller: no offline metrics, few trees for a small world.
SOLUTION = SOLUTIONS[RANKER] | {"evaluate": False, "params": SOLUTIONS[RANKER]["params"] | {
    "n_estimators": 30, "min_data_in_leaf": 5}}  # fmt: skip


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live(
    store: Store, store_url: str, group: str, tmp_path: Path, redis: RedisProcess
) -> Iterator[tuple[Engine, live_world.World]]:
    """A scaled-out engine (features and caches in ``redis``) over a small live-show world,
    its ranker trained and deployed with the rules fallback."""
    settings = Settings(home=tmp_path / "home", default_group=group, database_url=store_url,
                        redis_url=redis.url)  # fmt: skip
    engine = Engine(settings, store=store)
    world, frames = live_world.generate(n_viewers=150, n_hosts=12, days=10, now=int(time.time()),
                                        visits_per_viewer=20, seed=3)  # fmt: skip
    files = write_csv(tmp_path / "data", frames)
    for dataset, fields in SCHEMAS.items():
        engine.put_schema(group, dataset, fields)  # type: ignore[arg-type]
    for dataset in ("items", "users", "interactions"):
        engine.import_file(group, dataset, files[dataset])  # type: ignore[arg-type]
    engine.features.apply(group, FEATURES)
    engine.features.compute(group)
    engine.create_solution(group, RANKER, SOLUTION)
    engine.train(group, RANKER)
    engine.create_campaign(group, RANKER, RANKER, config=CAMPAIGNS[RANKER])
    yield engine, world
    engine.close()


def test_redis_down_mid_load_answers_from_the_rules_then_the_model_again(
    live: tuple[Engine, live_world.World], group: str, redis: RedisProcess
) -> None:
    engine, world = live
    on_air = [world.host_ids[h] for h in world.on_air(int(time.time()))]
    assert len(on_air) >= 3

    def ask(viewer: int) -> dict[str, object]:
        request = CampaignRequest(user_id=world.viewer_ids[viewer], input_list=on_air,
                                  k=len(on_air))  # fmt: skip
        return engine.campaign_answer(group, RANKER, request)

    # The model answers with features read from Redis. The first answers warm the process up
    # (the features' first read, the bases' first calls) and may miss the deadline on a loaded
    # machine: they get the rule order, as they should; ask until one is within it.
    warm_until = time.monotonic() + 30
    while ask(0)["source"] != "model":
        assert time.monotonic() < warm_until, "the model never answered within the deadline"
    sources: Counter[str] = Counter()
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        viewer = 0
        while not stop.is_set():
            try:
                answer = ask(viewer % len(world.viewer_ids))
                assert len(answer["itemList"]) == len(on_air)  # type: ignore[arg-type]
                sources[str(answer["source"])] += 1
            except BaseException as error:  # every failed request is counted
                failures.append(error)
            viewer += 1

    before = fallbacks("score_error", RANKER)
    thread = threading.Thread(target=load)
    thread.start()
    time.sleep(0.5)
    redis.stop()  # in the middle of the run
    time.sleep(1.5)
    down = sources["rules"]
    redis.start()  # empty: the feature store publishes again, the caches fill again
    deadline = time.monotonic() + 20
    model_after = sources["model"]
    while sources["model"] <= model_after + 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    thread.join(30)
    assert failures == []  # zero failed requests
    assert down > 0  # viewers got the rule order while Redis was down
    assert sources["model"] > model_after + 5  # and the model again once it was back
    assert fallbacks("score_error", RANKER) > before  # the fallback is counted
