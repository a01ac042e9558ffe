"""Overview: dataset groups, the group's counts, events per second now, recent jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tastebud.api.deps import EngineDep
from tastebud.console import render
from tastebud.console.session import AdminToken
from tastebud.engine import Engine

router = APIRouter(prefix="/groups/{group}")
RECENT_JOBS = 10


@router.get("/")
def overview(group: str, request: Request, engine: EngineDep, token: AdminToken) -> HTMLResponse:
    return render.page(
        request, "overview.html", token=token, group=group, active="",
        groups=engine.list_groups(), counts=engine.counts(group), **_live(request, engine, group),
    )  # fmt: skip


@router.get("/live")
def live(group: str, request: Request, engine: EngineDep, token: AdminToken) -> HTMLResponse:
    """The part of the overview that polls: events/s and the jobs' progress."""
    return render.fragment(request, "_live.html", {"group": group, **_live(request, engine, group)})


def _live(request: Request, engine: Engine, group: str) -> dict[str, Any]:
    engine.get_group(group)  # an unknown group is a 404, not an empty page
    rate = request.app.state.event_rate.per_second(engine.store, group)
    return {"events_per_second": rate, "jobs": engine.list_jobs(group)[:RECENT_JOBS]}
