"""Campaign endpoints over HTTP: scopes, deployment, answers, bad input, a switch under load."""

from __future__ import annotations

import asyncio
import shutil
import threading
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tastebud.api.app import create_app
from tastebud.settings import ApiSettings
from tests.api.routes.test_recommendations import trained  # noqa: F401 (fixture)
from tests.serving.test_precomputed import REDIS_URL, prefix, write  # noqa: F401 (fixture)

from ..conftest import Api, bearer
from ..servers import server_thread


def deploy(api: Api, **body: Any) -> Any:
    body = {"name": "home", "solution": "popular", "config": {"minInteractions": 0}} | body
    return api.http.post(api.url("/campaigns"), json=body, headers=api.admin)


def ask(api: Api, headers: dict[str, str] | None = None, name: str = "home", **body: Any) -> Any:
    return api.http.post(
        api.url(f"/campaigns/{name}/recommendations"),
        json=body,
        headers=api.admin if headers is None else headers,
    )


def test_deploy_describe_and_answer(trained: Api) -> None:  # noqa: F811
    api = trained
    created = deploy(api)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["deployed"] == "latest" and body["source"] == "model"
    assert body["solutionVersionId"].startswith("sv-")
    assert body["config"]["min_interactions"] == 0

    answer = ask(api, userId="u1", numResults=5)
    assert answer.status_code == 200, answer.text
    payload = answer.json()
    assert payload["campaign"] == "home" and payload["source"] == "model"
    assert len(payload["itemList"]) == 5 and payload["recommendationId"].startswith("rec-")
    assert ask(api, userId="u1", numResults=5).json()["cache"] == "hit"

    listed = api.http.get(api.url("/campaigns"), headers=api.admin).json()["campaigns"]
    assert [c["name"] for c in listed] == ["home"]


def test_scopes(trained: Api) -> None:  # noqa: F811
    api = trained
    assert deploy(api).status_code == 201
    reader = bearer(api.engine.create_token(f"{api.group}-reader", scope="recommend"))
    assert ask(api, reader, userId="u1").status_code == 200
    assert ask(api, api.ingest, userId="u1").status_code == 403
    assert deploy(api, name="other", replace=True).status_code == 201
    denied = api.http.post(api.url("/campaigns"), json={"name": "x", "solution": "popular"},
                           headers=reader)  # fmt: skip
    assert denied.status_code == 403
    assert api.http.delete(api.url("/campaigns/home"), headers=api.ingest).status_code == 403
    assert ask(api, {}, userId="u1").status_code == 401


def test_update_rollback_delete(trained: Api) -> None:  # noqa: F811
    api = trained
    first = api.engine.list_solution_versions(api.group, "popular")[0].id
    assert deploy(api, solutionVersionId=first).status_code == 201
    second = api.engine.train(api.group, "popular").id
    patched = api.http.patch(api.url("/campaigns/home"), json={"solutionVersionId": second},
                             headers=api.admin)  # fmt: skip
    assert patched.status_code == 200, patched.text
    assert (patched.json()["deployed"], patched.json()["previous"]) == (second, first)
    rolled = api.http.post(api.url("/campaigns/home/rollback"), headers=api.admin)
    assert rolled.json()["solutionVersionId"] == first
    assert ask(api, userId="u1").json()["solutionVersionId"] == first
    assert api.http.delete(api.url("/campaigns/home"), headers=api.admin).status_code == 204
    gone = ask(api, userId="u1")
    assert gone.status_code == 404 and "campaign 'home'" in gone.text


def test_bad_input_is_named(trained: Api) -> None:  # noqa: F811
    api = trained
    assert deploy(api, solution="nope").status_code == 404
    bad_ttl = deploy(api, config={"cacheTtlSeconds": -5})
    assert bad_ttl.status_code == 422 and "cacheTtlSeconds" in bad_ttl.text
    assert deploy(api, solutionVersionId="sv-missing").status_code == 404
    assert deploy(api).status_code == 201
    assert deploy(api).status_code == 409
    zero = ask(api, userId="u1", promotions=[
        {"name": "p", "percentPromotedItems": 0, "filterName": "f"}])  # fmt: skip
    assert zero.status_code == 422 and "percentPromotedItems" in zero.text
    unknown = ask(api, userId="u1", promotions=[
        {"name": "p", "percentPromotedItems": 20, "filterName": "f"}])  # fmt: skip
    assert unknown.status_code == 404 and "filter 'f'" in unknown.text
    assert ask(api, userId="u1", numResults=501).status_code == 422
    assert ask(api, userId="u1", context={"DEVICE": "tv"}).status_code == 200
    crowded = ask(api, userId="u1", context={f"K{n}": "v" for n in range(17)})
    assert crowded.status_code == 422 and "context" in crowded.text
    assert ask(api, userId="u1", bogus=1).status_code == 422
    assert ask(api, name="nope", userId="u1").status_code == 404


def test_switching_versions_under_requests_fails_none(trained: Api) -> None:  # noqa: F811
    api = trained
    versions = [api.engine.list_solution_versions(api.group, "popular")[0].id,
                api.engine.train(api.group, "popular").id]  # fmt: skip
    deploy(api, solutionVersionId=versions[0], config={"minInteractions": 0, "cacheTtlSeconds": 0})
    statuses: list[int] = []
    served: set[str] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            response = ask(api, userId="u1", numResults=5)
            statuses.append(response.status_code)
            if response.status_code == 200:
                served.add(response.json()["solutionVersionId"])

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for worker in workers:
        worker.start()
    for version in versions[1:] + versions[:1] + versions[1:]:
        switched = api.http.patch(api.url("/campaigns/home"), json={"solutionVersionId": version},
                                  headers=api.admin)  # fmt: skip
        assert switched.status_code == 200
    stop.set()
    for worker in workers:
        worker.join()
    assert statuses and set(statuses) == {200}
    assert served <= set(versions)
    assert ask(api, userId="u1").json()["solutionVersionId"] == versions[1]


def test_explain_adds_reasons_only_when_asked(trained: Api) -> None:  # noqa: F811
    api = trained
    assert deploy(api).status_code == 201
    plain = ask(api, userId="u1", numResults=3).json()
    assert all(set(item) == {"itemId", "score"} for item in plain["itemList"])
    explained = ask(api, userId="u1", numResults=3, explain=True).json()
    assert explained["cache"] == "miss"  # another cache entry than the plain answer
    assert [i["itemId"] for i in explained["itemList"]] == [i["itemId"] for i in plain["itemList"]]
    for item in explained["itemList"]:
        assert [r["kind"] for r in item["reasons"]] == ["popularity"]
    body = {"userId": "u1", "inputList": ["i3", "i1"], "explain": True}
    ranked = api.http.post(api.url("/campaigns/home/personalized-ranking"), json=body,
                           headers=api.admin)  # fmt: skip
    assert all(item["reasons"] for item in ranked.json()["itemList"])


def test_precomputed_source_over_http(trained: Api, prefix: str) -> None:  # noqa: F811
    api = trained
    config = {"minInteractions": 0, "precomputed": {"url": REDIS_URL, "keyPrefix": prefix}}
    created = deploy(api, config=config)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["precomputed"] == {
        "url": REDIS_URL, "key_prefix": prefix, "overload_share": 0.8}  # fmt: skip
    bad = deploy(api, name="bad", config={"precomputed": {"url": "http://nope:1/0"}})
    assert bad.status_code == 422 and "http://nope:1/0" in bad.text
    extra = deploy(api, name="bad", config={"precomputed": {"url": REDIS_URL, "ttl": 5}})
    assert extra.status_code == 422 and "ttl" in extra.text

    def patch(config: dict[str, Any]) -> Any:
        return api.http.patch(api.url("/campaigns/home"), json={"config": config},
                              headers=api.admin)  # fmt: skip

    removed = patch({"precomputed": None})
    assert removed.status_code == 200 and removed.json()["config"]["precomputed"] is None
    assert patch(config).json()["config"]["precomputed"]["key_prefix"] == prefix
    kept = patch({"cacheTtlSeconds": 5})  # other settings change, the precomputed source stays
    assert kept.json()["config"]["precomputed"]["key_prefix"] == prefix

    version = created.json()["solutionVersionId"]
    write(prefix, {"u1": ["i39", "i38", "i37"]}, version=version)  # unseen by u1
    shutil.rmtree(api.engine.settings.artifacts / version)
    api.engine.recommender.forget_loaded()  # as a worker that had not loaded it yet
    answer = ask(api, userId="u1", numResults=2)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["source"], body["solutionVersionId"], body["cache"]) == (
        "precomputed", version, "off")  # fmt: skip
    assert [i["itemId"] for i in body["itemList"]] == ["i39", "i38"]
    metrics = api.http.get("/metrics", headers=api.admin).text
    assert ('tastebud_campaign_fallbacks_total{campaign="home",reason="load_error",'
            'source="precomputed"}') in metrics  # fmt: skip
    shown = api.http.get(api.url("/campaigns/home"), headers=api.admin)
    assert shown.status_code == 200 and shown.json()["source"] == "precomputed"

    api.engine.update_campaign(api.group, "home", config={"precomputed": None})
    gone = ask(api, userId="u1", numResults=2)
    assert gone.status_code == 404 and "has no artifacts" in gone.text  # the error as before


def test_the_fast_path_answers_as_the_route(trained: Api) -> None:  # noqa: F811
    """Once a token is verified, answers skip FastAPI (api/routes/campaigns.py): a cached one
    is sent from the event loop without the engine computing anything; errors read the same."""
    api = trained
    assert deploy(api).status_code == 201
    first = ask(api, userId="u1", numResults=5)  # the admin token is verified (and remembered)
    assert first.status_code == 200 and first.json()["cache"] == "miss"
    computed: list[str] = []  # the threads that computed answers
    answer = api.engine.campaign_answer
    api.engine.campaign_answer = (  # type: ignore[method-assign]
        lambda *a, **k: computed.append(threading.current_thread().name) or answer(*a, **k)
    )
    try:
        hit = ask(api, userId="u1", numResults=5)
        assert hit.status_code == 200 and hit.headers["content-type"] == "application/json"
        assert hit.json() == {**first.json(), "cache": "hit"} and computed == []
        other = ask(api, userId="u2", numResults=5)
        assert other.json()["cache"] == "miss"
        assert len(computed) == 1 and computed[0] != threading.main_thread().name
    finally:
        del api.engine.campaign_answer
    # the ingest token verified by an event first: the route still refuses it, as before
    click = {"itemId": "i1", "eventType": "click", "sentAt": 1_700_000_000}
    sent = api.http.post(api.url("/events"), headers=api.ingest,
                         json={"userId": "u1", "eventList": [click]})  # fmt: skip
    assert sent.status_code == 200, sent.text
    refused = ask(api, api.ingest, userId="u1")
    assert refused.status_code == 403 and "'recommend' or 'admin'" in refused.text
    bad = ask(api, userId="u1", numResults=0)
    assert bad.status_code == 422 and bad.json()["error"]["type"] == "InvalidInput"
    assert "numResults" in bad.text
    missing = ask(api, name="nope", userId="u1")
    assert missing.status_code == 404 and "campaign 'nope'" in missing.text
    metrics = api.http.get("/metrics", headers=api.admin).text
    route = 'route="/v1/dataset-groups/{group}/campaigns/{name}/recommendations"'
    assert route in metrics and 'route="(unmatched)"' not in metrics


def test_the_fast_path_ranks_an_input_list_as_the_route(trained: Api) -> None:  # noqa: F811
    """personalized-ranking skips FastAPI too: a cached ranking is sent without the engine
    being asked, another is computed on a worker thread; bad bodies and unknown campaigns get
    the route's errors, and metrics name the route."""
    api = trained
    assert deploy(api).status_code == 201

    def rank(name: str = "home", **body: Any) -> Any:
        return api.http.post(api.url(f"/campaigns/{name}/personalized-ranking"), json=body,
                             headers=api.admin)  # fmt: skip

    listed = ["i3", "nope", "i1", "i2"]
    first = rank(userId="u1", inputList=listed)
    assert first.status_code == 200 and first.json()["cache"] == "miss", first.text
    order = [item["itemId"] for item in first.json()["itemList"]]
    assert sorted(order) == sorted(listed) and order[-1] == "nope"  # unknown items last
    computed: list[str] = []
    answer = api.engine.campaign_answer
    api.engine.campaign_answer = (  # type: ignore[method-assign]
        lambda *a, **k: computed.append(threading.current_thread().name) or answer(*a, **k)
    )
    try:
        hit = rank(userId="u1", inputList=listed)
        assert hit.json() == {**first.json(), "cache": "hit"} and computed == []
        other = rank(userId="u2", inputList=listed)
        assert other.status_code == 200 and other.json()["cache"] == "miss"
        assert len(computed) == 1 and computed[0] != threading.main_thread().name
    finally:
        del api.engine.campaign_answer
    empty = rank(userId="u1", inputList=[])
    assert empty.status_code == 422 and "inputList" in empty.text
    missing = rank(name="nope", userId="u1", inputList=listed)
    assert missing.status_code == 404 and "campaign 'nope'" in missing.text
    metrics = api.http.get("/metrics", headers=api.admin).text
    assert 'route="/v1/dataset-groups/{group}/campaigns/{name}/personalized-ranking"' in metrics


def one_answer_thread_app(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> tuple[FastAPI, threading.Event, threading.Event]:
    """The "home" campaign deployed, an app with one answer thread and one waiting place, and
    (release, computing): answers are computed only while ``release`` is set, and each sets
    ``computing`` when it starts."""
    assert deploy(api).status_code == 201
    settings = api.engine.settings.model_copy(
        update={"api": ApiSettings(answer_threads=1, max_waiting_answers=1)}
    )
    release, computing = threading.Event(), threading.Event()
    answer = api.engine.campaign_answer

    def gated(*args: Any, **kwargs: Any) -> Any:
        computing.set()
        release.wait(10)
        return answer(*args, **kwargs)

    monkeypatch.setattr(api.engine, "campaign_answer", gated)
    return create_app(settings, engine=api.engine), release, computing


def test_answers_beyond_the_waiting_limit_get_503_at_once(
    trained: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = trained
    app, release, computing = one_answer_thread_app(api, monkeypatch)
    with server_thread(app) as url:
        asyncio.run(_crowd(url, api, release, computing))


async def _crowd(url: str, api: Api, release: threading.Event, computing: threading.Event) -> None:
    path = api.url("/campaigns/home/recommendations")
    async with httpx.AsyncClient(base_url=url, headers=api.admin, timeout=10) as client:
        # The token verified once: the next asks take the fast path, where the limit applies.
        assert (await client.get(api.url("/campaigns"))).status_code == 200
        running = asyncio.create_task(client.post(path, json={"userId": "u1"}))
        while not computing.is_set():  # the one thread is taken
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(client.post(path, json={"userId": "u2"}))
        await asyncio.sleep(0.1)  # u2 waits for the thread
        refused = await client.post(path, json={"userId": "u3"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "Overloaded"
        assert refused.headers["retry-after"] == "1"
        release.set()
        assert [(await t).status_code for t in (running, waiting)] == [200, 200]
        assert (await client.post(path, json={"userId": "u3"})).status_code == 200
