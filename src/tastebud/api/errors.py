"""Errors as JSON: every failure answers ``{"error": {"type": ..., "message": ...}}``."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute

from tastebud.api.auth import TokenVerifier
from tastebud.errors import (
    STATUS_TYPES,
    InternalError,
    InvalidInput,
    NotReady,
    TastebudError,
    Unauthorized,
    wire_type,
)

_log = logging.getLogger(__name__)


def error_response(
    status_code: int, type_: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    # A message quoting the input may hold a lone surrogate (a JSON "\ud800" escape), which
    # UTF-8 cannot encode: escaped, so the error still answers instead of failing with a 500.
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
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
    """The answer to ``exc``: the status and type of its API error type (:func:`wire_type`);
    ``WWW-Authenticate`` with a 401, ``Retry-After`` with a 503."""
    kind = wire_type(exc)
    headers = None
    if kind is Unauthorized:
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, NotReady):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_seconds)))}
    return error_response(kind.status_code, kind.__name__, exc.message, headers)


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
    """Starlette's own HTTP errors: no route, wrong method, a body it cannot read."""
    assert isinstance(exc, HTTPException)
    # Any other (400: a body that cannot be read) is malformed input, as the API words it.
    default = InvalidInput if exc.status_code < 500 else InternalError
    kind = STATUS_TYPES.get(exc.status_code, default)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:  # Starlette names the first route's methods; the path has more
        headers["Allow"] = ", ".join(allowed_methods(request.app.routes, request.url.path))
    return error_response(kind.status_code, kind.__name__, str(exc.detail), headers)


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every route of the app: an ``APIRoute``, or what stands for one (FastAPI 0.16x includes
    routers lazily, and reaches their routes through route contexts)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    yield from contexts(routes) if contexts is not None else routes


def allowed_methods(routes: Sequence[BaseRoute], path: str) -> list[str]:
    """The methods of the routes whose template matches ``path`` most specifically (fewest
    parameters: ``…/filters/validate`` is that path, not a filter named validate), for a 405's
    ``Allow``, as the document lists them."""
    matches: dict[int, set[str]] = {}
    for route in api_routes(routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            parameters = str(getattr(route, "path_format", "")).count("{")
            matches.setdefault(parameters, set()).update(getattr(route, "methods", None) or ())
    return sorted(matches[min(matches)]) if matches else []


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.error("request failed method=%s path=%s", request.method, request.url.path, exc_info=exc)
    return error_response(500, InternalError.__name__, "internal server error (see the server log)")


async def _unencodable(request: Request, exc: Exception) -> JSONResponse:
    """Text UTF-8 cannot encode reached the store or an answer: a lone surrogate, which
    FastAPI's JSON parser (the standard library's) lets through from a ``"\\ud800"`` escape.
    The caller's input, not a bug: 422 (the statement failed before anything was written)."""
    assert isinstance(exc, UnicodeEncodeError)
    bad = exc.object[exc.start : exc.end]
    message = f"text holds {bad!r}, a lone surrogate: UTF-8 cannot encode it (send valid text)"
    return error_response(InvalidInput.status_code, InvalidInput.__name__, message)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TastebudError, _tastebud_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(UnicodeEncodeError, _unencodable)
    app.add_exception_handler(Exception, _unexpected_error)
