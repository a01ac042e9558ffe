"""Refusals made by the server's protocol before a request is read (api/admission.py), against
real uvicorn servers: what a client gets, what is counted, and what stays served."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from tastebud.api.admission import PROTOCOL, AdmissionGate, GatedHttpProtocol
from tastebud.api.app import create_app
from tastebud.api.routes.campaigns import MISSES_BEFORE_GATING, CampaignFastPath
from tastebud.cli.serve import _uvicorn_options
from tastebud.observability import JsonFormatter
from tastebud.settings import ApiSettings
from tests.api.routes.test_campaigns import deploy, one_answer_thread_app
from tests.api.routes.test_recommendations import trained  # noqa: F401 (fixture)
from tests.api.test_metrics import value

from .conftest import Api
from .overload import add_slow_route, rejections
from .servers import server_thread


@pytest.fixture
def backend() -> str:
    """The gate does not depend on the store: SQLite only."""
    return "sqlite"


def test_beyond_the_inflight_limit_the_protocol_refuses_unread_and_keeps_the_connection(
    api: Api,
) -> None:
    limit = 2
    settings = api.engine.settings.model_copy(
        update={"api": ApiSettings(max_inflight_requests=limit, shed_lag_ms=None)}
    )
    app = create_app(settings, engine=api.engine)
    release = add_slow_route(app)
    before = rejections("inflight")
    with server_thread(app, http=PROTOCOL) as url:
        asyncio.run(_saturate(url, api, limit, release))
    assert rejections("inflight") - before == 3


async def _saturate(url: str, api: Api, limit: int, release: threading.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        slow = [asyncio.create_task(client.get("/slow")) for _ in range(limit)]
        while REGISTRY.get_sample_value("tastebud_http_inflight_requests") != limit:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=url, timeout=10) as one:  # one connection
            refused = await one.get("/v1/dataset-groups", headers=api.admin)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["type"] == "Overloaded"
            assert "in flight" in refused.json()["error"]["message"]
            # The app never saw it: every answer the app gives carries a request id.
            assert "x-request-id" not in refused.headers
            # A refused request's body is skipped, and the connection serves on.
            posted = await one.post(api.url("/events"), json={"events": []}, headers=api.ingest)
            assert posted.status_code == 503 and "x-request-id" not in posted.headers
            assert (await one.get("/health")).status_code == 200  # probes are exempt
            release.set()
            assert [(await task).status_code for task in slow] == [200] * limit
            served = await one.get("/v1/dataset-groups", headers=api.admin)
            assert served.status_code == 200 and "x-request-id" in served.headers
        release.clear()
        slow = [asyncio.create_task(client.get("/slow")) for _ in range(limit)]
        while REGISTRY.get_sample_value("tastebud_http_inflight_requests") != limit:
            await asyncio.sleep(0.01)
        assert _closing_request(url) == (503, True)
        release.set()
        await asyncio.gather(*slow)


def _closing_request(url: str) -> tuple[int, bool]:
    """One HTTP/1.0 request on a raw socket: (its status, whether the server then closed)."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/dataset-groups HTTP/1.0\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1])
    return status, b"connection: close" in received.lower()


def test_uncached_answers_in_a_row_with_a_full_queue_are_refused_unread_while_hits_reset_it(
    trained: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = trained
    app, release, computing = one_answer_thread_app(api, monkeypatch)
    release.set()
    before = rejections("answers")
    with server_thread(app, http=PROTOCOL) as url:
        asyncio.run(_misses(url, api, release, computing))
    assert rejections("answers") - before == 2 * MISSES_BEFORE_GATING


async def _misses(url: str, api: Api, release: threading.Event, computing: threading.Event) -> None:
    path = api.url("/campaigns/home/recommendations")
    async with httpx.AsyncClient(base_url=url, headers=api.admin, timeout=10) as client:

        async def ask(user: str) -> httpx.Response:
            return await client.post(path, json={"userId": user})

        assert (await client.get(api.url("/campaigns"))).status_code == 200  # token verified
        assert (await ask("u1")).json()["cache"] == "miss"  # u1's answer is cached now
        release.clear()
        computing.clear()
        running = asyncio.create_task(ask("u2"))
        while not computing.is_set():
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(ask("u3"))
        await asyncio.sleep(0.1)  # the queue is full
        for misses in (MISSES_BEFORE_GATING - 1, MISSES_BEFORE_GATING):
            hit = await ask("u1")  # a hit is still served, and the count of misses restarts
            assert hit.status_code == 200 and hit.json()["cache"] == "hit", hit.text
            for n in range(misses):  # refused by the app, after reading them
                refused = await ask(f"u{10 + n}")
                assert refused.status_code == 503 and "x-request-id" in refused.headers
        unread = await ask("u1")  # now even a cached answer is refused before it is read
        assert unread.status_code == 503 and "x-request-id" not in unread.headers
        assert unread.json()["error"]["message"] == "server busy (answers waiting); retry shortly"
        release.set()
        assert [(await task).status_code for task in (running, waiting)] == [200, 200]
        served = await ask("u30")  # the queue has room again: served
        assert served.status_code == 200 and served.json()["cache"] == "miss"


class Queue:
    """An answer queue with ``room`` places left, saturated by misses (as after 8 in a row)."""

    def __init__(self, room: int) -> None:
        self.room = room

    def saturated(self, arriving: int) -> bool:
        return arriving >= self.room


def test_one_burst_of_reads_lets_through_no_more_answer_requests_than_the_queue_has_room_for() -> (
    None
):
    gate, queue = AdmissionGate(), Queue(room=2)
    gate.answers = queue
    path = b"/v1/dataset-groups/g/campaigns/home/recommendations?x=1"

    async def burst() -> list[bool]:
        return [gate.refusal(b"POST", path) is None for _ in range(4)]

    async def bursts() -> tuple[list[bool], list[bool], list[bool]]:
        first = await burst()
        await asyncio.sleep(0)  # the loop runs the tasks of the requests let through
        queue.room = 1  # ... which joined the queue: the count of those arriving restarts
        second = await burst()
        other = [gate.refusal(b"GET", path) is None, gate.refusal(b"POST", b"/health") is None]
        return first, second, other

    assert asyncio.run(bursts()) == (
        [True, True, False, False],
        [True, False, False, False],
        [True, True],
    )


def test_tastebud_serve_runs_uvicorn_with_the_gated_protocol(api: Api) -> None:
    http = _uvicorn_options(api.engine.settings)["http"]
    # Not the rest of the options: their logging config would rebind the process's handlers.
    config = uvicorn.Config(create_app(api.engine.settings, engine=api.engine), http=http,
                            log_config=None)  # fmt: skip
    config.load()
    assert config.http_protocol_class is GatedHttpProtocol


def test_an_answer_whose_thread_is_done_frees_its_place_before_its_task_resumes() -> None:
    """The thread marks its answer done; the task that counts it out runs a loop turn later,
    and until then the gate must not see a full queue (it refused most requests under load)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("not called")

    queue = CampaignFastPath(app, state=State(), threads=1, max_waiting=1)
    queue._answers, queue._misses_since_hit = 2, MISSES_BEFORE_GATING
    assert queue.saturated()
    queue._finished.add(object())  # one thread done, its task not yet resumed
    assert not queue.saturated()
    assert queue.saturated(arriving=1)


class CountingCalls:
    """An outermost ASGI middleware noting the path of every HTTP call the app gets."""

    def __init__(self, app: ASGIApp, *, calls: list[str]) -> None:
        self.app, self.calls = app, calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls.append(scope["path"])
        await self.app(scope, receive, send)


ANSWERS_ROUTE = "/v1/dataset-groups/{group}/campaigns/{name}/recommendations"


def counted_app(api: Api, **api_settings: Any) -> tuple[FastAPI, list[str]]:
    """The "home" campaign deployed, and an app with ``api_settings`` noting the path of every
    HTTP call it gets."""
    assert deploy(api).status_code == 201
    settings = api.engine.settings
    if api_settings:
        settings = settings.model_copy(update={"api": ApiSettings(**api_settings)})
    calls: list[str] = []
    app = create_app(settings, engine=api.engine)
    app.add_middleware(CountingCalls, calls=calls)
    return app, calls


def test_a_cached_answer_is_sent_by_the_protocol_and_counted_and_logged_as_the_app_would(
    trained: Api,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = trained
    app, calls = counted_app(api)
    caplog.set_level(logging.INFO, logger="tastebud.access")
    path = api.url("/campaigns/home/recommendations")
    with server_thread(app, http=PROTOCOL) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert http.get(api.url("/campaigns"), headers=api.admin).status_code == 200  # token known
        before = http.get("/metrics", headers=api.admin).text
        miss = http.post(path, json={"userId": "u1"}, headers=api.admin)
        assert miss.status_code == 200 and miss.json()["cache"] == "miss"
        served_by_app = len(calls)
        hit = http.post(path, json={"userId": "u1"}, headers={**api.admin, "X-Request-Id": "r-7"})
        assert len(calls) == served_by_app  # the app never saw it
        assert hit.status_code == 200 and hit.headers["content-type"] == "application/json"
        assert hit.headers["x-request-id"] == "r-7"
        assert hit.json() == {**miss.json(), "cache": "hit"}
        again = http.post(path, json={"userId": "u1"}, headers=api.admin)  # same connection
        assert again.json()["cache"] == "hit" and again.headers["x-request-id"] not in ("", "r-7")
        assert len(calls) == served_by_app
        # Whatever the app would word itself still reaches it, on the same connection.
        forbidden = http.post(path, json={"userId": "u1"}, headers=api.ingest)
        invalid = http.post(path, json={"userId": 5}, headers=api.admin)
        with_query = http.post(path + "?x=1", json={"userId": "u1"}, headers=api.admin)
        assert (forbidden.status_code, invalid.status_code) == (403, 422)
        assert with_query.json()["cache"] == "hit"
        assert len(calls) == served_by_app + 3
        after = http.get("/metrics", headers=api.admin).text
    labels = {"route": ANSWERS_ROUTE, "method": "POST", "status": "200"}
    counted = value(after, "tastebud_http_requests_total", **labels) - value(
        before, "tastebud_http_requests_total", **labels
    )
    assert counted == 4  # the miss, both hits the protocol sent, the one with a query string
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "tastebud.access" and r.route == ANSWERS_ROUTE]  # fmt: skip
    assert [(line["status"], line["request_id"]) for line in lines][1] == (200, "r-7")
    assert len(lines) == 6


def test_with_a_rate_limit_per_token_every_answer_goes_through_the_app(
    trained: Api,  # noqa: F811
) -> None:
    api = trained
    app, calls = counted_app(api, rate_limit_per_token=1000.0)
    path = api.url("/campaigns/home/recommendations")
    with server_thread(app, http=PROTOCOL) as url, httpx.Client(base_url=url, timeout=10) as http:
        answers = [http.post(path, json={"userId": "u1"}, headers=api.admin) for _ in range(3)]
    assert [a.json()["cache"] for a in answers] == ["miss", "hit", "hit"]
    assert calls.count(path) == 3  # the buckets are the app's to count


def test_a_failing_cache_lookup_is_answered_by_the_app_not_as_a_bad_request(
    trained: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = trained
    app, _ = counted_app(api)
    path = api.url("/campaigns/home/recommendations")
    with server_thread(app, http=PROTOCOL) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert http.post(path, json={"userId": "u1"}, headers=api.admin).status_code == 200

        def broken(*args: object) -> bytes:
            raise RuntimeError("cache unreadable")

        monkeypatch.setattr(api.engine.campaigns, "cached", broken)
        failed = http.post(path, json={"userId": "u1"}, headers=api.admin)
        # The app's own error answer (JSON), not uvicorn's 400 for a failing protocol callback.
        assert failed.status_code == 500, failed.text
        assert failed.headers["content-type"] == "application/json" and "error" in failed.json()


EVENTS_ROUTE = "/v1/dataset-groups/{group}/events"


def test_put_events_are_committed_and_answered_by_the_protocol_counted_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []
    app = create_app(api.engine.settings, engine=api.engine)
    app.add_middleware(CountingCalls, calls=calls)
    caplog.set_level(logging.INFO, logger="tastebud.access")
    path = api.url("/events")
    batch = {"userId": "u1", "eventList": [{"itemId": f"i{k}", "eventId": f"e{k}"}
                                           for k in range(3)]}  # fmt: skip
    with server_thread(app, http=PROTOCOL) as url, httpx.Client(base_url=url, timeout=10) as http:
        # Any answer verifies the token (here a 403: not an admin one); then it is known.
        assert http.get(api.url("/status"), headers=api.ingest).status_code == 403
        app_calls = len(calls)
        ingested = REGISTRY.get_sample_value("tastebud_events_ingested_total", {"source": "http"})
        headers = {**api.ingest, "X-Request-Id": "ev-1"}
        first = http.post(path, json=batch, headers=headers)
        retried = http.post(path, json=batch, headers=api.ingest)  # same connection
        assert len(calls) == app_calls  # the app never saw them
        assert (first.status_code, first.json()) == (200, {"accepted": 3, "duplicates": 0})
        assert first.headers["x-request-id"] == "ev-1"
        assert first.headers["content-type"] == "application/json"
        assert retried.json() == {"accepted": 0, "duplicates": 3}  # stored once
        # What the app words itself still reaches it, on the same connection.
        invalid = http.post(path, json={"userId": "u1", "eventList": [{}]}, headers=api.ingest)
        assert invalid.status_code == 422 and len(calls) == app_calls + 1
        # An error the fast path words itself comes from the protocol, as the app would say it.
        unknown = http.post(api.url("/events", group="nope"), json=batch, headers=api.ingest)
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "NotFound"
        assert len(calls) == app_calls + 1
    assert sorted(e["eventId"] for e in api.events("u1")) == ["e0", "e1", "e2"]
    after = REGISTRY.get_sample_value("tastebud_events_ingested_total", {"source": "http"})
    assert (after or 0.0) - (ingested or 0.0) == 3
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records
             if r.name == "tastebud.access" and r.route == EVENTS_ROUTE]  # fmt: skip
    assert (lines[0]["status"], lines[0]["request_id"]) == (200, "ev-1")
    assert sorted(line["status"] for line in lines) == [200, 200, 404, 422]


def test_a_request_pipelined_behind_put_events_is_answered_after_it(api: Api) -> None:
    app = create_app(api.engine.settings, engine=api.engine)
    body = json.dumps({"userId": "u2", "eventList": [{"itemId": "i1", "eventId": "p1"}]})
    put = (f"POST {api.url('/events')} HTTP/1.1\r\nHost: t\r\nAuthorization: "
           f"{api.ingest['Authorization']}\r\nContent-Type: application/json\r\n"
           f"Content-Length: {len(body)}\r\n\r\n{body}").encode()  # fmt: skip
    with server_thread(app, http=PROTOCOL) as url:
        address = urlsplit(url)
        # Any answer verifies the token; then the protocol takes the events.
        assert httpx.get(f"{url}{api.url('/status')}", headers=api.ingest).status_code == 403
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(put + b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")  # one write
            received = b""
            while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
    first, second = received.split(b"HTTP/1.1 200")[1:]
    assert b'{"accepted":1,"duplicates":0}' in first  # the events' answer first
    assert b'"status"' in second and b"accepted" not in second
