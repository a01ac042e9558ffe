"""Filters over HTTP: the admin resource, and ``filterName``/``filterValues`` on recommendations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api, bearer  # noqa: F401  (the api fixture)
from tests.serving.conftest import write_clustered

GENRE_B = {f"i{i}" for i in range(20, 40)}


@pytest.fixture
def trained(api: Api, tmp_path: Path) -> Api:  # noqa: F811
    interactions, items = write_clustered(tmp_path)
    api.engine.put_schema(api.group, "items", {"GENRES": "categorical"})
    api.engine.import_file(api.group, "interactions", interactions, mode="full")
    api.engine.import_file(api.group, "items", items, mode="full")
    api.engine.create_solution(api.group, "popular", {"recipe": "popularity-count"})
    api.engine.train(api.group, "popular")
    return api


def post(api: Api, suffix: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:  # noqa: F811
    return api.http.post(api.url(suffix), json=body, headers=headers or api.admin)


def test_filter_resource(trained: Api) -> None:
    body = {"name": "genre", "filterExpression": "include itemid where items.GENRES in ($G)"}
    assert post(trained, "/filters", body, trained.ingest).status_code == 403
    created = post(trained, "/filters", body)
    assert created.status_code == 201, created.text
    assert created.json() == {
        "group": trained.group, "name": "genre", "filterExpression": body["filterExpression"],
        "parameters": ["G"], "createdAt": created.json()["createdAt"],
    }  # fmt: skip
    assert post(trained, "/filters", body).status_code == 409
    listed = trained.http.get(trained.url("/filters"), headers=trained.admin).json()
    assert [f["name"] for f in listed["filters"]] == ["genre"]
    one = trained.http.get(trained.url("/filters/genre"), headers=trained.admin)
    assert one.json()["parameters"] == ["G"]
    gone = trained.http.delete(trained.url("/filters/genre"), headers=trained.admin)
    assert gone.status_code == 204
    assert trained.http.get(trained.url("/filters/genre"), headers=trained.admin).status_code == 404


def test_validation_messages(trained: Api) -> None:
    check = post(trained, "/filters/validate",
                 {"filterExpression": "exclude itemid where Items.GENRES IN ($G)"})  # fmt: skip
    assert check.status_code == 200
    assert check.json() == {"filterExpression": "EXCLUDE ItemID WHERE Items.GENRES IN ($G)",
                            "parameters": ["G"], "target": "ItemID"}  # fmt: skip
    bad = post(trained, "/filters/validate",
               {"filterExpression": 'INCLUDE ItemID WHERE Items.GENRES IN ("a)'})  # fmt: skip
    assert bad.status_code == 422
    assert bad.json()["error"] == {
        "type": "FilterSyntaxError",
        "message": "filter expression, column 39: unbalanced quotes: the string opened here has "
        'no closing "',
    }
    mood = 'INCLUDE ItemID WHERE Items.MOOD IN ("calm")'
    unknown = post(trained, "/filters", {"name": "x", "filterExpression": mood})
    assert unknown.status_code == 422
    assert "Items.MOOD: unknown field" in unknown.json()["error"]["message"]


def test_recommendations_by_filter_name(trained: Api) -> None:
    post(
        trained,
        "/filters",
        {"name": "genre", "filterExpression": "INCLUDE ItemID WHERE Items.GENRES IN ($G)"},
    )
    reader = bearer(trained.engine.create_token(f"{trained.group}-web", scope="recommend"))
    body = {"solution": "popular", "userId": "u0", "numResults": 7, "filterName": "genre"}
    answer = post(trained, "/recommendations", {**body, "filterValues": {"G": ["b"]}}, reader)
    assert answer.status_code == 200, answer.text
    items = [r["itemId"] for r in answer.json()["itemList"]]
    assert len(items) == 7 and set(items) <= GENRE_B
    quoted = post(trained, "/recommendations", {**body, "filterValues": {"G": '"b"'}}, reader)
    assert [r["itemId"] for r in quoted.json()["itemList"]] == items
    missing = post(trained, "/recommendations", body, reader)
    assert missing.status_code == 422 and "no value for $G" in missing.json()["error"]["message"]
    unknown = post(trained, "/recommendations", {**body, "filterName": "nope"}, reader)
    assert unknown.status_code == 404
    ranked = post(trained, "/personalized-ranking", {
        "solution": "popular", "userId": "u0", "inputList": ["i1", "i21", "i2"],
        "filterName": "genre", "filterValues": {"G": ["a"]}}, reader)  # fmt: skip
    assert sorted(r["itemId"] for r in ranked.json()["itemList"]) == ["i1", "i2"]
