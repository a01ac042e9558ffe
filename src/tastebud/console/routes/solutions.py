"""Solutions: recipes and hyperparameters, versions with their metrics, the comparison chart,
a version's training curve, and training a new version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tastebud.api.deps import EngineDep
from tastebud.api.routes.solutions import version_out
from tastebud.cli.recipes import hyperparameters
from tastebud.console import render
from tastebud.console.service import paginate, training_curve, versions_chart
from tastebud.console.session import AdminToken
from tastebud.engine import Engine
from tastebud.recipes import get_recipe

router = APIRouter(prefix="/groups/{group}/solutions")


@router.get("")
def solutions(group: str, request: Request, engine: EngineDep, token: AdminToken,
              page: str | None = None) -> HTMLResponse:  # fmt: skip
    engine.get_group(group)
    listed = engine.list_solutions(group)
    latest = {}
    for solution in listed:
        versions = engine.list_solution_versions(group, solution.name)
        latest[solution.name] = version_out(versions[0]) if versions else None
    return render.page(
        request, "solutions.html", token=token, group=group, active="solutions",
        solutions=paginate(listed, page), latest=latest,
    )  # fmt: skip


@router.get("/{name}")
def solution(group: str, name: str, request: Request, engine: EngineDep, token: AdminToken,
             page: str | None = None, version: str | None = None) -> HTMLResponse:  # fmt: skip
    return render.page(
        request, "solution.html", token=token, group=group, active="solutions",
        **_versions(engine, group, name, page, version),
    )  # fmt: skip


@router.get("/{name}/versions")
def versions(group: str, name: str, request: Request, engine: EngineDep, token: AdminToken,
             page: str | None = None, version: str | None = None) -> HTMLResponse:  # fmt: skip
    """The versions part of the page (polled while one trains)."""
    context = {"group": group, **_versions(engine, group, name, page, version)}
    return render.fragment(request, "_versions.html", context)


@router.post("/{name}/train", status_code=202)
def train(group: str, name: str, request: Request, engine: EngineDep,
          token: AdminToken) -> HTMLResponse:  # fmt: skip
    """Train a new version in the background (as ``POST …/solutions/{name}/versions``)."""
    engine.start_training(group, name)
    context = {"group": group, **_versions(engine, group, name, None, None)}
    return render.fragment(request, "_versions.html", context, status_code=202)


def _versions(
    engine: Engine, group: str, name: str, page: str | None, chosen: str | None
) -> dict[str, Any]:
    record = engine.get_solution(group, name)
    listed = engine.list_solution_versions(group, name)
    shown = next((v for v in listed if v.id == chosen), None) or next(
        (v for v in listed if v.status == "active"), None
    )
    return {
        "solution": record,
        # every hyperparameter (as `tastebud recipes show` lists them) beside the solution's own
        "hyperparameters": hyperparameters(get_recipe(record.recipe).config_type),
        "versions": paginate([version_out(v) for v in listed], page),
        "training": any(v.status == "training" for v in listed),
        "chart": versions_chart(listed),
        "shown": None if shown is None else version_out(shown),
        "curve": [] if shown is None else training_curve(engine.settings.artifacts, shown),
    }
