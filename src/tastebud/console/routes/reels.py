"""Reels: compose a user's personalized reel from a clip catalogue and see its cut — the
ranked titles with their screen time, the shots in order with their timecodes — and download
its edit list and OpenTimelineIO timeline (issue 16's reels service, as ``POST …/reels``).

A ``recommend`` token may use this page, as it may ask ``POST …/reels``; the list of
solutions and filters to pick from are admin reads, so only an admin sees them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep
from tastebud.console import render
from tastebud.console.service import compose_reel
from tastebud.console.session import Form, ReaderToken

router = APIRouter(prefix="/groups/{group}/reels")


@router.get("")
def reels(group: str, request: Request, engine: EngineDep, token: ReaderToken,
          user: str | None = None) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    admin = token.scope == "admin"
    solutions = [s.name for s in engine.list_solutions(group)] if admin else []
    filters = [f.name for f in engine.list_filters(group)] if admin else []
    return render.page(request, "reels.html", token=token, group=group, active="reels",
                       solutions=solutions, filters=filters, user=user)  # fmt: skip


@router.post("/compose")
async def compose(group: str, request: Request, engine: EngineDep, token: ReaderToken,
                  form: Form) -> HTMLResponse:  # fmt: skip
    view = await run_in_threadpool(compose_reel, engine, group, form)
    return render.fragment(request, "_reel.html", {"reel": view})
