"""Operations: readiness, request ids, access logs, overload (503/429), graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client import REGISTRY
from starlette.datastructures import State

from tastebud.api.app import create_app
from tastebud.api.operations import TokenBuckets
from tastebud.api.routes import health
from tastebud.api.shutdown import DrainOnSignal
from tastebud.engine import Engine
from tastebud.observability import JsonFormatter, RequestIdFilter
from tastebud.settings import ApiSettings, Settings

from .conftest import Api, TestClient
from .overload import add_slow_route, rejections
from .servers import ADMIN_TOKEN, ServeProcess, refuses_connections, server_thread

EVENTS_ROUTE = "/v1/dataset-groups/{group}/events"


@pytest.fixture
def backend() -> str:
    """Operations do not depend on the store: SQLite only."""
    return "sqlite"


def app_with(api: Api, **limits: object) -> TestClient:
    settings = api.engine.settings.model_copy(update={"api": ApiSettings(**limits)})  # type: ignore[arg-type]
    return TestClient(create_app(settings, engine=api.engine))


# health and readiness -----------------------------------------------------------------------
def test_health_and_ready_need_no_token(api: Api) -> None:
    assert api.http.get("/health").status_code == 200
    response = api.http.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"server": "ok", "engine": "ok",
                                                             "store": "ok"}}  # fmt: skip


def test_ready_is_degraded_naming_a_failing_store(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(token_hash: str) -> None:
        raise ConnectionError("database is gone")

    monkeypatch.setattr(api.engine.store, "find_token", broken)
    response = api.http.get("/ready")
    assert response.status_code == 200  # still serving what it can: stays in the balancer
    body = response.json()
    assert (body["status"], body["degraded"]) == ("degraded", ["store"])
    assert "notReady" not in body
    assert body["checks"]["store"] == "ConnectionError: database is gone"


def test_ready_is_degraded_when_the_store_is_too_slow(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(api.engine.store, "find_token", lambda token_hash: time.sleep(0.5))
    response = api.http.get("/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["store"] == "no answer within 0.05s"
    assert response.json()["degraded"] == ["store"]


def test_ready_is_503_while_draining(api: Api) -> None:
    api.http.app.state.draining = True  # type: ignore[attr-defined]
    response = api.http.get("/ready")
    assert response.status_code == 503
    assert response.json()["notReady"] == ["server"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [("redis://127.0.0.1:6379/0", "ready"), ("redis://127.0.0.1:1/0", "degraded")],
)
def test_ready_pings_redis_when_configured(api: Api, url: str, expected: str) -> None:
    settings = api.engine.settings.model_copy(update={"redis_url": url})
    with TestClient(create_app(settings, engine=api.engine)) as http:
        response = http.get("/ready")
    assert response.status_code == 200, response.text  # Redis down: served without its cache
    assert response.json()["status"] == expected
    assert (response.json()["checks"]["redis"] == "ok") == (expected == "ready")


# request ids and access logs ----------------------------------------------------------------
def test_request_ids_are_made_or_propagated(api: Api) -> None:
    made = {api.http.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(made)
    kept = api.http.get("/health", headers={"X-Request-Id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    for unsafe in ("has space", "x" * 200):  # it goes into log lines: replaced
        replaced = api.http.get("/health", headers={"X-Request-Id": unsafe})
        assert replaced.headers["x-request-id"] not in (unsafe, "")
    unauthorized = api.http.get(api.url("/status"), headers={"X-Request-Id": "r-401"})
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"] == "r-401"


def test_one_json_access_line_per_request(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tastebud.access")
    events = {"userId": "u1", "eventList": [{"itemId": "i1"}]}
    response = api.http.post(api.url("/events"), json=events, headers={**api.ingest,
                             "X-Request-Id": "req-1"})  # fmt: skip
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "tastebud.access"]
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "req-1"
    assert line["method"] == "POST" and line["status"] == 200
    assert line["route"] == EVENTS_ROUTE  # the template: no ids in the line
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["logger"] == "tastebud.access" and "time" in line


def test_access_log_can_be_turned_off(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="tastebud.access")
    with app_with(api, access_log=False) as http:
        assert http.get("/health").status_code == 200
    assert not [r for r in caplog.records if r.name == "tastebud.access"]


def test_error_lines_carry_the_request_id(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.handler.addFilter(RequestIdFilter())  # as `logging_config` installs it

    def crash() -> None:
        raise RuntimeError("boom")

    app = create_app(api.engine.settings, engine=api.engine)
    app.add_api_route("/crash", crash)
    with TestClient(app, raise_server_exceptions=False) as http:
        response = http.get("/crash", headers={"X-Request-Id": "req-crash"})
    assert response.status_code == 500
    [error] = [r for r in caplog.records if r.name == "tastebud.api.errors"]
    line = json.loads(JsonFormatter().format(error))
    assert line["request_id"] == "req-crash" and "RuntimeError: boom" in line["exception"]


# overload -----------------------------------------------------------------------------------
def test_beyond_the_inflight_limit_requests_get_503_at_once(api: Api) -> None:
    limit, extra = 4, 3
    settings = api.engine.settings.model_copy(
        # This process's own client threads lag the server's loop: the in-flight limit alone.
        update={"api": ApiSettings(max_inflight_requests=limit, shed_lag_ms=None)}
    )
    app = create_app(settings, engine=api.engine)
    release = add_slow_route(app)
    before = rejections("inflight")
    with server_thread(app) as url:
        asyncio.run(_overload(url, limit, extra, release))
    assert rejections("inflight") - before == extra


async def _overload(url: str, limit: int, extra: int, release: threading.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        started = time.monotonic()
        requests = [asyncio.create_task(client.get("/slow")) for _ in range(limit + extra)]
        while sum(task.done() for task in requests) < extra:
            assert time.monotonic() - started < 5, "no rejections"
            await asyncio.sleep(0.01)
        refused = [task.result() for task in requests if task.done()]
        assert time.monotonic() - started < 2  # answered at once, not after the slow ones
        assert [r.status_code for r in refused] == [503] * extra
        assert refused[0].headers["retry-after"] == "1"
        assert refused[0].json()["error"]["type"] == "Overloaded"
        assert REGISTRY.get_sample_value("tastebud_http_inflight_requests") == limit
        # Saturated, the probes still answer.
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/ready")).status_code == 200
        release.set()
        served = await asyncio.gather(*[t for t in requests if t not in refused])
        assert [r.status_code for r in served if r.status_code != 503] == [200] * limit
        # Recovered: a full limit's worth of concurrent requests all succeed again.
        again = await asyncio.gather(*[client.get("/slow") for _ in range(limit)])
        assert [r.status_code for r in again] == [200] * limit


def test_a_token_over_its_rate_gets_429(api: Api) -> None:
    before = rejections("rate_limit")
    with app_with(api, rate_limit_per_token=0.2, rate_limit_burst=2) as http:
        answers = [http.get("/v1/dataset-groups", headers=api.admin) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 200, 429]
        assert answers[2].json()["error"]["type"] == "TooManyRequests"
        assert 1 <= int(answers[2].headers["retry-after"]) <= 5  # a token comes back every 5 s
        assert http.get(api.url("/status"), headers=api.ingest).status_code == 403  # own bucket
        assert http.get("/health").status_code == 200  # probes are exempt
    assert rejections("rate_limit") - before == 1


def test_token_buckets_refill_at_the_rate() -> None:
    now = [100.0]
    buckets = TokenBuckets(2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert buckets.take("a") == pytest.approx(0.5)  # empty: the next token in 1/rate s
    assert buckets.take("b") == 0.0  # every token has its own bucket
    now[0] += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    now[0] += 60  # refills up to the burst, no further
    assert [buckets.take("a") for _ in range(4)][-1] > 0


# graceful shutdown --------------------------------------------------------------------------
def test_a_signal_drains_first_and_a_second_one_stops_at_once() -> None:
    server = uvicorn.Server(uvicorn.Config(create_app(Settings())))
    original = signal.signal(signal.SIGTERM, server.handle_exit)  # as uvicorn's serve() does
    try:
        state = State()
        drain = DrainOnSignal(state, delay=30)
        signal.raise_signal(signal.SIGTERM)
        assert state.draining and not server.should_exit  # still serving, not ready
        signal.raise_signal(signal.SIGTERM)
        assert server.should_exit  # no more waiting
        drain.restore()
        assert signal.getsignal(signal.SIGTERM) == server.handle_exit
    finally:
        signal.signal(signal.SIGTERM, original)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    """``tastebud serve`` in its own process, 2 s of draining after SIGTERM."""
    server = ServeProcess(tmp_path, env={"TASTEBUD_API__SHUTDOWN_DELAY_SECONDS": "2"})
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_sigterm_drains_then_finishes_in_flight_requests(served: ServeProcess) -> None:
    events = [{"itemId": f"i{k}", "eventId": f"e{k}"} for k in range(20)]
    body = json.dumps({"userId": "u1", "eventList": events}).encode()
    # A slow request: its body arrives in two parts, around the signal.
    slow = socket.create_connection(("127.0.0.1", served.port))
    slow.sendall(
        b"POST /v1/dataset-groups/default/events HTTP/1.1\r\nHost: test\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nX-Request-Id: slow-1\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    time.sleep(0.2)
    served.signal(signal.SIGTERM)
    # Draining: still serving, but no longer ready, so the balancer moves away.
    ready = httpx.get(f"{served.url}/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["notReady"] == ["server"]
    assert httpx.get(f"{served.url}/health", timeout=5).status_code == 200
    deadline = time.monotonic() + 5
    while not refuses_connections(served.port):  # after the delay: no new connections
        assert time.monotonic() < deadline, "still accepting connections"
        time.sleep(0.05)
    assert served.process.poll() is None  # waiting for the slow request
    slow.sendall(body[10:])
    status_line, _, answer = _read_response(slow)
    assert status_line.startswith(b"HTTP/1.1 200"), status_line
    assert json.loads(answer) == {"accepted": 20, "duplicates": 0}
    logs = served.stop()
    assert served.process.returncode in (0, -signal.SIGTERM), logs
    settings = Settings(home=served.home)
    with Engine(settings) as engine:
        assert engine.counts("default")["interactions"] == 20
    access = [json.loads(line) for line in logs.splitlines() if '"tastebud.access"' in line]
    [line] = [a for a in access if a.get("request_id") == "slow-1"]
    assert line["route"] == EVENTS_ROUTE and line["status"] == 200


def _read_response(sock: socket.socket) -> tuple[bytes, bytes, bytes]:
    """Status line, headers and body of one HTTP/1.1 answer with a Content-Length."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, _, headers = head.partition(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return status_line, headers, body
