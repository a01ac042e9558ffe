"""Solutions (recipe + configuration), training, and solution versions (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import (
    SolutionIn,
    SolutionList,
    SolutionOut,
    TrainingStarted,
    VersionList,
    VersionOut,
)
from tastebud.api.routes.imports import job_out
from tastebud.store import SolutionRecord, SolutionVersionRecord

router = APIRouter(prefix="/v1", tags=["solutions"], dependencies=[Depends(require_admin)])


def solution_out(solution: SolutionRecord) -> SolutionOut:
    return {"group": solution.group, "name": solution.name, "recipe": solution.recipe,
            "config": dict(solution.body), "createdAt": solution.created_at}  # fmt: skip


def version_out(version: SolutionVersionRecord) -> VersionOut:
    body = version.body
    return {
        "id": version.id, "group": version.group, "solution": version.solution,
        "status": version.status, "recipe": str(body.get("recipe", "")),
        "params": body.get("params"), "metrics": body.get("metrics"),
        "snapshot": body.get("snapshot"), "trainSeconds": body.get("train_seconds"),
        "error": body.get("error"), "gatedReason": body.get("gated"),
        "incremental": body.get("incremental"),
        "createdAt": version.created_at,
        "updatedAt": version.updated_at,
    }  # fmt: skip


@router.post("/dataset-groups/{group}/solutions", status_code=201)
def create_solution(group: str, body: SolutionIn, engine: EngineDep) -> SolutionOut:
    solution = engine.create_solution(group, body.name, body.body(), replace=body.replace)
    return solution_out(solution)


@router.get("/dataset-groups/{group}/solutions")
def list_solutions(group: str, engine: EngineDep) -> SolutionList:
    return {"solutions": [solution_out(s) for s in engine.list_solutions(group)]}


@router.get("/dataset-groups/{group}/solutions/{name}")
def get_solution(group: str, name: str, engine: EngineDep) -> SolutionOut:
    return solution_out(engine.get_solution(group, name))


@router.delete("/dataset-groups/{group}/solutions/{name}", status_code=204)
def delete_solution(group: str, name: str, engine: EngineDep) -> Response:
    engine.delete_solution(group, name)
    return Response(status_code=204)


@router.post("/dataset-groups/{group}/solutions/{name}/versions", status_code=202)
def train(
    group: str, name: str, engine: EngineDep, seed: int = 0, incremental: bool = False,
    full_fallback: Annotated[bool, Query(alias="fullFallback")] = False,
) -> TrainingStarted:  # fmt: skip
    """Train a new version in the background; poll the job or the version for its status.
    ``incremental``: grow the active version with the events since it (422 when there is none
    to grow, unless ``fullFallback``)."""
    version, job = engine.start_training(group, name, seed=seed, incremental=incremental,
                                         full_fallback=full_fallback)  # fmt: skip
    return {"solutionVersion": version_out(version), "job": job_out(job)}


@router.get("/dataset-groups/{group}/solutions/{name}/versions")
def list_versions(group: str, name: str, engine: EngineDep) -> VersionList:
    engine.get_solution(group, name)  # 404 for an unknown solution, not an empty list
    return {"versions": [version_out(v) for v in engine.list_solution_versions(group, name)]}


@router.get("/solution-versions/{version_id}")
def get_version(version_id: str, engine: EngineDep) -> VersionOut:
    return version_out(engine.solution_version(version_id))
