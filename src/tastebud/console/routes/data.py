"""Data: schemas, import jobs (upload a file, accepted / rejected counts, rejects), a user's
recent events."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep, SettingsDep
from tastebud.api.models import ImportMode
from tastebud.api.uploads import save_upload, upload_path
from tastebud.console import render
from tastebud.console.service import paginate, rejects_file
from tastebud.console.session import AdminToken
from tastebud.engine import Engine
from tastebud.schema import DATASETS, DatasetKind

router = APIRouter(prefix="/groups/{group}")
# Uploads may be as large as the API's (`api.max_upload_bytes`), not the body limit.
UPLOAD_PATH = re.compile(r"/console/groups/[^/]+/imports/upload")
USER_EVENTS = 100


@router.get("/data")
def data_page(
    group: str,
    request: Request,
    engine: EngineDep,
    token: AdminToken,
    user: str | None = None,
    page: str | None = None,
    events_page: str | None = None,
) -> HTMLResponse:
    schemas = {dataset: engine.get_schema(group, dataset).types for dataset in DATASETS}
    events = engine.recent_events(group, user, USER_EVENTS)[::-1] if user else []
    return render.page(
        request, "data.html", token=token, group=group, active="data", schemas=schemas,
        user=user, events=paginate(events, events_page), **_imports(engine, group, page),
    )  # fmt: skip


@router.get("/imports")
def imports(
    group: str, request: Request, engine: EngineDep, token: AdminToken, page: str | None = None
) -> HTMLResponse:
    """The imports table (polled while a job runs)."""
    return render.fragment(
        request, "_imports.html", {"group": group, **_imports(engine, group, page)}
    )


@router.post("/imports/upload", status_code=202)
async def upload(
    group: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    token: AdminToken,
    dataset: DatasetKind,
    mode: ImportMode = "incremental",
    filename: str = "data.csv",
    max_error_rate: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> HTMLResponse:
    """The file is the request body (as ``…/import-jobs/upload`` takes it); the job runs in the
    background and the answer is the imports table with it on top."""
    path = upload_path(settings.home / "uploads", filename)
    await run_in_threadpool(engine.get_group, group)
    await save_upload(request, path)
    try:
        await run_in_threadpool(
            lambda: engine.start_import(group, dataset, path, mode=mode,
                                        max_error_rate=max_error_rate, delete_source=True)
        )  # fmt: skip
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    context = {"group": group, **_imports(engine, group, None)}
    return render.fragment(request, "_imports.html", context, status_code=202)


@router.get("/jobs/{job_id}/rejects")
def rejects(
    group: str, job_id: str, engine: EngineDep, settings: SettingsDep, token: AdminToken
) -> FileResponse:
    """The rows an import rejected, with their line and reason (CSV)."""
    job = engine.job(job_id)
    path = rejects_file(settings.home, job.result if job.group == group else None)
    return FileResponse(path, media_type="text/csv", filename=f"{job_id}-rejects.csv")


def _imports(engine: Engine, group: str, page: str | None) -> dict[str, Any]:
    engine.get_group(group)
    jobs = [job for job in engine.list_jobs(group) if job.kind == "import"]
    running = any(job.status in ("queued", "running") for job in jobs)
    return {"imports": paginate(jobs, page), "running": running}
