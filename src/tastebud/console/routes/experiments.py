"""Experiments: the group's A/B tests and each one's report (issue 15's experiments service)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tastebud.api.deps import EngineDep
from tastebud.console import render
from tastebud.console.service import paginate
from tastebud.console.session import AdminToken

router = APIRouter(prefix="/groups/{group}/experiments")


@router.get("")
def experiments(group: str, request: Request, engine: EngineDep, token: AdminToken,
                page: str | None = None) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    listed = [engine.experiments.describe(r) for r in engine.experiments.list(group)]
    return render.page(request, "experiments.html", token=token, group=group,
                       active="experiments", experiments=paginate(listed, page))  # fmt: skip


@router.get("/{name}")
def report(group: str, name: str, request: Request, engine: EngineDep,
           token: AdminToken) -> HTMLResponse:  # fmt: skip
    """The report ``tastebud experiments report`` prints (docs/experiments.md)."""
    found = engine.experiments.report(group, name)
    return render.page(request, "experiment.html", token=token, group=group,
                       active="experiments", report=found)  # fmt: skip
