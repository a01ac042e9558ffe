"""The dependencies routes ask for, declared once: engine, settings, token, admin token.

All are ``async def`` and do no blocking work on the common path, so FastAPI runs them on the
event loop instead of a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tastebud.api.auth import TokenVerifier
from tastebud.engine import Engine
from tastebud.errors import Forbidden
from tastebud.settings import Settings
from tastebud.store import TokenRecord

_bearer = HTTPBearer(auto_error=False, description="A token made with `tastebud token create`.")


async def get_engine(request: Request) -> Engine:
    engine = request.app.state.engine
    assert isinstance(engine, Engine), "the app's lifespan has not started"
    return engine


async def get_settings(request: Request) -> Settings:
    settings = request.app.state.settings
    assert isinstance(settings, Settings)
    return settings


async def get_verifier(request: Request) -> TokenVerifier:
    verifier = request.app.state.verifier
    assert isinstance(verifier, TokenVerifier), "the app's lifespan has not started"
    return verifier


EngineDep = Annotated[Engine, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
VerifierDep = Annotated[TokenVerifier, Depends(get_verifier)]


async def require_token(
    request: Request,
    verifier: VerifierDep,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],  # documents the scheme
) -> TokenRecord:
    """The caller's token record; 401 when the token is missing or unknown."""
    return await verifier.check(request.headers.get("Authorization"))


TokenDep = Annotated[TokenRecord, Depends(require_token)]


async def require_admin(token: TokenDep) -> TokenRecord:
    """The caller's token record when it has the admin scope; 403 otherwise."""
    if token.scope != "admin":
        raise Forbidden(f"token {token.name!r} has scope {token.scope!r}; this needs 'admin'")
    return token


AdminDep = Annotated[TokenRecord, Depends(require_admin)]


READER_SCOPES = frozenset({"admin", "recommend"})


async def require_reader(token: TokenDep) -> TokenRecord:
    """Tokens that may read recommendations: admin and recommend; ingest-only may not."""
    if token.scope not in READER_SCOPES:
        raise Forbidden(
            f"token {token.name!r} has scope {token.scope!r}; reading recommendations needs "
            "'recommend' or 'admin'"
        )
    return token
