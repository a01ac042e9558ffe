"""``POST .../events`` answers the same through the fast path as through the FastAPI route.

The fast path serves requests whose token was verified within the cache delay; forgetting the
verifier's cache before a request sends it down the regular route instead.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tastebud.api.app import create_app
from tastebud.api.auth import TokenVerifier
from tastebud.api.routes.events import EventsFastPath
from tastebud.ingest import PutEventsRequest
from tastebud.settings import ApiSettings

from ..conftest import Api, TestClient

JSON = {"Content-Type": "application/json"}


def verifier(api: Api) -> TokenVerifier:
    found = api.http.app.state.verifier  # type: ignore[attr-defined]
    assert isinstance(found, TokenVerifier)
    return found


def post(api: Api, content: bytes, *, fast: bool, headers: dict[str, str] | None = None,
         group: str | None = None) -> httpx.Response:  # fmt: skip
    if fast:  # a first request through the route puts the token in the cache
        api.http.post(api.url("/events"), content=b"{}", headers={**api.ingest, **JSON})
    else:
        verifier(api).forget()
    response: httpx.Response = api.http.post(
        api.url("/events", group=group), content=content,
        headers={**api.ingest, **JSON, **(headers or {})},
    )  # fmt: skip
    return response


def body(*events: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"userId": "u1", **top, "eventList": list(events)}).encode()


@pytest.fixture
def submitted(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batches the fast path parsed (the route parses through FastAPI instead)."""
    sizes: list[int] = []
    original = PutEventsRequest.from_json

    def spy(body: bytes) -> PutEventsRequest:
        request = original(body)
        sizes.append(len(request.event_list))
        return request

    monkeypatch.setattr(PutEventsRequest, "from_json", staticmethod(spy))
    return sizes


def test_valid_events_take_the_fast_path(api: Api, submitted: list[int]) -> None:
    slow = post(api, body({"itemId": "i1", "eventId": "e1"}), fast=False)
    assert submitted == []
    fast = post(api, body({"itemId": "i1", "eventId": "e2"}, {"itemId": "i2"}), fast=True)
    assert submitted == [2]
    assert slow.status_code == fast.status_code == 200
    assert slow.json() == {"accepted": 1, "duplicates": 0}
    assert fast.json() == {"accepted": 2, "duplicates": 0}
    assert slow.headers["content-type"] == fast.headers["content-type"] == "application/json"
    again = post(api, body({"itemId": "i1", "eventId": "e1"}, {"itemId": "i3"}), fast=True)
    assert again.json() == {"accepted": 1, "duplicates": 1}
    assert sorted(e["itemId"] for e in api.events("u1")) == ["i1", "i1", "i2", "i3"]


FAILURES: dict[str, tuple[bytes, dict[str, str]]] = {
    "malformed JSON": (b'{"userId": "u1", "eventList": [', {}),
    "missing field": (body({"itemId": "a"}, {"eventType": "x"}), {}),
    "unknown field": (body({"itemId": "a", "surprise": 1}), {}),
    "bad value": (body({"itemId": "a", "eventValue": "lots"}), {}),
    "no events": (body(), {}),
    "not an object": (b"[1, 2]", {}),
    "bad timestamp": (body({"itemId": "a", "sentAt": "yesterday"}), {}),
    "undeclared property": (body({"itemId": "a", "properties": {"DEVICE": "tv"}}), {}),
    "neither user nor session": (body({"itemId": "a"}, userId=None), {}),
    "too many events": (body(*[{"itemId": f"i{n}"} for n in range(1001)]), {}),
    "text content type": (body({"itemId": "a"}), {"Content-Type": "text/plain"}),
}


@pytest.mark.parametrize("case", FAILURES)
def test_failures_answer_exactly_as_the_route_does(api: Api, case: str) -> None:
    content, headers = FAILURES[case]
    slow = post(api, content, fast=False, headers=headers)
    fast = post(api, content, fast=True, headers=headers)
    assert slow.status_code >= 400, slow.text
    assert (fast.status_code, fast.json()) == (slow.status_code, slow.json())
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert api.counts()["interactions"] == 0


def test_unknown_group_answers_as_the_route_does(api: Api) -> None:
    content = body({"itemId": "a"})
    slow = post(api, content, fast=False, group="no-such-group")
    fast = post(api, content, fast=True, group="no-such-group")
    assert slow.status_code == fast.status_code == 404
    assert fast.json() == slow.json()


def test_a_revoked_token_is_refused_at_once(api: Api) -> None:
    assert post(api, body({"itemId": "a"}), fast=True).status_code == 200
    name = f"{api.group}-ingest"
    assert api.http.delete(f"/v1/tokens/{name}", headers=api.admin).status_code == 204
    response = api.http.post(api.url("/events"), content=body({"itemId": "b"}),
                             headers={**api.ingest, **JSON})  # fmt: skip
    assert response.status_code == 401
    assert api.counts()["interactions"] == 1


def test_other_methods_and_paths_are_not_taken(api: Api) -> None:
    post(api, b"{}", fast=True)
    assert api.http.get(api.url("/events"), headers=api.ingest).status_code == 405
    trailing = api.http.post(api.url("/events/"), content=body({"itemId": "a"}),
                             headers={**api.ingest, **JSON}, follow_redirects=False)  # fmt: skip
    assert trailing.status_code == 307  # Starlette's redirect to the route, as before


def test_a_client_leaving_mid_body_gets_no_answer(api: Api) -> None:
    post(api, b"{}", fast=True)  # the token is cached
    state = api.http.app.state  # type: ignore[attr-defined]
    app = EventsFastPath(lambda *_: pytest.fail("handed on to the route"), state=state)
    headers = [(b"authorization", api.ingest["Authorization"].encode()),
               (b"content-type", b"application/json")]  # fmt: skip
    scope = {"type": "http", "method": "POST", "root_path": "", "headers": headers,
             "path": f"/v1/dataset-groups/{api.group}/events"}  # fmt: skip
    messages = iter([{"type": "http.request", "body": b'{"user', "more_body": True},
                     {"type": "http.disconnect"}])  # fmt: skip
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent == []


def test_body_limits_hold_on_the_fast_path(api: Api) -> None:
    limits = ApiSettings(max_body_bytes=2_000)
    app = create_app(api.engine.settings.model_copy(update={"api": limits}), engine=api.engine)
    content = body(*[{"itemId": f"item-{n:05d}"} for n in range(100)])
    assert len(content) > 2_000
    with TestClient(app) as http:
        headers = {**api.ingest, **JSON}
        warm = http.post(api.url("/events"), content=body({"itemId": "a"}), headers=headers)
        assert warm.status_code == 200  # the token is cached from here on
        declared = http.post(api.url("/events"), content=content, headers=headers)
        chunks = [content[i : i + 500] for i in range(0, len(content), 500)]
        streamed = http.post(api.url("/events"), content=iter(chunks), headers=headers)
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["error"]["type"] == "PayloadTooLarge"
    assert api.counts()["interactions"] == 1
