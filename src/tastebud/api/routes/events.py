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
from collections.abc import Awaitable

import orjson
import pydantic
from fastapi import APIRouter, Depends
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from tastebud.api.admission import AdmissionGate, Answer, Headers
from tastebud.api.asgi import JSON_HEADERS, post_path, read_body, read_header_list, replay
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

    ``tastebud serve``'s HTTP protocol also hands it such requests before they become ASGI
    calls (:meth:`take`, see ``api/admission.py``).

    Args:
        app: the wrapped ASGI app (FastAPI's router and error handlers, further in).
        state: the FastAPI app's state, where its lifespan puts the engine and token verifier.
        gate: where the server's protocol finds it.
    """

    def __init__(self, app: ASGIApp, *, state: State, gate: AdmissionGate | None = None) -> None:
        self.app = app
        self.state = state
        if gate is not None:
            gate.events = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        group = _events_group(scope)
        engine = self._engine(scope["headers"]) if group is not None else None
        if group is None or engine is None:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:  # the client left: nobody to answer
            return
        try:
            request = PutEventsRequest.from_json(body)
        except pydantic.ValidationError:
            # The route words the error as the API always has (rare, so parsing twice is fine).
            await self.app(scope, replay(body, receive), send)
            return
        status, headers, answer = await _put_events(engine, group, request)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    def take(self, path: str, headers: Headers, body: bytes) -> Awaitable[Answer] | None:
        """The answer to ``POST path`` with ``body`` once its events are committed, for the
        server's protocol to send; None when the app must serve it (not this route, a token not
        verified yet, a body that does not validate)."""
        match = _EVENTS_PATH.fullmatch(path)
        engine = self._engine(headers) if match is not None else None
        if match is None or engine is None:
            return None
        try:
            request = PutEventsRequest.from_json(body)
        except pydantic.ValidationError:
            return None
        return _put_events(engine, match.group(1), request)

    def _engine(self, headers: Headers) -> Engine | None:
        """The engine, when this request is one to serve here: a started engine, a token
        verified within the cache delay (any token may write events, as ``require_token`` on
        the route) and a JSON body."""
        engine: Engine | None = getattr(self.state, "engine", None)
        verifier: TokenVerifier | None = getattr(self.state, "verifier", None)
        if engine is None or verifier is None:
            return None
        authorization, json_body = read_header_list(headers)
        if not json_body or verifier.cached(authorization) is None:
            return None
        return engine


async def _put_events(engine: Engine, group: str, request: PutEventsRequest) -> Answer:
    """Commit the events; the answer's status, headers and body (an error as the API words it:
    invalid for the schema, too many events, unknown group)."""
    try:
        result = await engine.put_events_async(group, request)
    except TastebudError as exc:
        response = tastebud_error_response(exc)
        return response.status_code, response.raw_headers, bytes(response.body)
    answer: PutEventsOut = {"accepted": result.accepted, "duplicates": result.duplicates}
    body = orjson.dumps(answer)
    return 200, [*JSON_HEADERS, (b"content-length", b"%d" % len(body))], body


def _events_group(scope: Scope) -> str | None:
    """The group of a ``POST /v1/dataset-groups/{group}/events`` request; None for others."""
    path = post_path(scope)
    match = _EVENTS_PATH.fullmatch(path) if path is not None else None
    return match.group(1) if match else None
