"""Campaigns: deploy, update, roll back and delete (admin); ask them for answers (recommend).

A campaign's answers come from its deployed version, or from the rule engine while the group has
too little data or no trained version; the response's ``source`` says which.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Response

from tastebud.api.deps import EngineDep, require_admin, require_reader
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
    request = CampaignRequest(
        user_id=body.user_id, item_id=body.item_id, k=body.num_results,
        exclude_seen=body.exclude_seen, filter_name=body.filter, filter_values=body.filter_values,
        context=body.context,
        promotions=tuple(Promotion(p.name, p.percent_promoted_items, p.filter, p.filter_values)
                         for p in body.promotions),
        explain=body.explain,
    )  # fmt: skip
    return _answer(engine.campaign_answer(group, name, request))


@readers.post("/{name}/personalized-ranking", response_model=CampaignAnswer)
def rank(group: str, name: str, body: CampaignRankIn, engine: EngineDep) -> Response:
    """``inputList`` ordered for the user (unknown items last, filtered ones dropped)."""
    request = CampaignRequest(
        user_id=body.user_id, input_list=tuple(body.input_list), filter_name=body.filter,
        filter_values=body.filter_values, context=body.context, k=len(body.input_list),
        explain=body.explain,
    )  # fmt: skip
    return _answer(engine.campaign_answer(group, name, request))


def _answer(answer: dict[str, Any]) -> Response:
    """The engine's answer as JSON bytes: built by tastebud itself, so FastAPI's validation and
    serialization of the response model (documented above) would only cost time on the hot path."""
    return Response(orjson.dumps(answer), media_type="application/json")


router = APIRouter()
router.include_router(readers)  # the hot path first
router.include_router(admin)
