"""Dataset groups and schemas."""

from __future__ import annotations

from ..conftest import Api


def test_group_lifecycle(api: Api) -> None:
    name = f"{api.group}-new"  # prefixed with the test's group: cleaned up with it
    created = api.http.post("/v1/dataset-groups", json={"name": name}, headers=api.admin)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == name and created.json()["createdAt"] > 0
    again = api.http.post("/v1/dataset-groups", json={"name": name}, headers=api.admin)
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "AlreadyExists"

    listed = api.http.get("/v1/dataset-groups", headers=api.admin).json()["groups"]
    assert {name, api.group} <= {g["name"] for g in listed}
    assert api.http.get(api.url(group=name), headers=api.admin).json()["name"] == name
    assert (
        api.counts()
        == api.http.get(api.url("/status", group=name), headers=api.admin).json()["counts"]
    )

    deleted = api.http.delete(api.url(group=name), headers=api.admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.http.get(api.url(group=name), headers=api.admin).status_code == 404


def test_invalid_group_name_is_422(api: Api) -> None:
    response = api.http.post("/v1/dataset-groups", json={"name": "bad name!"}, headers=api.admin)
    assert response.status_code == 422
    assert "bad name!" in response.json()["error"]["message"]


def test_schema_put_and_get(api: Api) -> None:
    default = api.http.get(api.url("/schemas/items"), headers=api.admin)
    assert default.status_code == 200
    assert default.json() == {
        "dataset": "items",
        "fields": {"ITEM_ID": "string", "CREATION_TIMESTAMP": "timestamp"},
    }
    fields = {"GENRES": "categorical", "PRICE": "numerical"}
    put = api.http.put(api.url("/schemas/items"), json={"fields": fields}, headers=api.admin)
    assert put.status_code == 200
    got = api.http.get(api.url("/schemas/items"), headers=api.admin).json()
    assert got == put.json()
    assert got["fields"] == {"ITEM_ID": "string", "CREATION_TIMESTAMP": "timestamp", **fields}


def test_bad_schemas_are_422(api: Api) -> None:
    cases = [
        ("items", {"PRICE": "money"}, "body.fields.PRICE:"),
        ("items", {"ITEM_ID": "numerical"}, "items.ITEM_ID: reserved field"),
        ("items", {"bad name": "textual"}, "items schema:"),
        ("ratings", {}, "path.dataset:"),
    ]
    for dataset, fields, message in cases:
        response = api.http.put(
            api.url(f"/schemas/{dataset}"), json={"fields": fields}, headers=api.admin
        )
        assert response.status_code == 422, (dataset, fields)
        assert response.json()["error"]["message"].startswith(message), response.text
