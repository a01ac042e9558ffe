"""The app as a whole: authentication and scopes on every route, body limits, error format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tastebud.api.app import create_app
from tastebud.engine import Engine
from tastebud.settings import ApiSettings, Settings

from .conftest import Api, TestClient, bearer

# Routes an ingest-scoped token may call; everything else needs admin.
INGEST_ROUTES = {
    ("POST", "/v1/dataset-groups/{group}/events"),
    ("POST", "/v1/dataset-groups/{group}/items"),
    ("POST", "/v1/dataset-groups/{group}/users"),
}


@pytest.fixture
def backend() -> str:
    """Authentication and limits do not depend on the store: SQLite only."""
    return "sqlite"


def all_routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the API, read from its OpenAPI document."""
    paths = api.http.get("/openapi.json").json()["paths"]
    routes = [(method.upper(), path) for path, ops in paths.items() for method in ops]
    assert len(routes) >= 20, routes  # the walk below must not be vacuous
    return routes


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def test_health_needs_no_token(api: Api) -> None:
    response = api.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["version"], str) and body["version"]


def test_every_route_but_health_requires_a_token(api: Api) -> None:
    for method, path in all_routes(api):
        if path == "/health":
            continue
        if path.startswith("/v1/track/"):  # public tracking links: a signed token or 404
            assert api.http.request(method, concrete(path)).status_code == 404, path
            continue
        response = api.http.request(method, concrete(path))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["type"] == "Unauthorized"


@pytest.mark.parametrize(
    "authorization", ["Bearer nope", "Bearer ", "Basic dXNlcjpwYXNz", "tb_raw_token_without_scheme"]
)
def test_wrong_or_malformed_token_is_401(api: Api, authorization: str) -> None:
    response = api.http.get(api.url("/status"), headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "token" in response.json()["error"]["message"].lower()


def test_configured_admin_token_is_accepted(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api=ApiSettings(admin_token="s3cret-admin"))
    with Engine(settings) as engine, TestClient(create_app(settings, engine=engine)) as http:
        assert http.get("/v1/dataset-groups", headers=bearer("s3cret-admin")).status_code == 200
        assert http.get("/v1/dataset-groups", headers=bearer("s3cret-admi")).status_code == 401


def test_app_builds_and_closes_its_own_engine(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, api=ApiSettings(admin_token="t0ken")))
    with TestClient(app) as http:
        engine = app.state.engine
        response = http.post("/v1/dataset-groups", json={"name": "g1"}, headers=bearer("t0ken"))
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "g1"
    assert (tmp_path / "tastebud.db").is_file()  # the store lives under home
    with pytest.raises(RuntimeError, match="closed"):  # shut down with the app
        engine.tracker.put("g1", [])


def test_ingest_token_may_only_write_events_items_and_users(api: Api) -> None:
    for method, path in all_routes(api):
        if path == "/health" or (method, path) in INGEST_ROUTES or path.startswith("/v1/track/"):
            continue
        response = api.http.request(method, concrete(path), headers=api.ingest)
        assert response.status_code == 403, (method, path, response.text)
        error = response.json()["error"]
        assert error["type"] == "Forbidden"
        assert "'admin'" in error["message"]
    writes = {
        "/events": {"userId": "u1", "eventList": [{"itemId": "i1"}]},
        "/items": {"items": [{"itemId": "i1"}]},
        "/users": {"users": [{"userId": "u1"}]},
    }
    for suffix, body in writes.items():
        response = api.http.post(api.url(suffix), json=body, headers=api.ingest)
        assert response.status_code == 200, (suffix, response.text)
    assert api.counts()["interactions"] == 1


# body limits --------------------------------------------------------------------------------------
LIMIT = 2_000


@pytest.fixture
def small(api: Api) -> Iterator[Api]:
    """The same engine behind an app with a 2,000-byte body limit and a 6,000-byte upload cap."""
    limits = ApiSettings(max_body_bytes=LIMIT, max_upload_bytes=3 * LIMIT)
    settings = api.engine.settings.model_copy(update={"api": limits})
    app = create_app(settings, engine=api.engine)
    with TestClient(app) as http:
        yield Api(http, api.engine, api.group, api.admin, api.ingest)


def events_body(n: int) -> dict[str, object]:
    return {"userId": "u1", "eventList": [{"itemId": f"item-{i:05d}"} for i in range(n)]}


def assert_413(response: object) -> None:
    assert response.status_code == 413, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "PayloadTooLarge"
    assert f"at most {LIMIT:,}" in error["message"]


def test_body_over_the_limit_by_content_length_is_413(small: Api) -> None:
    import json

    body = json.dumps(events_body(100)).encode()
    assert len(body) > LIMIT
    response = small.http.post(
        small.url("/events"),
        content=body,
        headers={**small.admin, "Content-Type": "application/json"},
    )
    assert_413(response)
    assert small.counts()["interactions"] == 0


def test_body_over_the_limit_while_streaming_is_413(small: Api) -> None:
    import json

    body = json.dumps(events_body(100)).encode()
    chunks = [body[i : i + 500] for i in range(0, len(body), 500)]
    response = small.http.post(
        small.url("/events"),
        content=iter(chunks),
        headers={**small.admin, "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers  # really chunked
    assert_413(response)
    assert small.counts()["interactions"] == 0


def test_streamed_body_under_the_limit_is_accepted(small: Api) -> None:
    import json

    body = json.dumps(events_body(5)).encode()
    response = small.http.post(
        small.url("/events"),
        content=iter([body[:40], body[40:]]),
        headers={**small.admin, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 5, "duplicates": 0}


def test_uploads_have_their_own_cap(small: Api) -> None:
    rows = "".join(f"u{i},i{i},{1_700_000_000 + i}\n" for i in range(400))
    csv = ("USER_ID,ITEM_ID,TIMESTAMP\n" + rows).encode()
    url = small.url("/import-jobs/upload?dataset=interactions&filename=events.csv")
    uploads = small.engine.settings.home / "uploads"

    over_cap = small.http.post(url, content=csv, headers=small.admin)
    assert len(csv) > 3 * LIMIT
    assert over_cap.status_code == 413
    streamed = small.http.post(url, content=iter([csv[:3000], csv[3000:]]), headers=small.admin)
    assert streamed.status_code == 413
    assert not uploads.exists() or not any(uploads.iterdir())  # no partial file left behind

    under_cap = csv[: csv.index(b"\n", LIMIT + 500) + 1]  # over the body limit, under the cap
    assert LIMIT < len(under_cap) < 3 * LIMIT
    response = small.http.post(url, content=under_cap, headers=small.admin)
    assert response.status_code == 202, response.text
    job = small.wait_for_job(response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["result"]["accepted"] == under_cap.count(b"\n") - 1


# error format -------------------------------------------------------------------------------------
def test_unknown_route_answers_json_404(api: Api) -> None:
    response = api.http.get("/v1/nothing-here", headers=api.admin)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFound"


def test_validation_errors_name_the_field_path(api: Api) -> None:
    body = {"userId": "u1", "eventList": [{"itemId": "a"}, {"itemId": "b"}, {"eventType": "x"}]}
    response = api.http.post(api.url("/events"), json=body, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["error"] == {
        "type": "InvalidInput",
        "message": "body.eventList[2].itemId: Field required",
    }


def test_malformed_json_is_422_for_callers_with_a_token_only(api: Api) -> None:
    url, body = api.url("/events"), b'{"userId": "u1", "eventList": ['
    json_type = {"Content-Type": "application/json"}
    response = api.http.post(url, content=body, headers={**api.admin, **json_type})
    assert response.status_code == 422
    assert "JSON decode error" in response.json()["error"]["message"]
    stranger = api.http.post(url, content=body, headers={**bearer("nope"), **json_type})
    assert stranger.status_code == 401
    assert stranger.json()["error"]["type"] == "Unauthorized"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/recommendations", b'{"solution": "\\ud800x", "userId": "u1"}'),
        ("/users-for-item", b'{"solutionVersionId": "\\udc00", "itemId": "i1"}'),
        (
            "/messages",
            b'{"name": "m", "channel": "email", "templates": {"a": "b"}, '
            b'"segment": [{"userId": "\\ud800"}]}',
        ),
    ],
)
def test_a_lone_surrogate_in_a_body_is_a_422_not_a_500(api: Api, path: str, body: bytes) -> None:
    """FastAPI parses bodies with the standard library's JSON, which lets a "\\ud800" escape
    through; UTF-8 (the store, the answer) has no encoding for it (found by fuzz_api)."""
    headers = {**api.admin, "Content-Type": "application/json"}
    answer = api.http.post(api.url(path), content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["type"] == "InvalidInput"
    assert "surrogate" in answer.json()["error"]["message"]
