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
from starlette.types import ASGIApp, Receive, Scope, Send

from tastebud.api.asgi import post_path, read_body, read_headers, replay, send_json
from tastebud.api.auth import TokenVerifier
from tastebud.api.deps import EngineDep, require_token
from tastebud.api.errors import tastebud_error_response
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
        authorization, json_body = read_headers(scope)
        # Any token may write events (as `require_token` on the route): only its validity counts.
        if not json_body or verifier.cached(authorization) is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is not None:  # else the client left: nobody to answer
            await self._put_events(engine, group, body, scope, receive, send)

    async def _put_events(
        self, engine: Engine, group: str, body: bytes, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            request = PutEventsRequest.from_json(body)
        except pydantic.ValidationError:
            # The route words the error as the API always has (rare, so parsing twice is fine).
            await self.app(scope, replay(body, receive), send)
            return
        try:
            result = await engine.put_events_async(group, request)
        except TastebudError as exc:  # invalid for the schema, too many events, unknown group
            response = tastebud_error_response(exc)
            await response(scope, receive, send)
            return
        answer: PutEventsOut = {"accepted": result.accepted, "duplicates": result.duplicates}
        await send_json(send, orjson.dumps(answer))


def _events_group(scope: Scope) -> str | None:
    """The group of a ``POST /v1/dataset-groups/{group}/events`` request; None for others."""
    path = post_path(scope)
    match = _EVENTS_PATH.fullmatch(path) if path is not None else None
    return match.group(1) if match else None
