"""``POST .../events``: the real-time hot path. Validated here, group-committed by the engine.

The route runs on the event loop (no worker thread) and awaits the commit, so an answered event
is durable; concurrent requests share one transaction.

Two ways in, one behaviour. :class:`EventsFastPath` (pure ASGI, installed by ``create_app``)
answers the common request — a token verified within the cache delay, a JSON body that
validates — without FastAPI's per-request machinery (dependency solving, stdlib JSON parsing,
response-model serialization: about three quarters of a request's CPU). Everything else (a first
or unknown token, a body that fails validation, another content type) goes on to the FastAPI
route below, which answers exactly as it always has, and which the OpenAPI document describes.
"""

from __future__ import annotations

import re

import orjson
import pydantic
from fastapi import APIRouter, Depends
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tastebud.api.auth import TokenVerifier
from tastebud.api.deps import EngineDep, require_token
from tastebud.api.errors import error_response
from tastebud.api.models import PutEventsOut
from tastebud.engine import Engine
from tastebud.errors import TastebudError
from tastebud.ingest import PutEventsRequest

router = APIRouter(
    prefix="/v1/dataset-groups/{group}", tags=["events"], dependencies=[Depends(require_token)]
)


@router.post("/events")
async def put_events(group: str, body: PutEventsRequest, engine: EngineDep) -> PutEventsOut:
    result = await engine.put_events_async(group, body)
    return {"accepted": result.accepted, "duplicates": result.duplicates}


# The route's path as Starlette matches it (a path parameter is one segment).
_EVENTS_PATH = re.compile(r"/v1/dataset-groups/([^/]+)/events")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class EventsFastPath:
    """Pure ASGI middleware serving ``POST .../events`` when it can, else the wrapped app.

    Args:
        app: the wrapped ASGI app (FastAPI's router and error handlers, further in).
        state: the FastAPI app's state, where its lifespan puts the engine and token verifier.
    """

    def __init__(self, app: ASGIApp, *, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        group = _events_group(scope)
        engine: Engine | None = getattr(self.state, "engine", None)
        verifier: TokenVerifier | None = getattr(self.state, "verifier", None)
        if group is None or engine is None or verifier is None:
            await self.app(scope, receive, send)
            return
        authorization, json_body = _read_headers(scope)
        # Any token may write events (as `require_token` on the route): only its validity counts.
        if not json_body or verifier.cached(authorization) is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is not None:  # else the client left: nobody to answer
            await self._put_events(engine, group, body, scope, receive, send)

    async def _put_events(
        self, engine: Engine, group: str, body: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            request = PutEventsRequest.from_json(body)
        except pydantic.ValidationError:
            # The route words the error as the API always has (rare, so parsing twice is fine).
            await self.app(scope, _replay(body, receive), send)
            return
        try:
            result = await engine.put_events_async(group, request)
        except TastebudError as exc:  # invalid for the schema, too many events, unknown group
            response = error_response(exc.status_code, type(exc).__name__, exc.message)
            await response(scope, receive, send)
            return
        await _send_json(send, {"accepted": result.accepted, "duplicates": result.duplicates})


def _events_group(scope: Scope) -> str | None:
    """The group of a ``POST /v1/dataset-groups/{group}/events`` request; None for others."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    match = _EVENTS_PATH.fullmatch(scope["path"])
    return match.group(1) if match else None


def _read_headers(scope: Scope) -> tuple[str | None, bool]:
    """The ``Authorization`` header, and whether the body is declared JSON as FastAPI reads it
    (``application/json`` or ``application/*+json``; without a content type it is not)."""
    authorization: str | None = None
    json_body = False
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            json_body = media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            )
    return authorization, json_body


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnects first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already read body over again, then listens as before."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _send_json(send: Send, content: PutEventsOut) -> None:
    body = orjson.dumps(content)
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
