"""Tracking links (public by design, like the mail they are in): the open pixel, the click
redirect and unsubscribe. Only a valid signed token is accepted; any other gets 404, never a
500, and nothing is written.

Unsubscribing needs a POST (the page a GET shows, or a mail client's RFC 8058 one-click
POST): link scanners follow GETs, and must not unsubscribe anyone.
"""

from __future__ import annotations

import base64
import html

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from tastebud.api.deps import EngineDep
from tastebud.errors import InvalidInput

router = APIRouter(prefix="/v1/track", tags=["tracking"])
_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
_NO_STORE = {"Cache-Control": "no-store, private"}


def _headers(request: Request) -> dict[str, str]:
    return {name.lower(): value for name, value in request.headers.items()}


@router.get(
    "/open/{token}.gif",
    response_class=Response,
    responses={200: {"content": {"image/gif": {}}, "description": "A 1x1 transparent GIF."}},
)
def open_pixel(token: str, request: Request, engine: EngineDep) -> Response:
    engine.messaging.track(token, "open", _headers(request))
    return Response(_PIXEL, media_type="image/gif", headers=_NO_STORE)


@router.get(
    "/click/{token}",
    response_class=RedirectResponse,
    status_code=302,
    responses={302: {"description": "To the link's address (`Location`)."}},
)
def click(token: str, request: Request, engine: EngineDep) -> RedirectResponse:
    tracked = engine.messaging.signer.read(token)
    if not tracked.url or not tracked.url.startswith(("https://", "http://")):
        raise InvalidInput("tracking token: not a link")  # signed, so only a bug gets here
    engine.messaging.track(token, "click", _headers(request))
    return RedirectResponse(tracked.url, status_code=302, headers=_NO_STORE)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, engine: EngineDep) -> HTMLResponse:
    engine.messaging.signer.read(token)  # 404 for a bad link, before showing anything
    action = html.escape(token)
    return HTMLResponse(
        "<!doctype html><title>Unsubscribe</title>"
        f'<form method="post" action="{action}"><p>Stop these messages?</p>'
        '<button type="submit">Unsubscribe</button></form>',
        headers=_NO_STORE,
    )


@router.post("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, engine: EngineDep) -> HTMLResponse:
    engine.messaging.track(token, "unsubscribe", {})
    return HTMLResponse("<!doctype html><title>Unsubscribed</title><p>You are unsubscribed.</p>")
