"""``create_console``: the web console, an app of its own mounted by the API at ``/console``.

It shares the API app's state (engine, token verifier, settings), so its pages call the same
services as the API's routes; its errors are pages (or htmx fragments) carrying the API's
message, never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import State
from starlette.exceptions import HTTPException

from tastebud.api.errors import field_path
from tastebud.console import render
from tastebud.console.rate import EventRate
from tastebud.console.routes import (
    campaigns,
    data,
    experiments,
    filters,
    messages,
    overview,
    reels,
    signin,
    solutions,
    try_it,
)
from tastebud.console.session import PREFIX, SignInNeeded, same_origin
from tastebud.errors import TastebudError

_log = logging.getLogger(__name__)
ROUTERS = (signin, overview, data, solutions, try_it, filters, campaigns, experiments, messages,
           reels)  # fmt: skip


def create_console(state: State) -> FastAPI:
    """The console over the API app's ``state`` (engine, verifier, settings)."""
    console = FastAPI(
        title="tastebud console", docs_url=None, redoc_url=None, openapi_url=None,
        dependencies=[Depends(same_origin)],
    )  # fmt: skip
    console.state = state
    state.event_rate = EventRate()
    console.mount("/static", StaticFiles(directory=render.HERE / "static"), name="static")
    for module in ROUTERS:
        console.include_router(module.router)
    console.add_exception_handler(SignInNeeded, _sign_in)
    console.add_exception_handler(TastebudError, _tastebud_error)
    console.add_exception_handler(RequestValidationError, _validation_error)
    console.add_exception_handler(HTTPException, _http_error)
    console.middleware("http")(_unexpected_error)
    return console


async def _sign_in(request: Request, exc: Exception) -> Response:
    back = request.url.path if request.method == "GET" else request.headers.get("hx-current-url")
    target = f"{PREFIX}/signin?next={quote(urlsplit(back or PREFIX).path, safe='/')}"
    if request.headers.get("hx-request"):  # htmx follows this header, not a 303
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _tastebud_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TastebudError)
    return render.error(request, exc.status_code, type(exc).__name__, exc.message)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(f"{field_path(p['loc'])}: {p['msg']}" for p in exc.errors()[:5])
    return render.error(request, 422, "InvalidInput", message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such console page" if exc.status_code == 404 else str(exc.detail)
    return render.error(request, exc.status_code, "HTTPError", message)


async def _unexpected_error(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Anything else: logged with its traceback, shown as the API words it (no trace)."""
    try:
        return await call_next(request)
    except Exception:
        _log.exception("console request failed method=%s path=%s", request.method,
                       request.url.path)  # fmt: skip
        return render.error(
            request, 500, "InternalError", "internal server error (see the server log)"
        )
