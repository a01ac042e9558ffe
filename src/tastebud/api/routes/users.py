"""Users: write profiles (any token); erase users and read a user's events (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from tastebud.api.deps import EngineDep, require_admin, require_token
from tastebud.api.models import (
    DeleteUsersIn,
    DeleteUsersOut,
    EventList,
    EventOut,
    RecordsOut,
    UsersIn,
)
from tastebud.store import Event

router = APIRouter(
    prefix="/v1/dataset-groups/{group}/users", tags=["users"], dependencies=[Depends(require_token)]
)


@router.post("")
def put_users(group: str, body: UsersIn, engine: EngineDep) -> RecordsOut:
    return {"accepted": engine.put_users(group, body.users)}


@router.post("/delete", dependencies=[Depends(require_admin)])
def delete_users(group: str, body: DeleteUsersIn, engine: EngineDep) -> DeleteUsersOut:
    """Erase users: profile, interactions, sessions and id (right to be forgotten)."""
    return {"deleted": engine.delete_users(group, body.user_ids)}


@router.get("/{user_id}/events", dependencies=[Depends(require_admin)])
def recent_events(
    group: str,
    user_id: str,
    engine: EngineDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventList:
    """The user's latest events, oldest first."""
    events = engine.recent_events(group, user_id, limit)
    return {"userId": user_id, "events": [_event_out(e) for e in events]}


def _event_out(event: Event) -> EventOut:
    return {
        "itemId": event.item_id, "timestamp": event.timestamp, "userId": event.user_id,
        "sessionId": event.session_id, "eventType": event.event_type,
        "eventValue": event.event_value, "eventId": event.event_id,
        "recommendationId": event.recommendation_id, "impression": event.impression,
        "properties": None if event.context is None else dict(event.context),
    }  # fmt: skip
