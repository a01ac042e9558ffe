"""Turn wire models into validated store records, checked against the dataset's schema."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tastebud.errors import InvalidInput
from tastebud.ingest.models import ItemIn, PutEventsRequest, UserIn
from tastebud.schema import DatasetSchema, parse_timestamp, validate_record
from tastebud.store import Event, Record


def events_from_request(schema: DatasetSchema, request: PutEventsRequest) -> list[Event]:
    if request.user_id is None and request.session_id is None:
        raise InvalidInput("userId or sessionId: at least one is required")
    now = int(time.time())
    events = []
    for position, event in enumerate(request.event_list):
        where = f"eventList[{position}]"
        timestamp = (
            now if event.sent_at is None else parse_timestamp(event.sent_at, f"{where}.sentAt")
        )
        impression = event.impression
        if isinstance(impression, list):
            impression = "|".join(impression)
        context = (
            validate_record(schema, event.properties, where=f"{where}.properties")
            if event.properties
            else None
        )
        events.append(
            Event(
                item_id=event.item_id, timestamp=timestamp, user_id=request.user_id,
                session_id=request.session_id, event_type=event.event_type,
                event_value=event.event_value, event_id=event.event_id,
                recommendation_id=event.recommendation_id, impression=impression or None,
                context=context or None,
            )
        )  # fmt: skip
    return events


def records_from_items(schema: DatasetSchema, items: Sequence[ItemIn]) -> list[Record]:
    records = []
    for position, item in enumerate(items):
        where = f"items[{position}].properties"
        properties = {
            ("CREATION_TIMESTAMP" if k.upper() == "CREATION_TIMESTAMP" else k): v
            for k, v in item.properties.items()
        }
        created = properties.pop("CREATION_TIMESTAMP", None)
        records.append(
            Record(
                id=item.item_id,
                fields=validate_record(schema, properties, where=where),
                creation_timestamp=None
                if created in (None, "")
                else parse_timestamp(created, f"{where}.CREATION_TIMESTAMP"),
            )
        )
    return records


def records_from_users(schema: DatasetSchema, users: Sequence[UserIn]) -> list[Record]:
    return [
        Record(
            id=user.user_id,
            fields=validate_record(schema, user.properties, where=f"users[{i}].properties"),
        )
        for i, user in enumerate(users)
    ]
