"""Bearer tokens: verified against the store, remembered for a moment so the hot path skips it."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from tastebud.engine import Engine
from tastebud.errors import Forbidden
from tastebud.store import TokenRecord

# A token revoked through another API process stops working within this delay; one revoked
# through this process stops at once (see `forget`).
TOKEN_CACHE_SECONDS = 5.0
_MAX_CACHED = 10_000


class Unauthorized(Forbidden):
    """No token, or one the server does not know (HTTP 401)."""

    status_code = 401


class TokenVerifier:
    """Looks tokens up with the engine and caches the valid ones for ``ttl`` seconds."""

    def __init__(self, engine: Engine, *, ttl: float = TOKEN_CACHE_SECONDS) -> None:
        self._engine = engine
        self._ttl = ttl
        self._valid: dict[str, tuple[float, TokenRecord]] = {}

    async def check(self, authorization: str | None) -> TokenRecord:
        """The record of the ``Authorization: Bearer <token>`` header's token.

        Raises:
            Unauthorized: no bearer token, or an unknown or revoked one.
        """
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization: send 'Bearer <token>'")
        record = await self.verify(token)
        if record is None:
            raise Unauthorized("Authorization: unknown or revoked token")
        return record

    async def verify(self, token: str) -> TokenRecord | None:
        cached = self._valid.get(token)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        record = await run_in_threadpool(self._engine.authenticate, token)
        if record is None:
            self._valid.pop(token, None)
            return None
        if len(self._valid) >= _MAX_CACHED:
            self._valid.clear()
        self._valid[token] = (now, record)
        return record

    def forget(self) -> None:
        """Drop every cached token (after a revocation)."""
        self._valid.clear()
