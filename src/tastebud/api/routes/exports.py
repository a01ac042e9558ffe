"""``POST .../exports``: a dataset of the group as a CSV or Parquet file, streamed back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from tastebud.api.deps import EngineDep, SettingsDep, require_admin
from tastebud.api.models import ExportIn

router = APIRouter(
    prefix="/v1/dataset-groups/{group}", tags=["exports"], dependencies=[Depends(require_admin)]
)

MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@router.post(
    "/exports",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}},
)
def export(group: str, body: ExportIn, engine: EngineDep, settings: SettingsDep) -> FileResponse:
    """The rows in the dataset's columns; the ``X-Tastebud-Rows`` header says how many."""
    path = settings.home / "exports" / f"{uuid.uuid4().hex}.{body.format}"
    try:
        rows = engine.export(group, body.dataset, path)
    except BaseException:
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[body.format],
        filename=f"{group}-{body.dataset}.{body.format}",
        headers={"X-Tastebud-Rows": str(rows)},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
