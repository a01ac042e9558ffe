"""Background jobs of every kind (imports, training): status and progress (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import JobList, JobOut
from tastebud.api.routes.imports import job_out

router = APIRouter(prefix="/v1", tags=["jobs"], dependencies=[Depends(require_admin)])


@router.get("/dataset-groups/{group}/jobs")
def list_jobs(group: str, engine: EngineDep) -> JobList:
    engine.get_group(group)
    return {"jobs": [job_out(job) for job in engine.list_jobs(group)]}


@router.get("/jobs/{job_id}")
def get_job(job_id: str, engine: EngineDep) -> JobOut:
    return job_out(engine.job(job_id))
