"""Experiments (admin): create, start, stop, show, list, delete and report A/B tests between
campaigns; ask one for an answer (recommend scope: the user's arm's campaign answers, and the
answer is logged as an exposure). Metric attributions (admin) live beside them."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tastebud.api.deps import EngineDep, require_admin, require_reader
from tastebud.api.models import CampaignRankIn, CampaignRecommendIn
from tastebud.api.routes.campaigns import rank_request, recommend_request
from tastebud.store import MetricAttributionRecord

PREFIX = "/v1/dataset-groups/{group}/experiments"
METRICS = "/v1/dataset-groups/{group}/metric-attributions"
admin = APIRouter(prefix=PREFIX, tags=["experiments"], dependencies=[Depends(require_admin)])
readers = APIRouter(prefix=PREFIX, tags=["experiments"], dependencies=[Depends(require_reader)])
metrics = APIRouter(prefix=METRICS, tags=["metric attributions"],
                    dependencies=[Depends(require_admin)])  # fmt: skip


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ArmIn(_Wire):
    name: str
    campaign: str
    weight: float = Field(description="Percent of users (steps of 0.01); the arms sum to 100.")


class ExperimentIn(_Wire):
    name: str
    arms: list[ArmIn] = Field(description="At least two; the one named control is the baseline.")
    metric: str | None = Field(default=None, description="The outcome event type (None: any).")
    attribution_window: str | int = Field(
        default="24h", description="30m, 24h, 7d … or seconds: how long after an answer an "
        "event without a recommendationId is still its outcome.",
    )  # fmt: skip


class MetricAttributionIn(_Wire):
    name: str
    event_type: str
    expression: str = Field(description="SAMPLECOUNT() or SUM(Items.FIELD) (a numerical field).")


@admin.post("", status_code=201)
def create(group: str, body: ExperimentIn, engine: EngineDep) -> dict[str, Any]:
    """A draft experiment; ``start`` it to split traffic."""
    record = engine.experiments.create(
        group, body.name, [a.model_dump() for a in body.arms], metric=body.metric,
        attribution_window=body.attribution_window,
    )  # fmt: skip
    return engine.experiments.describe(record)


@admin.get("")
def list_experiments(group: str, engine: EngineDep) -> list[dict[str, Any]]:
    return [engine.experiments.describe(r) for r in engine.experiments.list(group)]


@admin.get("/{name}")
def show(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    return engine.experiments.describe(engine.experiments.get(group, name))


@admin.post("/{name}/start")
def start(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    """draft -> running: answers are split by user and logged as exposures."""
    return engine.experiments.describe(engine.experiments.start(group, name))


@admin.post("/{name}/stop")
def stop(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    """running -> stopped: the control arm answers everyone; nothing more is logged."""
    return engine.experiments.describe(engine.experiments.stop(group, name))


@admin.delete("/{name}", status_code=204)
def delete(group: str, name: str, engine: EngineDep) -> Response:
    engine.experiments.delete(group, name)
    return Response(status_code=204)


@admin.get("/{name}/report")
def report(group: str, name: str, engine: EngineDep, cuped: bool = True) -> dict[str, Any]:
    """Per arm: users, exposures, conversions, rates, values, lifts with 95% intervals and
    p-values; the sample-ratio check; CUPED-adjusted lifts (docs/experiments.md)."""
    return engine.experiments.report(group, name, cuped=cuped)


@readers.post("/{name}/recommendations")
def recommend(group: str, name: str, body: CampaignRecommendIn, engine: EngineDep) -> Response:
    """The answer of the campaign of the user's arm (``userId`` required), with
    ``experiment``, ``arm`` and ``exposed`` added; a draft or stopped experiment answers from
    its control arm without logging."""
    answer = engine.experiments.recommend(group, name, recommend_request(body))
    return Response(orjson.dumps(answer), media_type="application/json")


@readers.post("/{name}/personalized-ranking")
def rank(group: str, name: str, body: CampaignRankIn, engine: EngineDep) -> Response:
    """``inputList`` ordered by the campaign of the user's arm (the live shows on air, say),
    with ``experiment``, ``arm`` and ``exposed`` added, logged as an exposure."""
    answer = engine.experiments.recommend(group, name, rank_request(body))
    return Response(orjson.dumps(answer), media_type="application/json")


def metric_out(record: MetricAttributionRecord) -> dict[str, Any]:
    return {"name": record.name, "eventType": record.event_type,
            "expression": record.expression, "createdAt": record.created_at}  # fmt: skip


@metrics.post("", status_code=201)
def create_metric(group: str, body: MetricAttributionIn, engine: EngineDep) -> dict[str, Any]:
    """From now on, the group's campaign answers are logged with their source."""
    return metric_out(engine.experiments.metrics.create(
        group, body.name, event_type=body.event_type, expression=body.expression))  # fmt: skip


@metrics.get("")
def list_metrics(group: str, engine: EngineDep) -> list[dict[str, Any]]:
    return [metric_out(r) for r in engine.experiments.metrics.list(group)]


@metrics.get("/{name}")
def show_metric(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    return metric_out(engine.experiments.metrics.get(group, name))


@metrics.delete("/{name}", status_code=204)
def delete_metric(group: str, name: str, engine: EngineDep) -> Response:
    engine.experiments.metrics.delete(group, name)
    return Response(status_code=204)


@metrics.get("/{name}/report")
def metric_report(group: str, name: str, engine: EngineDep) -> dict[str, Any]:
    """The metric per campaign, serving source, experiment arm and promotion."""
    return engine.experiments.metric_report(group, name)


router = APIRouter()
router.include_router(readers)
router.include_router(admin)
router.include_router(metrics)
