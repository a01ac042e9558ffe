"""Users and items writes, recent events, and erasure."""

from __future__ import annotations

from ..conftest import Api


def test_put_items_and_users_validate_against_the_schema(api: Api) -> None:
    items = {"items": [{"itemId": "i1", "properties": {"GENRES": ["a", "b"]}}]}
    response = api.http.post(api.url("/items"), json=items, headers=api.ingest)
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("items[0].properties.GENRES")

    for dataset, fields in (
        ("items", {"GENRES": "categorical"}),
        ("users", {"TIER": "categorical"}),
    ):
        put = api.http.put(
            api.url(f"/schemas/{dataset}"), json={"fields": fields}, headers=api.admin
        )
        assert put.status_code == 200, put.text
    response = api.http.post(api.url("/items"), json=items, headers=api.ingest)
    assert response.json() == {"accepted": 1}
    users = {"users": [{"userId": "u1", "properties": {"TIER": "gold"}}, {"userId": "u2"}]}
    response = api.http.post(api.url("/users"), json=users, headers=api.ingest)
    assert response.json() == {"accepted": 2}
    counts = api.counts()
    assert counts["items"] == 1 and counts["users"] == 2


def test_empty_lists_are_422(api: Api) -> None:
    cases: list[tuple[str, dict[str, list[str]]]] = [
        ("/items", {"items": []}),
        ("/users", {"users": []}),
        ("/users/delete", {"userIds": []}),
    ]
    for suffix, body in cases:
        response = api.http.post(api.url(suffix), json=body, headers=api.admin)
        assert response.status_code == 422, suffix
        assert "should have at least 1 item" in response.json()["error"]["message"]


def test_recent_events_are_limited_to_the_latest(api: Api) -> None:
    events = [{"itemId": f"i{n}", "sentAt": 1_000 + n} for n in range(5)]
    api.http.post(
        api.url("/events"), json={"userId": "u1", "eventList": events}, headers=api.ingest
    )
    response = api.http.get(api.url("/users/u1/events?limit=2"), headers=api.admin)
    assert response.status_code == 200
    assert response.json()["userId"] == "u1"
    assert [e["itemId"] for e in response.json()["events"]] == ["i3", "i4"]
    too_many = api.http.get(api.url("/users/u1/events?limit=5000"), headers=api.admin)
    assert too_many.status_code == 422
    assert too_many.json()["error"]["message"].startswith("query.limit:")


def test_user_deletion_removes_events_and_the_user(api: Api) -> None:
    users = {"users": [{"userId": "gone"}, {"userId": "kept"}]}
    api.http.post(api.url("/users"), json=users, headers=api.ingest)
    for user in ("gone", "kept"):
        body = {
            "userId": user,
            "sessionId": f"s-{user}",
            "eventList": [{"itemId": "i1"}, {"itemId": "i2"}],
        }
        assert api.http.post(api.url("/events"), json=body, headers=api.ingest).status_code == 200
    before = api.counts()
    assert before["users"] == 2 and before["interactions"] == 4

    response = api.http.post(
        api.url("/users/delete"), json={"userIds": ["gone", "nobody"]}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 1}
    after = api.counts()
    assert after["users"] == 1 and after["interactions"] == 2 and after["userIds"] == 1
    assert api.events("gone") == []
    assert len(api.events("kept")) == 2
    # The erased user's session no longer ties new anonymous events to anyone.
    body = {"sessionId": "s-gone", "eventList": [{"itemId": "i3"}]}
    api.http.post(api.url("/events"), json=body, headers=api.ingest)
    assert api.counts()["anonymousInteractions"] == 1


def test_unknown_group_is_404_everywhere(api: Api) -> None:
    other = "no-such-group"
    calls: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", api.url("/status", group=other), None),
        ("GET", api.url("/users/u1/events", group=other), None),
        ("POST", api.url("/users/delete", group=other), {"userIds": ["u1"]}),
        ("POST", api.url("/items", group=other), {"items": [{"itemId": "i"}]}),
        ("POST", api.url("/users", group=other), {"users": [{"userId": "u"}]}),
        ("GET", api.url("/schemas/items", group=other), None),
        ("PUT", api.url("/schemas/items", group=other), {"fields": {}}),
        ("GET", api.url("/import-jobs", group=other), None),
        ("POST", api.url("/exports", group=other), {"dataset": "items"}),
        ("GET", api.url(group=other), None),
        ("DELETE", api.url(group=other), None),
    ]
    for method, url, body in calls:
        response = api.http.request(method, url, json=body, headers=api.admin)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["message"] == f"dataset group {other!r} does not exist"
