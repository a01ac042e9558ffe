"""``create_app``: the FastAPI application over one engine (built here unless given)."""

from __future__ import annotations

import gc
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from tastebud import observability
from tastebud.api import contract
from tastebud.api.admission import STATE_KEY as ADMISSION_STATE_KEY
from tastebud.api.admission import AdmissionGate
from tastebud.api.auth import TokenVerifier
from tastebud.api.errors import install_error_handlers
from tastebud.api.limits import BodyLimitMiddleware
from tastebud.api.operations import OperationsMiddleware
from tastebud.api.routes import (
    batch_jobs,
    campaigns,
    embeddings,
    events,
    experiments,
    exports,
    features,
    filters,
    groups,
    health,
    imports,
    items,
    jobs,
    messages,
    recommendations,
    reels,
    schedules,
    schemas,
    solutions,
    tokens,
    tracking,
    users,
)
from tastebud.api.shutdown import DrainOnSignal
from tastebud.console import PREFIX as CONSOLE_PREFIX
from tastebud.console import UPLOAD_PATH as CONSOLE_UPLOAD_PATH
from tastebud.console import create_console
from tastebud.engine import Engine
from tastebud.settings import Settings

UPLOAD_PATH = re.compile(r"/v1/dataset-groups/[^/]+/import-jobs/upload")
# The hot path first: a request is matched against the routers in this order.
ROUTERS = (
    events, items, users, campaigns, recommendations, health, groups, schemas, imports, exports,
    batch_jobs, tokens, solutions, filters, jobs, schedules,
    messages, tracking, reels, experiments, features, embeddings,
)  # fmt: skip


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
) -> FastAPI:
    """The HTTP API.

    Args:
        settings: the API section sets the body limits, overload limits and logging; ``home``
            holds uploads and exports.
        engine: an engine the caller owns (and closes); by default the app builds one when it
            starts and closes it when it stops.
    """

    # Filled by the middlewares; the server's protocol finds it in the lifespan state.
    gate = AdmissionGate()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, AdmissionGate]]:
        app.state.draining = False
        if engine is not None:
            yield {ADMISSION_STATE_KEY: gate}
            return
        owned = await run_in_threadpool(Engine, settings)
        _attach(app, owned)
        if settings.schedules.run_in_serve:  # stopped by owned.close(), after the drain
            owned.scheduler.start()
            owned.features.start()  # follows groups with features; batch runs when due
        _spare_the_collector()
        _one_thread_per_request()
        # A server process: /ready turns 503 on SIGTERM, before uvicorn stops accepting.
        drain = DrainOnSignal(app.state, settings.api.shutdown_delay_seconds)
        try:
            yield {ADMISSION_STATE_KEY: gate}
        finally:
            drain.restore()
            gc.unfreeze()
            # After uvicorn's drain: what the tracker accepted is committed before it stops.
            await run_in_threadpool(owned.close)
            observability.process_stopped()

    app = FastAPI(
        title="tastebud",
        summary="Self-hosted personalization engine.",
        version=health.package_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    if engine is not None:
        _attach(app, engine)
    install_error_handlers(app)
    # Added first, so it runs inside the body limit (the last added middleware is outermost).
    app.add_middleware(events.EventsFastPath, state=app.state, gate=gate)
    app.add_middleware(
        campaigns.CampaignFastPath,
        state=app.state,
        threads=settings.api.answer_threads,
        max_waiting=settings.api.max_waiting_answers,
        gate=gate,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.api.max_body_bytes,
        overrides=[
            (path, settings.api.max_upload_bytes) for path in (UPLOAD_PATH, CONSOLE_UPLOAD_PATH)
        ],
    )
    # Outermost (added last): counts, times and logs every answer, and refuses before any work.
    app.add_middleware(
        OperationsMiddleware,
        max_inflight=settings.api.max_inflight_requests,
        shed_lag=settings.api.shed_lag_ms / 1000 if settings.api.shed_lag_ms else None,
        rate_limit=settings.api.rate_limit_per_token,
        rate_burst=settings.api.rate_limit_burst,
        redis_url=settings.redis_url,
        access_log=settings.api.access_log,
        gate=gate,
    )
    for module in ROUTERS:
        app.include_router(module.router)
    contract.install(app)  # every operation's errors and security, in the OpenAPI document
    app.mount(CONSOLE_PREFIX, create_console(app.state))  # the web console (docs/console.md)
    return app


def _one_thread_per_request() -> None:
    """Single-threaded BLAS/OpenMP in a server process: requests already run in parallel, and
    each spawning its own BLAS threads on two cores made them wait on one another (training
    jobs set their own limits).

    The interpreter's switch interval stays at its default (5 ms): 1 ms cost ingestion a quarter
    of its throughput (the event loop and the events writer thread handing the interpreter to
    each other), measured with ``./dev bench ingest_http``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


def _spare_the_collector() -> None:
    """Exempt everything alive once the server has started from cyclic garbage collection.

    Modules, schemas, routes and the engine (~100k objects) live as long as the process; every
    full collection walked them all again: 60+ ms pauses, the ingestion p99, and a large share
    of the event loop's CPU under load. Frozen objects are still freed by reference counting.
    Only for an app that owns its engine (``tastebud serve``), until it stops: one embedded in
    another program leaves that program's collector alone.
    """
    gc.collect()
    gc.freeze()


def _attach(app: FastAPI, engine: Engine) -> None:
    app.state.engine = engine
    app.state.verifier = TokenVerifier(engine)
