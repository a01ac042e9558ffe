"""Import jobs: from a file on the server, or from a file uploaded as the request body."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep, SettingsDep, require_admin
from tastebud.api.models import ImportJobIn, ImportMode, JobList, JobOut, camel_keys
from tastebud.api.uploads import save_upload, upload_path
from tastebud.errors import NotFound
from tastebud.schema import DatasetKind
from tastebud.store import JobRecord

router = APIRouter(prefix="/v1", tags=["import jobs"], dependencies=[Depends(require_admin)])

_RAW_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def job_out(job: JobRecord) -> JobOut:
    return {
        "id": job.id, "group": job.group, "kind": job.kind, "status": job.status,
        "progress": job.progress, "params": camel_keys(job.params),
        "result": None if job.result is None else camel_keys(job.result),
        "error": job.error, "createdAt": job.created_at, "updatedAt": job.updated_at,
    }  # fmt: skip


@router.post("/dataset-groups/{group}/import-jobs", status_code=202)
def start_import(group: str, body: ImportJobIn, engine: EngineDep) -> JobOut:
    job = engine.start_import(
        group, body.dataset, Path(body.path), mode=body.mode,
        max_error_rate=body.max_error_rate, encoding=body.encoding,
    )  # fmt: skip
    return job_out(job)


@router.post("/dataset-groups/{group}/import-jobs/upload", status_code=202, openapi_extra=_RAW_BODY)
async def upload_import(
    group: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    dataset: DatasetKind,
    mode: ImportMode = "incremental",
    filename: Annotated[str, Query(description="Its ending names the type.")] = "data.csv",
    max_error_rate: Annotated[float | None, Query(alias="maxErrorRate", ge=0, le=1)] = None,
    encoding: str = "utf-8",
) -> JobOut:
    """Stream the request body (the file) to the server, then import it in the background."""
    path = upload_path(settings.home / "uploads", filename)
    await run_in_threadpool(engine.get_group, group)  # 404 before the upload, not after
    await save_upload(request, path)
    try:
        job = await run_in_threadpool(
            lambda: engine.start_import(
                group,
                dataset,
                path,
                mode=mode,
                max_error_rate=max_error_rate,
                encoding=encoding,
                delete_source=True,
            )
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return job_out(job)


@router.get("/dataset-groups/{group}/import-jobs")
def list_import_jobs(group: str, engine: EngineDep) -> JobList:
    engine.get_group(group)
    jobs = [job for job in engine.list_jobs(group) if job.kind == "import"]
    return {"jobs": [job_out(job) for job in jobs]}


@router.get("/import-jobs/{job_id}")
def get_import_job(job_id: str, engine: EngineDep) -> JobOut:
    job = engine.job(job_id)
    if job.kind != "import":
        raise NotFound(f"import job {job_id!r} does not exist")
    return job_out(job)
