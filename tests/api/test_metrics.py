"""``/metrics``: access, request counts by route template, latency, events, caches, workers."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tastebud import observability
from tastebud.api.app import create_app
from tastebud.settings import ApiSettings

from .conftest import Api, TestClient
from .servers import ServeProcess

EVENTS_ROUTE = "/v1/dataset-groups/{group}/events"


@pytest.fixture
def backend() -> str:
    return "sqlite"


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of a Prometheus exposition; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def scrape(api: Api) -> str:
    response = api.http.get("/metrics", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def test_metrics_need_an_admin_token_unless_public(api: Api) -> None:
    assert api.http.get("/metrics").status_code == 401
    assert api.http.get("/metrics", headers=api.ingest).status_code == 403
    assert api.http.get("/metrics", headers=api.admin).status_code == 200
    settings = api.engine.settings.model_copy(update={"api": ApiSettings(metrics_public=True)})
    with TestClient(create_app(settings, engine=api.engine)) as http:
        assert http.get("/metrics").status_code == 200


def test_requests_are_counted_by_route_template(api: Api) -> None:
    before = scrape(api)
    for user in ("alice", "bob", "carol"):  # three paths, one route
        assert api.http.get(api.url(f"/users/{user}/events"), headers=api.admin).status_code == 200
    assert api.http.get("/no/such/path").status_code == 404
    after = scrape(api)
    route = "/v1/dataset-groups/{group}/users/{user_id}/events"

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tastebud_http_requests_total", route=route, method="GET", status="200") == 3
    assert delta("tastebud_http_request_duration_seconds_count", route=route, method="GET") == 3
    assert delta("tastebud_http_request_duration_seconds_bucket", route=route, le="2.5") == 3
    assert delta("tastebud_http_requests_total", route="(unmatched)", status="404") == 1
    assert "alice" not in after  # ids never become label values


def test_events_ingested_and_rejected_are_counted(api: Api) -> None:
    def post(body: object) -> int:
        response = api.http.post(api.url("/events"), json=body, headers=api.ingest)
        return response.status_code

    before = scrape(api)
    events = [{"itemId": "i1", "eventId": "e1"}, {"itemId": "i2", "eventId": "e2"}]
    assert post({"userId": "u1", "eventList": events}) == 200  # through the FastAPI route
    assert post({"userId": "u1", "eventList": [*events[:1], {"itemId": "i3"}]}) == 200  # fast
    assert post({"userId": "u1", "eventList": [{"itemId": ""}]}) == 422
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tastebud_events_ingested_total", source="http") == 3
    assert delta("tastebud_events_duplicate_total", source="http") == 1
    assert delta("tastebud_event_requests_rejected_total", status="422") == 1
    assert delta("tastebud_http_requests_total", route=EVENTS_ROUTE, status="200") == 2


def test_cache_counters_are_one_call_away(api: Api) -> None:
    observability.cache_hit("results")
    observability.cache_hit("results")
    observability.cache_miss("results")
    text = scrape(api)
    assert value(text, "tastebud_cache_hits_total", cache="results") >= 2
    assert value(text, "tastebud_cache_misses_total", cache="results") >= 1


@pytest.mark.slow  # starts three processes (~5 s on an idle machine)
def test_workers_share_one_metrics_view(tmp_path: Path) -> None:
    """``serve --workers 2``: each worker writes its own files, /metrics on any adds them up."""
    server = ServeProcess(tmp_path, "--workers", "2", env={"TASTEBUD_API__METRICS_PUBLIC": "true"})
    try:
        server.wait_ready()
        folders = list((tmp_path / "metrics").glob("serve-*"))
        assert len(folders) == 1
        deadline = time.monotonic() + 20  # both workers up: each has written its files
        while len({f.stem.rsplit("_", 1)[1] for f in folders[0].glob("*.db")}) < 2:
            assert time.monotonic() < deadline, list(folders[0].iterdir())
            time.sleep(0.1)
        for _ in range(20):  # a connection each: the kernel spreads them over the workers
            assert httpx.get(f"{server.url}/health", headers={"Connection": "close"}).is_success
        text = httpx.get(f"{server.url}/metrics").text
        health = value(text, "tastebud_http_requests_total", route="/health", status="200")
        assert health == 20
    finally:
        logs = server.stop()
    assert server.process.returncode == 0, logs
    assert not folders[0].exists()  # removed when the server stopped
