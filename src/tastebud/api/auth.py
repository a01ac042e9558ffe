"""Bearer tokens: verified against the store, remembered for a moment so the hot path skips it."""

from __future__ import annotations

import time

from starlette.concurrency import run_in_threadpool

from tastebud.engine import Engine
from tastebud.errors import StoreUnavailable, Unauthorized
from tastebud.store import TokenRecord

# A token revoked through another API process stops working within this delay; one revoked
# through this process stops at once (see `forget`).
TOKEN_CACHE_SECONDS = 5.0
_MAX_CACHED = 10_000


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
        token = bearer_token(authorization)
        if token is None:
            raise Unauthorized("Authorization: send 'Bearer <token>'")
        record = await self.verify(token)
        if record is None:
            raise Unauthorized("Authorization: unknown or revoked token")
        return record

    def cached(self, authorization: str | None) -> TokenRecord | None:
        """The header's token record if it was verified within ``ttl``; None otherwise.

        No I/O and no await: the ingestion fast path calls it for every request and leaves
        everything else (a first sight, an unknown token, a malformed header) to :meth:`check`.
        """
        token = bearer_token(authorization)
        return None if token is None else self._fresh(token)

    async def verify(self, token: str) -> TokenRecord | None:
        record = self._fresh(token)
        if record is not None:
            return record
        now = time.monotonic()
        try:
            record = await run_in_threadpool(self._engine.authenticate, token)
        except StoreUnavailable:
            # A token verified before the outage stays valid through it (no revocation can
            # be stored meanwhile either); others wait for the store (503).
            cached = self._valid.get(token)
            if cached is None:
                raise
            return cached[1]
        if record is None:
            self._valid.pop(token, None)
            return None
        if len(self._valid) >= _MAX_CACHED:
            self._valid.clear()
        self._valid[token] = (now, record)
        return record

    def _fresh(self, token: str) -> TokenRecord | None:
        cached = self._valid.get(token)
        if cached is not None and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        return None

    def forget(self) -> None:
        """Drop every cached token (after a revocation)."""
        self._valid.clear()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when it is not one."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
