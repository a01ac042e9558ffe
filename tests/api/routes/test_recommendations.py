"""Solutions, training and recommendation endpoints over HTTP, with scopes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import write_clustered

from ..conftest import Api, bearer


@pytest.fixture
def trained(api: Api, tmp_path: Path) -> Api:
    """The clustered data imported and a popularity solution trained over HTTP."""
    interactions, _ = write_clustered(tmp_path)
    api.engine.import_file(api.group, "interactions", interactions, mode="full")
    created = api.http.post(
        api.url("/solutions"), json={"name": "popular", "recipe": "popularity-count"},
        headers=api.admin,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    started = api.http.post(api.url("/solutions/popular/versions"), headers=api.admin)
    assert started.status_code == 202, started.text
    assert started.json()["solutionVersion"]["status"] == "training"
    job = api.wait_for_job(started.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    return api


def recommend(api: Api, headers: dict[str, str], **body: Any) -> Any:
    return api.http.post(
        api.url("/recommendations"), json={"solution": "popular", **body}, headers=headers
    )


def test_solution_needs_admin_and_valid_config(api: Api) -> None:
    body = {"name": "p", "recipe": "popularity-count"}
    assert api.http.post(api.url("/solutions"), json=body, headers=api.ingest).status_code == 403
    bad = api.http.post(
        api.url("/solutions"), json={"name": "p", "recipe": "popularity-count",
                                     "params": {"halfLife": 3}}, headers=api.admin,
    )  # fmt: skip
    assert bad.status_code == 422
    assert "halfLife" in bad.json()["error"]["message"]
    unknown = api.http.post(api.url("/solutions"), json={**body, "recipe": "x"}, headers=api.admin)
    assert "unknown recipe 'x'" in unknown.json()["error"]["message"]
    assert api.http.get(api.url("/solutions/p"), headers=api.admin).status_code == 404


def test_version_is_listed_with_metrics(trained: Api) -> None:
    listed = trained.http.get(trained.url("/solutions/popular/versions"), headers=trained.admin)
    (version,) = listed.json()["versions"]
    assert version["status"] == "active" and version["recipe"] == "popularity-count"
    assert version["metrics"]["users"] == 60 and "ndcg@10" in version["metrics"]
    one = trained.http.get(f"/v1/solution-versions/{version['id']}", headers=trained.admin)
    assert one.json() == version


def test_incremental_training_is_refused_without_a_model_to_grow(trained: Api) -> None:
    path = trained.url("/solutions/popular/versions")
    refused = trained.http.post(path, params={"incremental": "true"}, headers=trained.admin)
    assert refused.status_code == 422
    assert "cannot train incrementally" in refused.json()["error"]["message"]
    started = trained.http.post(path, params={"incremental": "true", "fullFallback": "true"},
                                headers=trained.admin)  # fmt: skip
    assert started.status_code == 202, started.text
    trained.wait_for_job(started.json()["job"]["id"])
    made = started.json()["solutionVersion"]["id"]
    version = trained.http.get(f"/v1/solution-versions/{made}", headers=trained.admin).json()
    assert version["status"] == "active"
    assert "popularity-count" in version["incremental"]["fallback"]


def test_recommendations_exclude_the_history_and_follow_new_events(trained: Api) -> None:
    reader = bearer(trained.engine.create_token(f"{trained.group}-web", scope="recommend"))
    answer = recommend(trained, reader, userId="u0", numResults=5).json()
    items = [r["itemId"] for r in answer["itemList"]]
    seen = {e["itemId"] for e in trained.events("u0")}
    assert len(items) == 5 and not seen & set(items)
    assert answer["recommendationId"] and answer["solutionVersionId"].startswith("sv-")
    scores = [r["score"] for r in answer["itemList"]]
    assert scores == sorted(scores, reverse=True)

    event = {"userId": "u0", "eventList": [{"itemId": items[0], "eventType": "click"}]}
    assert trained.http.post(trained.url("/events"), json=event, headers=reader).status_code == 200
    after = recommend(trained, reader, userId="u0", numResults=5).json()
    assert items[0] not in [r["itemId"] for r in after["itemList"]]


def test_recommendation_errors(trained: Api) -> None:
    assert recommend(trained, trained.ingest, userId="u0").status_code == 403
    assert recommend(trained, trained.admin, userId="u0", numResults=501).status_code == 422
    missing = trained.http.post(
        trained.url("/recommendations"), json={"solution": "nope", "userId": "u0"},
        headers=trained.admin,
    )  # fmt: skip
    assert missing.status_code == 404
    wrong = trained.http.post(
        trained.url("/similar-items"), json={"solution": "popular", "itemId": "i1"},
        headers=trained.admin,
    )  # fmt: skip
    assert wrong.status_code == 422
    assert "does not answer similar items" in wrong.json()["error"]["message"]


def test_untrained_solution_answers_503(api: Api) -> None:
    api.http.post(
        api.url("/solutions"), json={"name": "later", "recipe": "popularity-count"},
        headers=api.admin,
    )  # fmt: skip
    response = api.http.post(
        api.url("/recommendations"), json={"solution": "later", "userId": "u0"},
        headers=api.admin,
    )  # fmt: skip
    assert response.status_code == 503


def test_personalized_ranking_keeps_unknown_items_last(trained: Api) -> None:
    body = {"solution": "popular", "userId": "u0", "inputList": ["zzz", "i19", "i0", "i5"]}
    answer = trained.http.post(
        trained.url("/personalized-ranking"), json=body, headers=trained.admin
    ).json()
    ranked = answer["itemList"]
    assert [r["itemId"] for r in ranked][-1] == "zzz" and ranked[-1]["score"] is None
    assert {r["itemId"] for r in ranked} == {"zzz", "i19", "i0", "i5"}
    known = [r["score"] for r in ranked[:-1]]
    assert known == sorted(known, reverse=True)


def test_similar_items_users_and_segments_over_http(api: Api, tmp_path: Path) -> None:
    interactions, _ = write_clustered(tmp_path)
    api.engine.import_file(api.group, "interactions", interactions, mode="full")
    for name, recipe in (("like", "similar-items"), ("people", "similar-users"),
                         ("affinity", "item-affinity")):  # fmt: skip
        api.engine.create_solution(api.group, name, {"recipe": recipe, "evaluate": False})
        api.engine.train(api.group, name)
    reader = bearer(api.engine.create_token(f"{api.group}-reader", scope="recommend"))

    def ask(path: str, **body: Any) -> Any:
        response = api.http.post(api.url(path), json=body, headers=reader)
        assert response.status_code == 200, response.text
        return response.json()

    like = ask("/similar-items", solution="like", itemId="i2", numResults=3)
    assert len(like["itemList"]) == 3 and "i2" not in {r["itemId"] for r in like["itemList"]}
    people = ask("/similar-users", solution="people", userId="u1", numResults=3)
    assert [set(r) for r in people["userList"]] == [{"userId", "score"}] * 3
    segment = ask("/users-for-item", solution="affinity", attribute=None, itemId="i30")
    assert len(segment["userList"]) == 60 and segment["recommendationId"].startswith("seg-")


def test_explain_adds_reasons_only_when_asked(trained: Api) -> None:
    api = trained
    api.engine.create_solution(api.group, "for-you", {"recipe": "user-personalization",
                               "evaluate": False, "params": {"algorithm": "ease"}})  # fmt: skip
    api.engine.train(api.group, "for-you")
    body = {"solution": "for-you", "userId": "u3", "numResults": 3}
    plain = api.http.post(api.url("/recommendations"), json=body, headers=api.admin)
    assert plain.status_code == 200, plain.text
    assert all(set(item) == {"itemId", "score"} for item in plain.json()["itemList"])
    explained = api.http.post(api.url("/recommendations"), json=body | {"explain": True},
                              headers=api.admin)  # fmt: skip
    assert explained.status_code == 200, explained.text
    items = explained.json()["itemList"]
    assert [i["itemId"] for i in items] == [i["itemId"] for i in plain.json()["itemList"]]
    history = {e["itemId"] for e in api.events("u3")}
    for item in items:
        first = item["reasons"][0]
        assert set(first) == {"kind", "text", "itemId", "share"} and first["kind"] == "history"
        assert first["itemId"] in history and 0 < first["share"] <= 1
    body = {"solution": "for-you", "userId": "u3", "inputList": ["i15", "nope"], "explain": True}
    ranked = api.http.post(api.url("/personalized-ranking"), json=body, headers=api.admin)
    first, unknown = ranked.json()["itemList"]
    assert first["reasons"][0]["kind"] == "history" and unknown["reasons"] == []
    popular = recommend(api, api.admin, userId="u3", numResults=2, explain=True).json()
    assert [r["kind"] for i in popular["itemList"] for r in i["reasons"]] == ["popularity"] * 2
