"""Experiments and metric attributions over HTTP (scopes, lifecycle, answers, reports, bad
input) and through the Python SDK, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tastebud.client import Client
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tests.experiments.conftest import campaigns  # noqa: F401 (fixture)

from ..conftest import Api, bearer

ARMS = [{"name": "control", "campaign": "rules-a", "weight": 50},
        {"name": "treatment", "campaign": "rules-b", "weight": 50}]  # fmt: skip


@pytest.fixture
def ready(api: Api, campaigns: Engine) -> Api:  # noqa: F811
    return api


def post(api: Api, suffix: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    return api.http.post(api.url(suffix), json=body, headers=headers or api.admin)


def test_lifecycle_answers_and_report(ready: Api) -> None:
    api = ready
    created = post(api, "/experiments", {"name": "ab", "arms": ARMS, "metric": "buy",
                                         "attributionWindow": "1h"})  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "draft" and created.json()["control"] == "control"
    reader = bearer(api.engine.create_token(f"{api.group}-reader", scope="recommend"))
    draft = post(api, "/experiments/ab/recommendations", {"userId": "u1"}, reader)
    assert draft.status_code == 200 and draft.json()["exposed"] is False

    assert post(api, "/experiments/ab/start").json()["state"] == "running"
    answers = [post(api, "/experiments/ab/recommendations", {"userId": f"u{i}", "numResults": 2},
                    reader).json() for i in range(40)]  # fmt: skip
    assert {a["arm"] for a in answers} == {"control", "treatment"}
    assert all(a["experiment"] == "ab" and a["recommendationId"].startswith("rec-")
               and len(a["itemList"]) == 2 for a in answers)  # fmt: skip
    for index, a in enumerate(answers[:10]):  # user u{index} asked for answers[index]
        event = {"userId": f"u{index}",
                 "eventList": [{"itemId": a["itemList"][0]["itemId"], "eventType": "buy",
                                "recommendationId": a["recommendationId"],
                                "sentAt": time.time() + 5}]}  # fmt: skip
        assert post(api, "/events", event, reader).status_code == 200

    report = api.http.get(api.url("/experiments/ab/report"), headers=api.admin)
    assert report.status_code == 200, report.text
    body = report.json()
    assert sum(arm["users"] for arm in body["arms"]) == 40
    assert sum(arm["conversions"] for arm in body["arms"]) == 10
    assert body["attributed_events"]["by_recommendation_id"] == 10
    assert "sample_ratio" in body and "cuped" in body
    no_cuped = api.http.get(api.url("/experiments/ab/report?cuped=false"), headers=api.admin)
    assert "cuped" not in no_cuped.json()

    assert post(api, "/experiments/ab/stop").json()["state"] == "stopped"
    listed = api.http.get(api.url("/experiments"), headers=api.admin).json()
    assert [e["name"] for e in listed] == ["ab"]
    assert api.http.delete(api.url("/experiments/ab"), headers=api.admin).status_code == 204
    assert api.http.get(api.url("/experiments/ab"), headers=api.admin).status_code == 404


def test_scopes_and_bad_input(ready: Api) -> None:
    api = ready
    body = {"name": "ab", "arms": ARMS}
    reader = bearer(api.engine.create_token(f"{api.group}-reader", scope="recommend"))
    assert post(api, "/experiments", body, reader).status_code == 403
    assert post(api, "/experiments", body, api.ingest).status_code == 403
    bad = post(api, "/experiments", body | {"arms": ARMS[:1]})
    assert bad.status_code == 422 and "at least 2 arms" in bad.text
    bad = post(api, "/experiments", body | {"arms": [ARMS[0], ARMS[1] | {"weight": 10}]})
    assert bad.status_code == 422 and "sum to 100" in bad.text
    missing = post(api, "/experiments", body | {"arms": [ARMS[0], ARMS[1] | {"campaign": "x"}]})
    assert missing.status_code == 404 and "campaign 'x'" in missing.text
    window = post(api, "/experiments", body | {"attributionWindow": "a while"})
    assert window.status_code == 422 and "attribution_window" in window.text
    assert post(api, "/experiments", body).status_code == 201
    assert post(api, "/experiments", body).status_code == 409
    assert post(api, "/experiments/ab/stop").status_code == 422
    anonymous = post(api, "/experiments/ab/recommendations", {}, reader)
    assert anonymous.status_code == 422 and "userId" in anonymous.text
    ingest = post(api, "/experiments/ab/recommendations", {"userId": "u1"}, api.ingest)
    assert ingest.status_code == 403
    unknown = post(api, "/experiments/nope/recommendations", {"userId": "u1"}, reader)
    assert unknown.status_code == 404 and "experiment 'nope'" in unknown.text

    metric = post(api, "/metric-attributions", {"name": "rev", "eventType": "buy",
                                                "expression": "SUM(Items.COLOR)"})  # fmt: skip
    assert metric.status_code == 422 and "Items.COLOR" in metric.text
    assert post(api, "/metric-attributions", {"name": "rev", "eventType": "buy",
                                              "expression": "SUM(Items.PRICE)"},
                reader).status_code == 403  # fmt: skip


def bought(answer: Any) -> dict[str, Any]:
    """A purchase of the answer's first item, carrying its recommendation id."""
    return {"itemId": answer["itemList"][0]["itemId"], "eventType": "buy",
            "recommendationId": answer["recommendationId"]}  # fmt: skip


def test_sdk(ready: Api) -> None:
    api = ready
    token = api.admin["Authorization"].removeprefix("Bearer ")
    with Client("http://testserver", token=token, group=api.group,
                transport=api.http._transport) as client:  # fmt: skip
        created = client.create_experiment(
            "ab", {"control": ("rules-a", 50), "treatment": ("rules-b", 50)}, metric="buy",
            attribution_window="30m",
        )  # fmt: skip
        assert created["attribution_window_seconds"] == 1_800
        with pytest.raises(InvalidInput, match="sum to 100"):
            client.create_experiment("x", {"a": ("rules-a", 50), "b": ("rules-b", 51)})
        assert client.start_experiment("ab")["state"] == "running"
        answer = client.experiment_recommend("ab", "u7", num_results=3)
        assert answer["arm"] == api.engine.experiments.arm_for("ab", "u7", group=api.group)
        client.put_events([bought(answer)], user_id="u7")
        report = client.experiment_report("ab")
        assert sum(a["conversions"] for a in report["arms"]) == 1
        assert [e["name"] for e in client.list_experiments()] == ["ab"]
        assert client.get_experiment("ab")["state"] == "running"
        assert client.stop_experiment("ab")["state"] == "stopped"

        metric = client.create_metric_attribution("buys", event_type="buy",
                                                  expression="SAMPLECOUNT()")  # fmt: skip
        assert metric["expression"] == "SAMPLECOUNT()"
        served = client.campaign_recommend("rules-b", "u8", num_results=2)
        client.put_events([bought(served)], user_id="u8")
        counted = client.metric_attribution_report("buys")
        assert counted["by_campaign"] == {"rules-b": {"events": 1, "value": 1.0}}
        assert [m["name"] for m in client.list_metric_attributions()] == ["buys"]
        client.delete_metric_attribution("buys")
        client.delete_experiment("ab")
        with pytest.raises(NotFound):
            client.get_experiment("ab")
