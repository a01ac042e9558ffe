"""Campaigns: deploy, update, roll back and delete (admin); ask them for answers (recommend).

A campaign's answers come from its deployed version, or from the rule engine while the group has
too little data or no trained version; the response's ``source`` says which.

``POST …/recommendations`` and ``…/personalized-ranking`` also have a pure-ASGI way in
(:class:`CampaignFastPath`, see ``api/asgi.py``): a cached answer is sent from the event loop as
the bytes stored, and an answer to compute goes to a worker thread without FastAPI's routing and
dependency solving.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pydantic
from fastapi import APIRouter, Depends, Response
from fastapi.routing import APIRoute
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from tastebud import observability as obs
from tastebud.api.admission import AdmissionGate, Headers
from tastebud.api.asgi import post_path, read_body, read_header_list, replay, send_json
from tastebud.api.auth import TokenVerifier
from tastebud.api.deps import READER_SCOPES, EngineDep, require_admin, require_reader
from tastebud.api.errors import tastebud_error_response
from tastebud.api.models import (
    CampaignAnswer,
    CampaignIn,
    CampaignList,
    CampaignOut,
    CampaignRankIn,
    CampaignRecommendIn,
    CampaignUpdateIn,
)
from tastebud.engine import Engine
from tastebud.errors import Overloaded, TastebudError
from tastebud.serving.campaigns import CampaignRequest, Promotion

PREFIX = "/v1/dataset-groups/{group}/campaigns"
admin = APIRouter(prefix=PREFIX, tags=["campaigns"], dependencies=[Depends(require_admin)])
readers = APIRouter(prefix=PREFIX, tags=["campaigns"], dependencies=[Depends(require_reader)])


def campaign_out(engine: Engine, group: str, name: str) -> CampaignOut:
    described = engine.describe_campaign(group, name)
    record = described["campaign"]
    return {
        "group": record.group, "name": record.name, "solution": record.solution,
        "deployed": record.deployed, "previous": record.previous,
        "solutionVersionId": described["solution_version_id"], "source": described["source"],
        "config": dict(record.config), "createdAt": record.created_at,
        "updatedAt": record.updated_at,
    }  # fmt: skip


@admin.post("", status_code=201)
def create(group: str, body: CampaignIn, engine: EngineDep) -> CampaignOut:
    """Deploy a solution version (or ``"latest"``) behind a real-time endpoint."""
    engine.create_campaign(
        group, body.name, body.solution, version=body.solution_version_id,
        config=body.config.engine_config(), replace=body.replace,
    )  # fmt: skip
    return campaign_out(engine, group, body.name)


@admin.get("")
def list_campaigns(group: str, engine: EngineDep) -> CampaignList:
    return {"campaigns": [campaign_out(engine, group, c.name)
                          for c in engine.list_campaigns(group)]}  # fmt: skip


@admin.get("/{name}")
def get(group: str, name: str, engine: EngineDep) -> CampaignOut:
    return campaign_out(engine, group, name)


@admin.patch("/{name}")
def update(group: str, name: str, body: CampaignUpdateIn, engine: EngineDep) -> CampaignOut:
    """Deploy another version and/or change settings; in-flight and later requests never fail
    during the switch (the new version is loaded first)."""
    config = body.config.engine_config() if body.config is not None else None
    engine.update_campaign(group, name, version=body.solution_version_id, config=config)
    return campaign_out(engine, group, name)


@admin.post("/{name}/rollback")
def rollback(group: str, name: str, engine: EngineDep) -> CampaignOut:
    """Back to the previous deployment (again: forward to the one rolled back from)."""
    engine.rollback_campaign(group, name)
    return campaign_out(engine, group, name)


@admin.delete("/{name}", status_code=204)
def delete(group: str, name: str, engine: EngineDep) -> Response:
    engine.delete_campaign(group, name)
    return Response(status_code=204)


@readers.post("/{name}/recommendations", response_model=CampaignAnswer)
def recommend(group: str, name: str, body: CampaignRecommendIn, engine: EngineDep) -> Response:
    """Items for ``userId`` (or like ``itemId``), reflecting the user's latest events; a share
    may come from a promotion (``promotions``), placed at random positions."""
    return _answer(engine.campaign_answer(group, name, recommend_request(body)))


def recommend_request(body: CampaignRecommendIn) -> CampaignRequest:
    return CampaignRequest(
        user_id=body.user_id, item_id=body.item_id, k=body.num_results,
        exclude_seen=body.exclude_seen, filter_name=body.filter, filter_values=body.filter_values,
        context=body.context,
        promotions=tuple(Promotion(p.name, p.percent_promoted_items, p.filter, p.filter_values)
                         for p in body.promotions),
        explain=body.explain,
    )  # fmt: skip


@readers.post("/{name}/personalized-ranking", response_model=CampaignAnswer)
def rank(group: str, name: str, body: CampaignRankIn, engine: EngineDep) -> Response:
    """``inputList`` ordered for the user (unknown items last, filtered ones dropped)."""
    return _answer(engine.campaign_answer(group, name, rank_request(body)))


def rank_request(body: CampaignRankIn) -> CampaignRequest:
    return CampaignRequest(
        user_id=body.user_id, input_list=tuple(body.input_list), filter_name=body.filter,
        filter_values=body.filter_values, context=body.context, k=len(body.input_list),
        explain=body.explain,
    )  # fmt: skip


def _answer(answer: dict[str, Any]) -> Response:
    """The engine's answer as JSON bytes: built by tastebud itself, so FastAPI's validation and
    serialization of the response model (documented above) would only cost time on the hot path."""
    return Response(orjson.dumps(answer), media_type="application/json")


router = APIRouter()
router.include_router(readers)  # the hot path first
router.include_router(admin)

# The routes the fast path answers for (named in the scope so metrics and logs label them as
# usual), each with its body's model and how the body becomes a request.
MISSES_BEFORE_GATING = 8  # uncached answers in a row before the protocol may refuse unread
_FAST_PATH = re.compile(
    r"/v1/dataset-groups/([^/]+)/campaigns/([^/]+)/(recommendations|personalized-ranking)"
)
_FastRoute = tuple[APIRoute, type[pydantic.BaseModel], Callable[[Any], CampaignRequest]]
_FAST_ROUTES: dict[str, _FastRoute] = {
    "recommendations": (next(r for r in readers.routes
                             if isinstance(r, APIRoute) and r.endpoint is recommend),
                        CampaignRecommendIn, recommend_request),
    # 1,000 listed ids: pydantic-core parses the JSON itself, and FastAPI's routing,
    # dependencies and thread hand-off are skipped.
    "personalized-ranking": (next(r for r in readers.routes
                                  if isinstance(r, APIRoute) and r.endpoint is rank),
                             CampaignRankIn, rank_request),
}  # fmt: skip


class CampaignFastPath:
    """Pure ASGI middleware serving ``POST …/campaigns/{name}/recommendations`` and
    ``…/personalized-ranking`` when it can (a reader token verified within the cache delay, a
    JSON body that validates), else the wrapped app. A cached answer never leaves the event
    loop; any other is computed by one of ``threads`` threads (``api.answer_threads``): the rest
    wait their turn, so that answers computed at once never starve the event loop of the
    interpreter. Beyond ``max_waiting`` answers waiting for a thread, the next one is refused at
    once (503 ``Overloaded``): it would only wait its turn longer than its client does, and make
    those behind it wait too. The queue's fill counts in ``observability.inflight_share()``, so
    a campaign with precomputed answers serves them before the queue is full.

    Args:
        app: the wrapped ASGI app (FastAPI's router and error handlers, further in).
        state: the FastAPI app's state, where its lifespan puts the engine and token verifier.
        threads: answers computed at once.
        max_waiting: answers waiting for a thread at most; None: no limit.
        gate: tells the server's protocol when the queue refuses (see above).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: State,
        threads: int,
        max_waiting: int | None = None,
        gate: AdmissionGate | None = None,
    ) -> None:
        self.app = app
        self.state = state
        self.threads = threads
        self.max_waiting = max_waiting
        self._most = threads + max_waiting if max_waiting is not None else math.inf
        self._answers = 0  # computing or waiting for a thread (changed on the event loop only)
        # Answers whose thread is done but whose task has not resumed yet (added by the thread):
        # the place is free, though ``_answers`` learns it only an event-loop turn later.
        self._finished: set[object] = set()
        if max_waiting is not None:
            obs.track_inflight(self)  # precomputed campaigns fall back as the queue fills
        self._limiter: anyio.CapacityLimiter | None = None  # made in the server's event loop
        self._misses_since_hit = 0  # answers asked for that the cache did not hold
        if gate is not None:
            gate.answers = self
            gate.cached = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = post_path(scope)
        served = self._served(path, scope["headers"]) if path is not None else None
        if served is None:
            await self.app(scope, receive, send)  # the route words 401s and 403s
            return
        match, engine = served
        body = await read_body(receive)
        if body is None:  # the client left: nobody to answer
            return
        route, body_model, to_request = _FAST_ROUTES[match.group(3)]
        try:
            request = to_request(body_model.model_validate_json(body))
        except pydantic.ValidationError:
            await self.app(scope, replay(body, receive), send)
            return
        scope["route"] = route
        group, name = match.group(1), match.group(2)
        try:
            answer = engine.campaigns.cached(group, name, request)
            if answer is None:
                self._misses_since_hit += 1
                answer = await self._compute(engine, group, name, request)
            else:
                self._misses_since_hit = 0
        except TastebudError as exc:  # unknown campaign or filter, bad values, not ready …
            # (anything else propagates to the app's outermost handler: a logged 500)
            response = tastebud_error_response(exc)
            await response(scope, receive, send)
            return
        await send_json(send, answer)

    def cached_answer(self, path: str, headers: Headers, body: bytes) -> tuple[bytes, str] | None:
        """The answer the cache holds for ``POST path`` with ``body``, and its route template,
        for the server's protocol to send (``api/admission.py``); None when :meth:`__call__`
        must serve it: no cached answer, or anything it would not answer itself."""
        served = self._served(path, headers)
        if served is None:
            return None
        match, engine = served
        route, body_model, to_request = _FAST_ROUTES[match.group(3)]
        try:
            request = to_request(body_model.model_validate_json(body))
            answer = engine.campaigns.cached(match.group(1), match.group(2), request)
        except (pydantic.ValidationError, TastebudError):
            return None  # the app words the error
        if answer is None:
            return None  # a miss: counted when the app serves it
        self._misses_since_hit = 0
        return answer, route.path

    def _served(self, path: str, headers: Headers) -> tuple[re.Match[str], Engine] | None:
        """The route's match and the engine, for a request this fast path serves (an answer
        route, a started engine, a reader token verified within the cache delay, a JSON
        body); None: the app serves it."""
        match = _FAST_PATH.fullmatch(path)
        engine: Engine | None = getattr(self.state, "engine", None)
        verifier: TokenVerifier | None = getattr(self.state, "verifier", None)
        if match is None or engine is None or verifier is None:
            return None
        authorization, json_body = read_header_list(headers)
        token = verifier.cached(authorization)
        if not json_body or token is None or token.scope not in READER_SCOPES:
            return None
        return match, engine

    def inflight_share(self) -> float:
        """Answers computing or waiting over the most there may be (read from any thread)."""
        return self._answers / self._most

    def saturated(self, arriving: int = 0) -> bool:
        """The queue is full, counting ``arriving`` requests about to join it, and recent
        requests all needed computing (on the event loop)."""
        return (
            self._occupied() + arriving >= self._most
            and self._misses_since_hit >= MISSES_BEFORE_GATING
        )

    def _occupied(self) -> int:
        """Places taken in the queue: answers computing or waiting, less those just done."""
        return self._answers - len(self._finished)

    async def _compute(
        self, engine: Engine, group: str, name: str, request: CampaignRequest
    ) -> bytes:
        self._limiter = self._limiter or anyio.CapacityLimiter(self.threads)
        if self._occupied() >= self._most:
            obs.overload_rejected("answers")
            waiting = self._occupied() - self.threads
            raise Overloaded(f"server busy ({waiting} answers waiting); retry shortly")
        self._answers += 1
        marker = object()

        def answer() -> dict[str, Any]:
            try:
                return engine.campaign_answer(group, name, request)
            finally:
                self._finished.add(marker)

        try:
            computed = await anyio.to_thread.run_sync(answer, limiter=self._limiter)
        finally:
            self._answers -= 1
            self._finished.discard(marker)
        return orjson.dumps(computed)
