"""``POST .../events``: the real-time hot path. Validated here, group-committed by the engine.

The route runs on the event loop (no worker thread) and awaits the commit, so an answered event
is durable; concurrent requests share one transaction.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tastebud.api.deps import EngineDep, require_token
from tastebud.api.models import PutEventsOut
from tastebud.ingest import PutEventsRequest

router = APIRouter(
    prefix="/v1/dataset-groups/{group}", tags=["events"], dependencies=[Depends(require_token)]
)


@router.post("/events")
async def put_events(group: str, body: PutEventsRequest, engine: EngineDep) -> PutEventsOut:
    result = await engine.put_events_async(group, body)
    return {"accepted": result.accepted, "duplicates": result.duplicates}
