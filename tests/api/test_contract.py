"""The OpenAPI contract: every operation declares its errors and security, and real answers
(including those given before routing: 413, 429, 503, 401) conform to it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import schemathesis
from schemathesis.core.failures import FailureGroup

from tastebud.api.app import create_app
from tastebud.api.contract import error_types
from tastebud.batch.service import BatchFailed
from tastebud.errors import (
    WIRE_ERRORS,
    InternalError,
    InvalidInput,
    NotReady,
    TastebudError,
    wire_type,
)
from tastebud.jobs.scheduler import TrainingTimeout
from tastebud.observability import JsonFormatter
from tastebud.settings import ApiSettings
from tastebud.streams.nats import StreamUnavailable

from .conftest import Api, TestClient


@pytest.fixture
def backend() -> str:
    return "sqlite"  # the document and the API's answers do not depend on the store


@pytest.fixture
def document(api: Api) -> dict[str, Any]:
    openapi: dict[str, Any] = api.http.app.openapi()  # type: ignore[attr-defined]
    return openapi


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, operation)
            for path, methods in document["paths"].items()
            for method, operation in methods.items()]  # fmt: skip


def test_every_operation_declares_its_errors_with_the_error_body(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's 422 body: never what tastebud sends
    for method, path, operation in operations(document):
        errors = {int(s): r for s, r in operation["responses"].items() if int(s) >= 400}
        assert 500 in errors, (method, path)
        if path not in ("/health", "/metrics"):  # the operations middleware refuses the rest
            assert {429, 503} <= errors.keys(), (method, path)
            assert "Retry-After" in errors[503]["headers"], (method, path)
        if "{" in path:
            assert 404 in errors, (method, path)
        if "requestBody" in operation:
            assert {413, 422} <= errors.keys(), (method, path)
        for status, response in errors.items():
            content = response["content"]["application/json"]
            schema = schemas[content["schema"]["$ref"].rsplit("/", 1)[1]]
            types = schema["properties"]["error"]["properties"]["type"]["enum"]
            assert types == [cls.__name__ for cls in error_types(status)]
            assert set(content["examples"]) == set(types)


@pytest.mark.parametrize(
    ("method", "path", "scopes"),
    [
        ("POST", "/v1/dataset-groups/{group}/events", ["admin", "recommend", "ingest"]),
        ("POST", "/v1/dataset-groups/{group}/recommendations", ["admin", "recommend"]),
        ("POST", "/v1/dataset-groups/{group}/campaigns/{name}/recommendations",
         ["admin", "recommend"]),
        ("POST", "/v1/dataset-groups/{group}/users/delete", ["admin"]),
        ("GET", "/v1/tokens", ["admin"]),
        ("GET", "/metrics", ["admin"]),
        ("GET", "/v1/track/click/{token}", []),
        ("GET", "/health", []),
    ],
)  # fmt: skip
def test_security_names_the_scopes_each_operation_accepts(
    document: dict[str, Any], method: str, path: str, scopes: list[str]
) -> None:
    operation = document["paths"][path][method.lower()]
    assert operation["x-token-scopes"] == scopes
    statuses = operation["responses"].keys()
    if not scopes:
        assert "security" not in operation and "401" not in statuses
        return
    assert "401" in statuses and ("403" in statuses) == (len(scopes) < 3)
    if len(scopes) == 3:
        assert operation["security"] == [{"HTTPBearer": []}]
    else:
        assert operation["security"] == [{"HTTPBearer": [scope]} for scope in scopes]


def test_every_status_has_one_main_error_type_and_subclasses_answer_as_their_ancestor() -> None:
    statuses = {cls.status_code for cls in WIRE_ERRORS}
    assert all(error_types(status) for status in statuses)
    assert len({cls.__name__ for cls in WIRE_ERRORS}) == len(WIRE_ERRORS)
    assert wire_type(BatchFailed("x", result=None)) is InvalidInput  # type: ignore[arg-type]
    assert wire_type(StreamUnavailable("x")) is NotReady
    assert wire_type(TrainingTimeout("x")) is InternalError
    assert wire_type(TastebudError("x")) is InternalError


def conforms(document: dict[str, Any], method: str, path: str, response: Any) -> None:
    """``response`` (to ``method path``) has a declared status, content type and body schema."""
    operation = schemathesis.openapi.from_dict(document)[path][method]
    assert str(response.status_code) in document["paths"][path][method.lower()]["responses"]
    try:
        operation.validate_response(response)
    except FailureGroup as failures:
        raise AssertionError(f"{method} {path}: {failures}") from None


def test_answers_given_before_routing_conform(api: Api, document: dict[str, Any]) -> None:
    events = "/v1/dataset-groups/{group}/events"
    body = {"userId": "u1", "eventList": [{"itemId": "i1"}]}
    stranger = api.http.post(api.url("/events"), json=body)
    assert stranger.status_code == 401
    conforms(document, "POST", events, stranger)
    unknown = api.http.post(api.url("/events", group="nope"), json=body, headers=api.ingest)
    assert unknown.status_code == 404
    conforms(document, "POST", events, unknown)
    fast = api.http.post(api.url("/events"), json=body, headers=api.ingest)  # the fast path
    assert fast.status_code == 200
    conforms(document, "POST", events, fast)
    forbidden = api.http.get(api.url("/status"), headers=api.ingest)
    assert forbidden.status_code == 403
    conforms(document, "GET", "/v1/dataset-groups/{group}/status", forbidden)
    settings = api.engine.settings.model_copy(
        update={"api": ApiSettings(max_body_bytes=100, rate_limit_per_token=0.001)}
    )
    with TestClient(create_app(settings, engine=api.engine)) as limited:
        large = {"userId": "u1", "eventList": [{"itemId": "i" * 200}]}
        too_large = limited.post(api.url("/events"), json=large, headers=api.ingest)
        assert too_large.status_code == 413
        conforms(document, "POST", events, too_large)
        limited.post(api.url("/events"), json=body, headers=api.ingest)
        over_rate = limited.post(api.url("/events"), json=body, headers=api.ingest)
        assert over_rate.status_code == 429 and int(over_rate.headers["Retry-After"]) >= 1
        conforms(document, "POST", events, over_rate)
    # The in-flight limit's 503 (tests/api/test_operations.py provokes one) is declared too.
    assert "Overloaded" in [cls.__name__ for cls in error_types(503)]


def test_a_body_that_is_not_utf8_is_invalid_input_not_400(api: Api) -> None:
    """Regression (fuzzing): FastAPI answered such a JSON body with a bare 400."""
    response = api.http.post("/v1/dataset-groups", content=b'{"name": "\xff"}',
                             headers={**api.admin, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "InvalidInput"


def test_an_error_quoting_a_lone_surrogate_still_answers(api: Api) -> None:
    """Regression (fuzzing): a features declaration whose key is a lone surrogate escape made
    a 422 whose message quotes the key, which failed to encode: a 500, and no log line."""
    body = b'{"\\ud811x": {}}'
    response = api.http.put(api.url("/features"), content=body,
                            headers={**api.admin, "Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422
    assert "\\ud811x" in response.json()["error"]["message"]


def test_a_log_line_quoting_a_lone_surrogate_is_written() -> None:
    """Regression (fuzzing): the JSON log formatter raised on it, so the line was lost."""
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "bad %s", ("\ud811",), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "bad \ud811"


def test_a_405_allows_every_method_of_the_path(api: Api) -> None:
    """Regression (fuzzing): Starlette's 405 named only the first matching route's methods
    (campaigns split over two routers: POST, not GET)."""
    response = api.http.request("OPTIONS", api.url("/campaigns"), headers=api.admin)
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "MethodNotAllowed"
    assert response.headers["Allow"] == "GET, POST"
    item = api.http.put(api.url("/campaigns/home"), headers=api.admin)
    assert item.headers["Allow"] == "DELETE, GET, PATCH"
    literal = api.http.request("OPTIONS", api.url("/filters/validate"), headers=api.admin)
    assert literal.headers["Allow"] == "POST"  # that path, not the filter named "validate"
