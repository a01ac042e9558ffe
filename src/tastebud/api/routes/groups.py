"""Dataset groups: create, list, read, delete, and the row counts of one group."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_admin
from tastebud.api.models import GroupIn, GroupList, GroupOut, GroupStatus, camel_keys
from tastebud.store import DatasetGroup

router = APIRouter(
    prefix="/v1/dataset-groups", tags=["dataset groups"], dependencies=[Depends(require_admin)]
)


def _group_out(group: DatasetGroup) -> GroupOut:
    return {"name": group.name, "createdAt": group.created_at}


@router.post("", status_code=201)
def create_group(body: GroupIn, engine: EngineDep) -> GroupOut:
    return _group_out(engine.create_group(body.name))


@router.get("")
def list_groups(engine: EngineDep) -> GroupList:
    return {"groups": [_group_out(g) for g in engine.list_groups()]}


@router.get("/{group}")
def get_group(group: str, engine: EngineDep) -> GroupOut:
    return _group_out(engine.get_group(group))


@router.delete("/{group}", status_code=204)
def delete_group(group: str, engine: EngineDep) -> None:
    engine.delete_group(group)


@router.get("/{group}/status")
def group_status(group: str, engine: EngineDep) -> GroupStatus:
    return {"group": group, "counts": camel_keys(engine.counts(group))}
