"""``POST .../events`` on SQLite and PostgreSQL: validation, dedup, sessions, limits."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..conftest import Api


def post_events(
    api: Api, body: Mapping[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    response: httpx.Response = api.http.post(
        api.url("/events"), json=body, headers=headers or api.ingest
    )
    return response


def test_events_are_stored_and_read_back(api: Api) -> None:
    body = {
        "userId": "u1",
        "sessionId": "s1",
        "eventList": [
            {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000, "eventId": "e1"},
            {
                "itemId": "i2",
                "eventType": "watch",
                "eventValue": 42.5,
                "sentAt": "2023-11-14T22:13:21Z",
                "impression": ["i2", "i3"],
                "recommendationId": "r1",
            },
        ],
    }
    response = post_events(api, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0}
    first, second = api.events("u1")
    assert first["itemId"] == "i1" and first["eventType"] == "click"
    assert first["timestamp"] == 1_700_000_000 and first["eventId"] == "e1"
    assert second["itemId"] == "i2" and second["eventValue"] == 42.5
    assert second["timestamp"] == 1_700_000_001
    assert second["impression"] == "i2|i3" and second["recommendationId"] == "r1"
    assert second["sessionId"] == "s1" and second["userId"] == "u1"
    counts = api.counts()
    assert counts["interactions"] == 2 and counts["itemIds"] == 2 and counts["userIds"] == 1


def test_duplicate_event_id_is_stored_once(api: Api) -> None:
    once = {"userId": "u1", "eventList": [{"itemId": "i1", "eventId": "e1"}]}
    assert post_events(api, once).json() == {"accepted": 1, "duplicates": 0}
    again = {
        "userId": "u1",
        "eventList": [{"itemId": "i1", "eventId": "e1"}, {"itemId": "i2", "eventId": "e2"}],
    }
    response = post_events(api, again)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert api.counts()["interactions"] == 2
    assert [e["eventId"] for e in api.events("u1")] == ["e1", "e2"]


def test_anonymous_session_events_join_the_user_once_known(api: Api) -> None:
    anonymous = {
        "sessionId": "s9",
        "eventList": [{"itemId": "a", "sentAt": 100}, {"itemId": "b", "sentAt": 200}],
    }
    assert post_events(api, anonymous).json()["accepted"] == 2
    assert api.counts()["anonymousInteractions"] == 2
    assert api.events("u7") == []

    identified = {"userId": "u7", "sessionId": "s9", "eventList": [{"itemId": "c", "sentAt": 300}]}
    assert post_events(api, identified).status_code == 200
    assert [e["itemId"] for e in api.events("u7")] == ["a", "b", "c"]
    assert api.counts()["anonymousInteractions"] == 0

    # Later events of the now-known session belong to the user even without its id.
    later = {"sessionId": "s9", "eventList": [{"itemId": "d", "sentAt": 400}]}
    assert post_events(api, later).status_code == 200
    assert [e["itemId"] for e in api.events("u7")] == ["a", "b", "c", "d"]


def test_events_need_a_user_or_a_session(api: Api) -> None:
    response = post_events(api, {"eventList": [{"itemId": "i1"}]})
    assert response.status_code == 422
    assert "userId or sessionId" in response.json()["error"]["message"]


def test_more_events_than_allowed_is_413(api: Api) -> None:
    limit = api.engine.settings.api.max_events_per_request
    body = {"userId": "u1", "eventList": [{"itemId": f"i{n}"} for n in range(limit + 1)]}
    response = post_events(api, body)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["type"] == "PayloadTooLarge"
    assert f"{limit + 1} events, at most {limit}" in error["message"]
    assert api.counts()["interactions"] == 0
    body["eventList"] = body["eventList"][:limit]
    assert post_events(api, body).json() == {"accepted": limit, "duplicates": 0}


def test_unknown_property_is_422_naming_it(api: Api) -> None:
    body = {"userId": "u1", "eventList": [{"itemId": "i1", "properties": {"DEVICE": "mobile"}}]}
    response = post_events(api, body)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(
        "eventList[0].properties.DEVICE: unknown field"
    )
    assert api.counts()["interactions"] == 0


def test_missing_item_id_is_422_naming_it(api: Api) -> None:
    body = {"userId": "u1", "eventList": [{"itemId": "i1"}, {"eventType": "click"}]}
    response = post_events(api, body)
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "body.eventList[1].itemId: Field required"


def test_bad_values_are_422_naming_the_field(api: Api) -> None:
    cases = {
        "body.eventList[0].eventValue": {"itemId": "i1", "eventValue": "lots"},
        "body.eventList[0].surprise": {"itemId": "i1", "surprise": 1},
        "eventList[0].sentAt": {"itemId": "i1", "sentAt": "yesterday"},
    }
    for field, event in cases.items():
        response = post_events(api, {"userId": "u1", "eventList": [event]})
        assert response.status_code == 422, field
        assert response.json()["error"]["message"].startswith(field + ":"), response.text


def test_declared_context_field_is_accepted(api: Api) -> None:
    body = {
        "userId": "u1",
        "eventList": [{"itemId": "i1", "properties": {"DEVICE": "mobile", "SCREEN": 6.1}}],
    }
    assert post_events(api, body).status_code == 422
    schema = {"fields": {"DEVICE": "categorical", "SCREEN": "numerical"}}
    put = api.http.put(api.url("/schemas/interactions"), json=schema, headers=api.admin)
    assert put.status_code == 200, put.text
    response = post_events(api, body)
    assert response.status_code == 200, response.text
    assert api.events("u1")[0]["properties"] == {"DEVICE": "mobile", "SCREEN": 6.1}


def test_unknown_group_is_404(api: Api) -> None:
    body = {"userId": "u1", "eventList": [{"itemId": "i1"}]}
    response = api.http.post(
        api.url("/events", group="no-such-group"), json=body, headers=api.ingest
    )
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "NotFound",
        "message": "dataset group 'no-such-group' does not exist",
    }
