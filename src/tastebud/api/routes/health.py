"""Operations endpoints: ``/health`` (liveness), ``/ready`` (readiness), ``/metrics`` (Prometheus).

``/health`` and ``/ready`` need no token (load balancers and orchestrators call them); ``/metrics``
needs an admin token unless ``api.metrics_public`` is set (a scraper on a private network).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State

from tastebud import observability
from tastebud.api.deps import SettingsDep, get_verifier, require_admin
from tastebud.api.models import HealthOut
from tastebud.engine import Engine

router = APIRouter(tags=["health"])
# A probe that waits longer than its caller's timeout tells nothing: answer "not ready" first.
CHECK_TIMEOUT_SECONDS = 2.0
# A token hash no token has: looking it up is an indexed read that touches the database.
_PROBE_HASH = "readiness-probe"
# Checks whose failure leaves the process serving, in a degraded way.
DEGRADABLE = frozenset({"store", "redis"})


@cache
def package_version() -> str:
    try:
        return version("tastebud")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


@router.get("/health")
async def health() -> HealthOut:
    return {"status": "ok", "version": package_version()}


# Not in the OpenAPI document: an orchestrator's probe, not part of the product's API.
@router.get("/ready", include_in_schema=False)
async def ready(request: Request) -> JSONResponse:
    """200 when this process can serve: started and not shutting down (else 503 naming what is
    not ready). A store or Redis that does not answer makes it ``degraded``, still 200: the
    process answers what it can without them (docs/operations.md, "Failure modes"), and an
    outage shared by every instance must not take them all out of the load balancer."""
    checks = await readiness(request.app.state)
    failing = [name for name, outcome in checks.items() if outcome != "ok"]
    not_ready = [name for name in failing if name not in DEGRADABLE]
    degraded = [name for name in failing if name in DEGRADABLE]
    status = "not ready" if not_ready else "degraded" if degraded else "ready"
    body: dict[str, Any] = {"status": status, "checks": checks}
    if not_ready:
        body["notReady"] = not_ready
    if degraded:
        body["degraded"] = degraded
    return JSONResponse(body, status_code=503 if not_ready else 200)


async def readiness(state: State) -> dict[str, str]:
    """Each check's outcome: ``"ok"`` or why not."""
    checks = {"server": "shutting down" if getattr(state, "draining", False) else "ok"}
    engine: Engine | None = getattr(state, "engine", None)
    if engine is None:
        checks["engine"] = "not started"
        return checks
    checks["engine"] = "ok"
    checks["store"] = await _check(run_in_threadpool(engine.store.find_token, _PROBE_HASH))
    redis_url = getattr(state.settings, "redis_url", None)
    if redis_url:
        checks["redis"] = await _check(_ping_redis(redis_url))
    return checks


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as exc:  # whatever the failure, the probe reports it rather than raising
        return f"{type(exc).__name__}: {exc}"
    return "ok"


async def _ping_redis(url: str) -> None:
    import redis.asyncio

    client = redis.asyncio.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS, socket_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def metrics_access(request: Request, settings: SettingsDep) -> None:
    """An admin token, unless the settings make the metrics public."""
    if settings.api.metrics_public:
        return
    verifier = await get_verifier(request)
    await require_admin(await verifier.check(request.headers.get("Authorization")))


@router.get(
    "/metrics",
    dependencies=[Depends(metrics_access)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    """Prometheus metrics of this process (of every worker under ``tastebud serve --workers``)."""
    # Off the event loop: with several workers it reads every worker's metrics files.
    body, content_type = await run_in_threadpool(observability.render)
    return Response(body, media_type=content_type)
