"""Features (docs/features.md): declare them (admin), compute batch features (admin), read
online values (recommend or admin)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from starlette.concurrency import run_in_threadpool

from tastebud.api.deps import EngineDep, require_admin, require_reader

PREFIX = "/v1/dataset-groups/{group}/features"
router = APIRouter(prefix=PREFIX, tags=["features"])
_ADMIN = [Depends(require_admin)]
_READER = [Depends(require_reader)]
_DECLARATION = {
    "requestBody": {
        "required": True,
        "description": "The declaration (docs/features.md), as YAML or JSON.",
        "content": {
            "application/yaml": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}
_CONCURRENT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Another declaration was applied at the same moment."}
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class OnlineIn(_Wire):
    item_ids: list[str] = Field(min_length=1, max_length=10_000)
    user_id: str | None = None
    names: list[str] | None = Field(default=None, description="Default: every declared column.")
    context: dict[str, str] | None = None
    now: float | None = Field(default=None, description="Epoch seconds; default: now.")


class OnlineOut(_Wire):
    names: list[str]
    item_ids: list[str]
    values: list[list[float | None]] = Field(description="One row per item; null: no value.")


@router.put("", dependencies=_ADMIN, openapi_extra=_DECLARATION, responses=_CONCURRENT)
async def apply(group: str, request: Request, engine: EngineDep) -> dict[str, Any]:
    """Declare the group's features (the YAML or JSON body); stored as a new version."""
    text = (await request.body()).decode("utf-8", errors="replace")
    await run_in_threadpool(engine.features.apply, group, text)
    return await run_in_threadpool(engine.features.describe, group)


@router.get("", dependencies=_ADMIN)
def show(group: str, engine: EngineDep) -> dict[str, Any]:
    """The current declaration, its version and the batch features' latest computations."""
    return engine.features.describe(group)


@router.post("/compute", dependencies=_ADMIN)
def compute(group: str, engine: EngineDep) -> dict[str, Any]:
    """Recompute the batch features now (they are also recomputed when due)."""
    return engine.features.compute(group)


@router.post("/online", dependencies=_READER)
def read_online(group: str, body: OnlineIn, engine: EngineDep) -> OnlineOut:
    """Feature values of a user and candidate items, now."""
    names = body.names or engine.features.names(group)
    values = engine.features.online(group, names, user_id=body.user_id, item_ids=body.item_ids,
                                    now=body.now, context=body.context)  # fmt: skip
    rows = [[None if math.isnan(v) else v for v in row] for row in values.tolist()]
    return OnlineOut(names=list(names), item_ids=body.item_ids, values=rows)
