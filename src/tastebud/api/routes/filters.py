"""Filters: named filter expressions of a dataset group, used by name in recommendations (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import FilterCheck, FilterExpressionIn, FilterIn, FilterList, FilterOut
from tastebud.filters import parameters, parse, render
from tastebud.store import FilterRecord

router = APIRouter(
    prefix="/v1/dataset-groups/{group}/filters", tags=["filters"],
    dependencies=[Depends(require_admin)],
)  # fmt: skip


def filter_out(record: FilterRecord) -> FilterOut:
    return {
        "group": record.group, "name": record.name, "filterExpression": record.expression,
        "parameters": parameters(parse(record.expression)), "createdAt": record.created_at,
    }  # fmt: skip


@router.post("", status_code=201)
def create_filter(group: str, body: FilterIn, engine: EngineDep) -> FilterOut:
    """Validate the expression against the group's schemas and save it under ``name``."""
    record = engine.create_filter(group, body.name, body.filter_expression, replace=body.replace)
    return filter_out(record)


@router.post("/validate")
def validate_filter(group: str, body: FilterExpressionIn, engine: EngineDep) -> FilterCheck:
    """Check an expression without saving it (422 with the problem when it is not valid)."""
    tree = engine.validate_filter(group, body.filter_expression)
    return {"filterExpression": render(tree), "parameters": parameters(tree),
            "target": tree.expressions[0].target}  # fmt: skip


@router.get("")
def list_filters(group: str, engine: EngineDep) -> FilterList:
    return {"filters": [filter_out(f) for f in engine.list_filters(group)]}


@router.get("/{name}")
def get_filter(group: str, name: str, engine: EngineDep) -> FilterOut:
    return filter_out(engine.get_filter(group, name))


@router.delete("/{name}", status_code=204)
def delete_filter(group: str, name: str, engine: EngineDep) -> Response:
    engine.delete_filter(group, name)
    return Response(status_code=204)
