"""``events_from_request``: wire events to store events, and the errors naming the field."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tastebud.errors import InvalidInput
from tastebud.ingest import PutEventsRequest
from tastebud.ingest.validate import events_from_request
from tastebud.schema import MAX_EPOCH_SECONDS, DatasetSchema, parse_timestamp
from tastebud.store import Event

DEFAULT = DatasetSchema.default("interactions")


def convert(*events: dict[str, Any], schema: DatasetSchema = DEFAULT, **top: Any) -> list[Event]:
    body = {"userId": "u1", "sessionId": "s1", **top, "eventList": list(events)}
    return events_from_request(schema, PutEventsRequest.model_validate(body))


def test_every_field_lands_where_it_belongs() -> None:
    schema = DatasetSchema.build("interactions", {"DEVICE": "categorical"})
    (event,) = convert(
        {
            "itemId": "i1", "eventType": "watch", "eventValue": 2.5, "eventId": "e1",
            "sentAt": 1_700_000_000, "impression": ["i1", "i2"], "recommendationId": "r1",
            "properties": {"DEVICE": "tv"},
        },
        schema=schema,
    )  # fmt: skip
    assert event == Event(
        item_id="i1", timestamp=1_700_000_000, user_id="u1", session_id="s1",
        event_type="watch", event_value=2.5, event_id="e1", recommendation_id="r1",
        impression="i1|i2", context={"DEVICE": "tv"},
    )  # fmt: skip


def test_optional_fields_stay_none() -> None:
    before = int(time.time())
    (event,) = convert({"itemId": "i1"}, sessionId=None)
    assert before <= event.timestamp <= int(time.time())  # sentAt left out: received now
    assert event == Event(item_id="i1", timestamp=event.timestamp, user_id="u1")
    (blank,) = convert({"itemId": "i1", "impression": "", "properties": {}})
    assert blank.impression is None and blank.context is None


@pytest.mark.parametrize(
    "sent_at",
    [0, 1_700_000_000, MAX_EPOCH_SECONDS, 1_700_000_000.9, "1700000000", "2023-11-14T22:13:20Z"],
)
def test_timestamps_read_as_the_general_parser_reads_them(sent_at: object) -> None:
    (event,) = convert({"itemId": "i1", "sentAt": sent_at})
    assert event.timestamp == parse_timestamp(sent_at, "sentAt")


@pytest.mark.parametrize("sent_at", [-1, MAX_EPOCH_SECONDS + 1, 1e300, "yesterday", "-5"])
def test_bad_timestamps_name_their_event(sent_at: object) -> None:
    with pytest.raises(InvalidInput, match=r"^eventList\[1\]\.sentAt: "):
        convert({"itemId": "i1"}, {"itemId": "i2", "sentAt": sent_at})


def test_undeclared_property_names_its_event() -> None:
    with pytest.raises(InvalidInput, match=r"^eventList\[2\]\.properties\.DEVICE: unknown field"):
        convert({"itemId": "a"}, {"itemId": "b"}, {"itemId": "c", "properties": {"DEVICE": "tv"}})


def test_a_user_or_a_session_is_required() -> None:
    with pytest.raises(InvalidInput, match="userId or sessionId"):
        convert({"itemId": "i1"}, userId=None, sessionId=None)
    assert convert({"itemId": "i1"}, userId=None)[0].session_id == "s1"
