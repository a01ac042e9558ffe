"""Sign in with an API token, sign out, and the console's front door."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from tastebud.api import deps
from tastebud.console import render
from tastebud.console.session import COOKIE, PREFIX, Form, SignedIn, safe_next

router = APIRouter()


@router.get("/")
def front(request: Request, token: SignedIn) -> RedirectResponse:
    """The default group's overview (Try it for a recommend token)."""
    group = request.app.state.settings.default_group
    slug = "" if token.scope == "admin" else "try"
    return RedirectResponse(f"{PREFIX}/groups/{group}/{slug}", status_code=303)


@router.get("/signin")
def signin_page(
    request: Request, next_: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    return render.templates.TemplateResponse(
        request, "signin.html", {"next": safe_next(next_), "message": None}
    )


@router.post("/signin")
async def signin(request: Request, form: Form) -> Response:
    """Keep the token in the session cookie when the server knows it; else say why not."""
    token, target = form.get("token", "").strip(), safe_next(form.get("next"))
    verifier = await deps.get_verifier(request)
    record = await verifier.verify(token) if token else None
    if record is None:
        message = "unknown or revoked token" if token else "paste an API token"
        return render.templates.TemplateResponse(
            request, "signin.html", {"next": target, "message": message}, status_code=401
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse(f"{PREFIX}/signin", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
