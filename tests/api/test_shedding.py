"""Load shedding by the event loop's lag (CoDel's rule): unit and against a real server."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import httpx
import pytest
from prometheus_client import REGISTRY

from tastebud.api.app import create_app
from tastebud.api.operations import SHED_MIN_INFLIGHT
from tastebud.api.shedding import LagShedder
from tastebud.settings import ApiSettings

from .conftest import Api
from .overload import add_slow_route, rejections
from .servers import server_thread


@pytest.fixture
def backend() -> str:
    """Shedding does not depend on the store: SQLite only."""
    return "sqlite"


def test_a_short_burst_of_lag_is_left_alone() -> None:
    shedder = LagShedder(target=0.02, interval=0.1, period=0.005)
    shedder.observe(now=1.050, due=1.0)  # 50 ms late: behind since 1.02, for 30 ms
    assert not shedder.shedding and shedder.lag == pytest.approx(0.05)
    shedder.observe(now=1.060, due=1.055)  # on time again: the burst is forgotten
    shedder.observe(now=1.150, due=1.100)
    assert not shedder.shedding


def test_lag_that_stays_above_the_target_for_an_interval_sheds_until_one_sample_is_under() -> None:
    shedder = LagShedder(target=0.02, interval=0.1, period=0.005)
    now = 1.0
    for _ in range(5):  # every sample 30 ms late, for 150 ms
        shedder.observe(now=now + 0.03, due=now)
        now += 0.03
    assert shedder.shedding
    shedder.observe(now=now + 0.01, due=now)
    assert not shedder.shedding


def test_one_long_stall_counts_for_its_whole_length() -> None:
    shedder = LagShedder(target=0.02, interval=0.1)
    shedder.observe(now=1.3, due=1.0)  # the loop was blocked 300 ms
    assert shedder.shedding


def test_the_sampler_sees_a_blocked_loop() -> None:
    async def run() -> tuple[bool, bool]:
        shedder = LagShedder(target=0.02, interval=0.05)
        shedder.start()
        await asyncio.sleep(0.02)
        time.sleep(0.2)  # blocks the loop
        await asyncio.sleep(0.001)  # a timer due after the overdue sample: it runs first
        blocked = shedder.shedding
        await asyncio.sleep(0.05)
        shedder.stop()
        return blocked, shedder.shedding

    assert asyncio.run(run()) == (True, False)


def test_a_lagging_loop_with_requests_in_flight_answers_503_then_recovers(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    settings = api.engine.settings.model_copy(update={"api": ApiSettings(shed_lag_ms=20)})
    app = create_app(settings, engine=api.engine)
    release = add_slow_route(app)

    async def block() -> dict[str, bool]:
        time.sleep(0.4)  # the event loop stalls: requests queue unseen
        return {"done": True}

    app.add_api_route("/block", block)
    before = rejections("lag")
    with caplog.at_level(logging.WARNING, "tastebud.api.operations"), server_thread(app) as url:
        asyncio.run(_lag(url, api.admin, release))
    assert rejections("lag") - before >= 1
    # Shed requests get no access-log line each, but a summary names them.
    summaries = [r for r in caplog.records if r.getMessage().startswith("overloaded:")]
    assert summaries and "1 requests refused (503)" in summaries[0].getMessage()


async def _lag(url: str, admin: dict[str, str], release: threading.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        slow = [asyncio.create_task(client.get("/slow")) for _ in range(SHED_MIN_INFLIGHT)]
        while REGISTRY.get_sample_value("tastebud_http_inflight_requests") != SHED_MIN_INFLIGHT:
            await asyncio.sleep(0.01)
        blocking = asyncio.create_task(client.get("/block"))
        await asyncio.sleep(0.1)  # the server is inside time.sleep now
        waited = asyncio.create_task(client.get("/v1/dataset-groups", headers=admin))
        probe = asyncio.create_task(client.get("/health"))
        refused, health = await waited, await probe
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["type"] == "Overloaded"
        assert health.status_code == 200  # probes are exempt
        assert (await blocking).status_code == 200
        # The lag is gone: the next sample is on time, and requests are served again.
        for _ in range(100):
            if (answer := await client.get("/v1/dataset-groups", headers=admin)).status_code == 200:
                break
            await asyncio.sleep(0.01)
        assert answer.status_code == 200, answer.text
        release.set()
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200] * len(slow)


def test_a_lagging_loop_with_few_requests_in_flight_keeps_serving(api: Api) -> None:
    settings = api.engine.settings.model_copy(update={"api": ApiSettings(shed_lag_ms=20)})
    app = create_app(settings, engine=api.engine)

    async def block() -> dict[str, bool]:
        time.sleep(0.4)
        return {"done": True}

    app.add_api_route("/block", block)
    with server_thread(app) as url:
        asyncio.run(_lag_alone(url, api.admin))


async def _lag_alone(url: str, admin: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        blocking = asyncio.create_task(client.get("/block"))
        await asyncio.sleep(0.1)
        answer = await client.get("/v1/dataset-groups", headers=admin)
        assert answer.status_code == 200, answer.text  # not the requests' doing: no refusal
        assert (await blocking).status_code == 200
