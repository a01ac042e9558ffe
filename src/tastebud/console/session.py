"""Sign-in: the API token kept in an HttpOnly session cookie and checked like a bearer token.

The cookie holds the token itself, not a signed copy of it: the server looks it up on every
request through the API's :class:`~tastebud.api.auth.TokenVerifier`, so a tampered cookie is
just an unknown token, a revoked token stops working as it does over HTTP, and several workers
or hosts need no shared signing key. It lives for the browser session (no expiry), is never
readable by scripts (HttpOnly) and is only sent by the console's own pages (SameSite=Strict,
path ``/console``); forms are refused when their ``Origin`` is another site.

Scopes are the API's: a page shows only what the API would show the same token (admin pages
need ``admin``; *Try it* reads answers and sends events, so ``recommend`` may use it).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request

from tastebud.api import deps
from tastebud.errors import Forbidden, Unauthorized
from tastebud.store import TokenRecord

COOKIE = "tastebud_console"
PREFIX = "/console"


class SignInNeeded(Unauthorized):
    """No console session, or its token is unknown or revoked: the sign-in page answers."""


async def signed_in(request: Request) -> TokenRecord:
    """The record of the session's token.

    Raises:
        SignInNeeded: no session cookie, or a token the server does not know (any more).
    """
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded("sign in with an API token")
    verifier = await deps.get_verifier(request)
    record = await verifier.verify(token)
    if record is None:
        raise SignInNeeded("the token of this session is unknown or was revoked; sign in again")
    return record


SignedIn = Annotated[TokenRecord, Depends(signed_in)]


async def reader(token: SignedIn) -> TokenRecord:
    """A token that may read answers and send events (the API's rule and message)."""
    return await deps.require_reader(token)


async def admin(token: SignedIn) -> TokenRecord:
    """An admin token (the API's rule and message)."""
    return await deps.require_admin(token)


ReaderToken = Annotated[TokenRecord, Depends(reader)]
AdminToken = Annotated[TokenRecord, Depends(admin)]


async def same_origin(request: Request) -> None:
    """Refuse a form sent from another site's page (the cookie is SameSite=Strict already; old
    browsers ignore that)."""
    if request.method in ("GET", "HEAD"):
        return
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Forbidden(f"Origin {origin!r}: console forms are accepted from the console only")


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form (htmx and plain forms send this; the last value of a
    repeated field wins)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


Form = Annotated[dict[str, str], Depends(form_fields)]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console path only (never another site)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//"):
        return target
    return PREFIX + "/"
