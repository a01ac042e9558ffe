"""``POST .../items``: insert or replace items (whole rows) in real time."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_token
from tastebud.api.models import ItemsIn, RecordsOut

router = APIRouter(
    prefix="/v1/dataset-groups/{group}", tags=["items"], dependencies=[Depends(require_token)]
)


@router.post("/items")
def put_items(group: str, body: ItemsIn, engine: EngineDep) -> RecordsOut:
    return {"accepted": engine.put_items(group, body.items)}
