"""Errors as JSON: every failure answers ``{"error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tastebud.api.auth import TokenVerifier, Unauthorized
from tastebud.errors import NotReady, TastebudError

_log = logging.getLogger(__name__)

_HTTP_TYPES = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed"}


def error_response(
    status_code: int, type_: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": type_, "message": message}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "eventList", 2, "itemId")`` -> ``body.eventList[2].itemId``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def tastebud_error_response(exc: TastebudError) -> JSONResponse:
    """The answer to a TastebudError: its status and type; ``WWW-Authenticate`` with a 401,
    ``Retry-After`` with a 503."""
    headers = None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, NotReady):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_seconds)))}
    return error_response(exc.status_code, type(exc).__name__, exc.message, headers)


async def _tastebud_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TastebudError)
    return tastebud_error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # A malformed body fails before the token is checked; strangers still only hear 401.
    verifier = getattr(request.app.state, "verifier", None)
    if isinstance(verifier, TokenVerifier) and request.url.path != "/health":
        try:
            await verifier.check(request.headers.get("Authorization"))
        except Unauthorized as unauthorized:
            return tastebud_error_response(unauthorized)
    problems: list[dict[str, Any]] = list(exc.errors())
    message = "; ".join(f"{field_path(p['loc'])}: {p['msg']}" for p in problems[:20])
    if len(problems) > 20:
        message += f"; … and {len(problems) - 20} more"
    return error_response(422, "InvalidInput", message)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = _HTTP_TYPES.get(exc.status_code, "HTTPError")
    return error_response(exc.status_code, type_, str(exc.detail), exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.error("request failed method=%s path=%s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "InternalError", "internal server error (see the server log)")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TastebudError, _tastebud_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
