"""Wire format of real-time writes (the event tracker), shaped like the managed service's
PutEvents / PutItems / PutUsers so existing clients carry over."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tastebud.schema import MAX_ID_LENGTH

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class EventIn(_Wire):
    item_id: Id
    event_type: Annotated[str, Field(max_length=256)] | None = None
    event_value: float | None = Field(default=None, allow_inf_nan=False)
    event_id: Id | None = None
    sent_at: int | float | str | None = Field(
        default=None, description="Epoch seconds or ISO-8601; default: when received."
    )
    impression: list[Id] | str | None = Field(
        default=None, description="Item ids shown with this event (list or `|`-joined)."
    )
    recommendation_id: Id | None = None
    properties: dict[str, Any] | None = Field(
        default=None, description="Context fields declared in the interactions schema."
    )


class PutEventsRequest(_Wire):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "userId": "u1", "sessionId": "s1",
        "eventList": [{"itemId": "i42", "eventType": "click", "timestamp": 1767225600}],
    }]})  # fmt: skip

    user_id: Id | None = None
    session_id: Id | None = None
    event_list: list[EventIn] = Field(min_length=1)

    @classmethod
    def from_json(cls, body: bytes) -> PutEventsRequest:
        """Parse and validate a JSON body in one pass (pydantic-core, no Python dicts between).

        Raises:
            pydantic.ValidationError: malformed JSON or an invalid field. Its messages differ
                from the API's (which parses with ``json``, then validates), so the API answers
                a failure through its regular route; see ``api/routes/events.py``.
        """
        return cls.model_validate_json(body)


class ItemIn(_Wire):
    item_id: Id
    properties: dict[str, Any] = Field(default_factory=dict)


class UserIn(_Wire):
    user_id: Id
    properties: dict[str, Any] = Field(default_factory=dict)
