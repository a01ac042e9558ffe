"""``includeIntent`` on recommendations, over HTTP and through the Python client."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastebud.client import Client
from tastebud.errors import InvalidInput
from tests.serving.conftest import write_clustered
from tests.serving.test_intent import train_intent_solutions

from ..conftest import Api


@pytest.fixture
def backend() -> str:
    """The answer's shape does not depend on the store: SQLite only."""
    return "sqlite"


@pytest.fixture
def trained(api: Api, tmp_path: Path) -> Api:
    """The clustered data (u0..u29 watch genre a, u30..u59 genre b) and two solutions: one
    with intent heads, one without."""
    engine, group = api.engine, api.group
    interactions, items = write_clustered(tmp_path)
    engine.put_schema(group, "items", {"GENRES": "categorical"})
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.import_file(group, "items", items, mode="full")
    train_intent_solutions(engine, group)
    return api


def test_include_intent_over_http_and_the_client(trained: Api) -> None:
    api = trained
    body = {"solution": "next", "userId": "u40", "numResults": 3}
    plain = api.http.post(api.url("/recommendations"), json=body, headers=api.admin)
    assert plain.status_code == 200, plain.text
    assert "intent" not in plain.json()
    asked = api.http.post(api.url("/recommendations"), json=body | {"includeIntent": True},
                          headers=api.admin)  # fmt: skip
    assert asked.status_code == 200, asked.text
    genres = asked.json()["intent"]["GENRES"]
    assert set(genres) == {"a", "b"} and genres["b"] > 0.5
    assert asked.json()["itemList"] == plain.json()["itemList"]
    refused = api.http.post(api.url("/recommendations"), headers=api.admin,
                            json=body | {"solution": "popular", "includeIntent": True})  # fmt: skip
    assert refused.status_code == 422, refused.text
    assert "has no intent heads" in refused.json()["error"]["message"]

    with Client(str(api.http.base_url), token=api.admin["Authorization"].split()[1],
                group=api.group, transport=api.http._transport) as client:  # fmt: skip
        answer = client.recommend("u5", solution="next", num_results=2, include_intent=True)
        assert answer["intent"]["GENRES"]["a"] > 0.5
        assert "intent" not in client.recommend("u5", solution="next", num_results=2)
        with pytest.raises(InvalidInput, match="has no intent heads"):
            client.recommend("u5", solution="popular", include_intent=True)
