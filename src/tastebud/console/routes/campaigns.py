"""Campaigns: deployments, switching the version and rolling back, the answer cache's hit rate
and the answers' latency (from ``/metrics``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tastebud.api.deps import EngineDep
from tastebud.api.routes.campaigns import campaign_out
from tastebud.console import metrics, render
from tastebud.console.service import paginate
from tastebud.console.session import AdminToken, Form
from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.serving.campaigns import LATEST

router = APIRouter(prefix="/groups/{group}/campaigns")


@router.get("")
def campaigns(group: str, request: Request, engine: EngineDep, token: AdminToken,
              page: str | None = None) -> HTMLResponse:  # fmt: skip
    samples = metrics.read()
    hit_rate, lookups = metrics.cache_hit_rate(samples)
    return render.page(
        request, "campaigns.html", token=token, group=group, active="campaigns",
        hit_rate=hit_rate, lookups=lookups,
        latencies=metrics.latencies(samples, route_contains="/campaigns/{name}/"),
        **_deployments(engine, group, page),
    )  # fmt: skip


@router.post("/{name}/deploy")
def deploy(group: str, name: str, request: Request, engine: EngineDep, token: AdminToken,
           form: Form) -> HTMLResponse:  # fmt: skip
    """Deploy another version (or ``latest``), as ``PATCH …/campaigns/{name}`` does."""
    version = form.get("version", "").strip()
    if not version:
        raise InvalidInput(f"version: pick a version of the campaign's solution or {LATEST!r}")
    engine.update_campaign(group, name, version=version)
    return _table(request, engine, group, f"{name} now deploys {version}")


@router.post("/{name}/rollback")
def rollback(group: str, name: str, request: Request, engine: EngineDep,
             token: AdminToken) -> HTMLResponse:  # fmt: skip
    """Back to the previous deployment, as ``POST …/campaigns/{name}/rollback`` does."""
    record = engine.rollback_campaign(group, name)
    return _table(request, engine, group, f"{name} rolled back to {record.deployed}")


def _table(request: Request, engine: Engine, group: str, done: str) -> HTMLResponse:
    context = {"group": group, "done": done, **_deployments(engine, group, None)}
    return render.fragment(request, "_campaigns.html", context)


def _deployments(engine: Engine, group: str, page: str | None) -> dict[str, Any]:
    engine.get_group(group)
    listed = paginate(engine.list_campaigns(group), page)
    shown = [campaign_out(engine, group, c.name) for c in listed.rows]
    choices = {
        c["solution"]: [v.id for v in engine.list_solution_versions(group, c["solution"])
                        if v.status == "active"]
        for c in shown
    }  # fmt: skip
    return {"campaigns": listed, "shown": shown, "choices": choices}
