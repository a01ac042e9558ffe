"""Batch jobs over JSON Lines files on the server (admin): start one, follow it in /v1/jobs."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import BatchJobIn, JobOut
from tastebud.api.routes.imports import job_out
from tastebud.batch import BatchSpec
from tastebud.serving.precomputed import PrecomputedTarget

router = APIRouter(prefix="/v1", tags=["batch jobs"], dependencies=[Depends(require_admin)])


@router.post("/dataset-groups/{group}/batch-jobs", status_code=202)
def start_batch_job(group: str, body: BatchJobIn, engine: EngineDep) -> JobOut:
    """Answer every line of ``inputPath`` into ``outputPath`` in the background; the job's
    ``progress`` and, when done, its ``result`` (lines, errors, version) are in
    ``GET /v1/jobs/{id}``. Starting the same job again after a crash resumes it."""
    engine.get_group(group)
    to = None
    if body.to is not None:
        to = PrecomputedTarget.parse(body.to.url, key_prefix=body.to.key_prefix,
                                     ttl_seconds=body.to.ttl_seconds)  # fmt: skip
    spec = BatchSpec(
        group=group, kind=body.job_type, input=Path(body.input_path),
        output=None if body.output_path is None else Path(body.output_path), to=to,
        solution=body.solution,
        version_id=body.solution_version_id, num_results=body.num_results,
        filter_name=body.filter_name, max_error_rate=body.max_error_rate, explain=body.explain,
        executor=body.executor, workers=body.workers,
    )  # fmt: skip
    return job_out(engine.batch.start(spec))
