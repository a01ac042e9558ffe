"""The embeddings endpoints: readable with recommend and admin tokens only, vectors in the
version's space, unknown ids and recipes without embeddings answered clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.conftest import write_clustered

from ..conftest import Api, bearer


@pytest.fixture
def trained(api: Api, tmp_path: Path) -> Api:
    """The clustered data with an ALS solution and a popularity one, each trained once."""
    interactions, _ = write_clustered(tmp_path)
    api.engine.import_file(api.group, "interactions", interactions, mode="full")
    als = {"algorithm": "als", "factors": 8}
    for name, body in (("als", {"recipe": "user-personalization", "params": als}),
                       ("popular", {"recipe": "popularity-count"})):  # fmt: skip
        api.engine.create_solution(api.group, name, body | {"evaluate": False})
        api.engine.train(api.group, name)
    return api


def url(api: Api, kind: str, solution: str = "als") -> str:
    return api.url(f"/solutions/{solution}/embeddings/{kind}")


def test_reader_tokens_get_vectors_in_the_versions_space(trained: Api) -> None:
    reader = bearer(trained.engine.create_token(f"{trained.group}-web", scope="recommend"))
    answer = trained.http.get(url(trained, "items"), params={"ids": "i0,i3"}, headers=reader)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    version = trained.engine.list_solution_versions(trained.group, "als")[0].id
    assert body["solutionVersionId"] == version and body["dimensions"] == 8
    assert body["spaceId"] == f"space-{version.removeprefix('sv-')}"  # the first: a new space
    assert [e["id"] for e in body["embeddings"]] == ["i0", "i3"]
    assert all(len(e["vector"]) == 8 for e in body["embeddings"])
    users = trained.http.get(url(trained, "users"), params={"ids": "u1"}, headers=trained.admin)
    assert users.status_code == 200 and users.json()["embeddings"][0]["id"] == "u1"


def test_ingest_tokens_and_strangers_may_not_read(trained: Api) -> None:
    params = {"ids": "i0"}
    assert trained.http.get(url(trained, "items"), params=params,
                            headers=trained.ingest).status_code == 403  # fmt: skip
    assert trained.http.get(url(trained, "users"), params={"ids": "u0"},
                            headers=trained.ingest).status_code == 403  # fmt: skip
    assert trained.http.get(url(trained, "items"), params=params).status_code == 401


def test_errors_name_the_ids_and_the_recipe(trained: Api) -> None:
    def get(kind: str, ids: str, solution: str = "als") -> tuple[int, str]:
        response = trained.http.get(url(trained, kind, solution), params={"ids": ids},
                                    headers=trained.admin)  # fmt: skip
        return response.status_code, response.json()["error"]["message"]

    status, message = get("items", "i0,nope")
    assert status == 404 and "'nope'" in message and "'i0'" not in message
    status, message = get("users", "who")
    assert status == 404 and "'who'" in message
    status, message = get("items", ",".join(f"x{i}" for i in range(101)))
    assert status == 422 and "at most 100" in message
    status, message = get("items", "x" * 4097)
    assert status == 422 and "4096 characters" in message
    status, message = get("items", "i0", solution="popular")
    assert status == 422 and "has no embeddings" in message
    status, _ = get("items", "i0", solution="missing")
    assert status == 404
    status, message = get("genres", "i0")
    assert status == 422 and "'items' or 'users'" in message
    missing = trained.http.get(url(trained, "items"), headers=trained.admin)
    assert missing.status_code == 422 and "ids" in missing.json()["error"]["message"]
