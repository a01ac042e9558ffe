"""Dataset schemas: declare (``PUT``) and read the fields of one dataset of a group."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import SchemaIn, SchemaOut
from tastebud.schema import DatasetKind, DatasetSchema

router = APIRouter(
    prefix="/v1/dataset-groups/{group}/schemas",
    tags=["schemas"],
    dependencies=[Depends(require_admin)],
)


def _schema_out(schema: DatasetSchema) -> SchemaOut:
    return {"dataset": schema.dataset, "fields": schema.types}


@router.put("/{dataset}")
def put_schema(group: str, dataset: DatasetKind, body: SchemaIn, engine: EngineDep) -> SchemaOut:
    return _schema_out(engine.put_schema(group, dataset, body.fields))


@router.get("/{dataset}")
def get_schema(group: str, dataset: DatasetKind, engine: EngineDep) -> SchemaOut:
    return _schema_out(engine.get_schema(group, dataset))
