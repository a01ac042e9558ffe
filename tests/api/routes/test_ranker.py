"""The learned ranker behind the HTTP routes: inputList ordered by the trees, filters applied,
recommendations from its candidates (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tastebud.batch import BatchSpec
from tastebud.recipes.ranker import RankerModel
from tastebud.serving.recommend import user_query
from tests.serving.conftest import write_clustered

from ..conftest import Api

CLUSTER_A = {f"i{i}" for i in range(20)}
PARAMS = {
    "bases": {"next": {"recipe": "similar-items"}, "pop": {"recipe": "popularity-count"}},
    "candidates": 3, "n_estimators": 30, "min_data_in_leaf": 5, "early_stopping_rounds": 0,
    "threads": 1,
}  # fmt: skip


@pytest.fixture
def ranked(api: Api, tmp_path: Path) -> Api:
    """The clustered data (with genres) and a ranker solution trained on it."""
    interactions, items = write_clustered(tmp_path)
    api.engine.put_schema(api.group, "items", {"GENRES": "categorical"})
    api.engine.import_file(api.group, "interactions", interactions, mode="full")
    api.engine.import_file(api.group, "items", items, mode="full")
    body = {"name": "ranked", "recipe": "ranker", "params": PARAMS, "evaluate": False}
    created = api.http.post(api.url("/solutions"), json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    started = api.http.post(api.url("/solutions/ranked/versions"), headers=api.admin)
    job = api.wait_for_job(started.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    return api


def rank(api: Api, **body: object) -> dict[str, object]:
    response = api.http.post(
        api.url("/personalized-ranking"), json={"solution": "ranked", **body}, headers=api.admin
    )
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_input_list_is_ordered_by_the_trees(ranked: Api) -> None:
    listed = [f"i{i}" for i in range(40)] + ["unknown"]
    answer = rank(ranked, userId="u0", inputList=listed)
    results = answer["itemList"]
    assert isinstance(results, list)
    order = [r["itemId"] for r in results]
    assert order[-1] == "unknown" and results[-1]["score"] is None
    assert sorted(order) == sorted(listed)
    scores = [r["score"] for r in results[:-1]]
    assert scores == sorted(scores, reverse=True)
    # every listed item has the trees' own score, not only the few candidates (3 per base)
    version = ranked.engine.recommender.resolve_version(ranked.group, solution="ranked")
    model = version.model
    assert isinstance(model, RankerModel)
    events = [e["itemId"] for e in ranked.events("u0")]
    query = user_query(version, "u0", events)
    indexes = version.items.indices(order[:-1])
    expected = model.score_items(query, indexes)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert len(set(scores)) > 6
    assert len(set(order[:10]) & CLUSTER_A) >= 8  # u0's cluster first


def test_filters_apply_to_the_rankers_answers(ranked: Api) -> None:
    ranked.engine.create_filter(
        ranked.group, "only-b", 'INCLUDE ItemID WHERE Items.GENRES IN ("b")'
    )
    answer = rank(ranked, userId="u0", inputList=["i0", "i1", "i30", "i31"], filterName="only-b")
    assert [r["itemId"] for r in answer["itemList"]] in (["i30", "i31"], ["i31", "i30"])  # type: ignore[union-attr,index]
    response = ranked.http.post(
        ranked.url("/recommendations"),
        json={"solution": "ranked", "userId": "u0", "numResults": 5, "filterName": "only-b"},
        headers=ranked.admin,
    )
    assert response.status_code == 200, response.text
    items = {r["itemId"] for r in response.json()["itemList"]}
    assert len(items) == 5 and not items & CLUSTER_A


def test_recommendations_come_from_the_users_cluster(ranked: Api) -> None:
    response = ranked.http.post(
        ranked.url("/recommendations"),
        json={"solution": "ranked", "userId": "u45", "numResults": 5}, headers=ranked.admin,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    items = [r["itemId"] for r in response.json()["itemList"]]
    seen = {e["itemId"] for e in ranked.events("u45")}
    assert len(items) == 5 and not set(items) & seen
    # the three follow-ups of u45's cluster-B history beat popularity's cluster-A candidates
    assert not set(items[:3]) & CLUSTER_A


def test_input_lists_hold_up_to_a_thousand_items(ranked: Api) -> None:
    listed = [f"x{i}" for i in range(1_000)]
    assert len(rank(ranked, userId="u0", inputList=listed)["itemList"]) == 1_000  # type: ignore[arg-type]
    too_many = ranked.http.post(
        ranked.url("/personalized-ranking"),
        json={"solution": "ranked", "userId": "u0", "inputList": [*listed, "one-more"]},
        headers=ranked.admin,
    )  # fmt: skip
    assert too_many.status_code == 422


def test_batch_ranking_equals_real_time(ranked: Api, tmp_path: Path) -> None:
    listed = [f"i{i}" for i in range(40)] + ["unknown"]
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"userId": "u4", "itemList": listed}) + "\n")
    spec = BatchSpec(group=ranked.group, input=source, output=output, kind="recommend",
                     solution="ranked")  # fmt: skip
    ranked.engine.batch.run(spec)
    line = json.loads(output.read_text().splitlines()[0])
    real = ranked.engine.recommender.rank(
        ranked.group, {"solution": "ranked"}, user_id="u4", item_ids=listed
    )
    assert line["output"]["itemList"] == [r.id for r in real.results]
