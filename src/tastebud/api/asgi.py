"""Pieces of the pure-ASGI fast paths (``EventsFastPath``, ``CampaignFastPath``).

A fast path answers the common request of a hot route without FastAPI's per-request machinery
(routing, dependency solving, stdlib JSON, response validation) and hands everything else — a
first or unknown token, a body that fails validation, any error it cannot word itself — to the
FastAPI app, whose answers and OpenAPI document stay the reference.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Message, Receive, Scope, Send

JSON_HEADERS = [(b"content-type", b"application/json")]


def read_header_list(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
    """The ``Authorization`` header, and whether the body is declared JSON as FastAPI reads it
    (``application/json`` or ``application/*+json``; without a content type it is not)."""
    authorization: str | None = None
    json_body = False
    for name, value in headers:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            json_body = media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            )
    return authorization, json_body


def post_path(scope: Scope) -> str | None:
    """The path of a plain ``POST`` (None for anything else, or behind a root path)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    return path


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body; None if the client disconnects first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already read body over again, then listens as before."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def send_json(send: Send, body: bytes, status: int = 200) -> None:
    """Answer with ``body``, JSON already encoded."""
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
