"""Request body size limit, as pure ASGI middleware (nothing is buffered to check it).

A declared ``Content-Length`` over the limit is answered 413 before the app runs (one within it
passes untouched: the server delivers no more than it declares). A body without one (chunked) is
counted as it streams in; the first chunk past the limit stops the app, and the client gets 413
instead of whatever the interrupted app would have answered.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    """Raised into the app from ``receive`` once the streamed body passes the limit."""


class BodyLimitMiddleware:
    """Answer 413 JSON to bodies larger than ``max_bytes``.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the limit for every path not matched by ``overrides``.
        overrides: ``(path pattern, limit)`` pairs, e.g. a larger cap for file uploads.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        overrides: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = tuple(overrides)

    def limit_for(self, path: str) -> int:
        for pattern, limit in self.overrides:
            if pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None:
            # The server delimits the body by its Content-Length: no byte past it reaches the
            # app, so a body declared within the limit needs no counting (the common case).
            if declared > limit:
                await _send_413(send, declared, limit)
            else:
                await self.app(scope, receive, send)
            return

        received = 0
        exceeded = started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to the interruption; the 413 below replaces it
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await _send_413(send, received, limit, streamed=True)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, size: int, limit: int, *, streamed: bool = False) -> None:
    size_text = f"more than {limit:,}" if streamed else f"{size:,}"
    body = orjson.dumps(
        {
            "error": {
                "type": "PayloadTooLarge",
                "message": f"request body: {size_text} bytes, at most {limit:,} allowed",
            }
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
