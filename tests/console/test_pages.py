"""Each console page over a real engine (SQLite and PostgreSQL), through the app's test client:
what it shows comes from the same services as the API's answers."""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path

from tastebud.api.routes.solutions import version_out
from tastebud.ingest import PutEventsRequest
from tastebud.serving.campaigns import CampaignRequest
from tastebud.serving.versions import version_folder
from tests.console.conftest import HX, Console


def wait_for_jobs(console: Console, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(j.status in ("queued", "running") for j in console.engine.list_jobs(console.group)):
        assert time.monotonic() < deadline, "jobs still running"
        time.sleep(0.05)


def test_overview_shows_counts_and_jobs(loaded: Console) -> None:
    page = loaded.http.get(loaded.url())
    assert page.status_code == 200
    counts = loaded.engine.counts(loaded.group)
    assert f'id="count-interactions">{counts["interactions"]:,}<' in page.text
    assert f'id="count-items">{counts["items"]}<' in page.text
    assert f">{loaded.group}</a>" in page.text
    loaded.engine.start_training(loaded.group, "popular")
    wait_for_jobs(loaded)
    live = loaded.http.get(loaded.url("live"))
    assert 'hx-trigger="every 2s"' in live.text and "training popular" in live.text
    assert 'class="badge succeeded"' in live.text and "100%" in live.text


def test_upload_an_import_and_see_its_counts_and_rejects(console: Console, tmp_path: Path) -> None:
    rows = ["USER_ID,ITEM_ID,TIMESTAMP"] + [f"u{n},i{n},{1_700_000_000 + n}" for n in range(9)]
    rows.append("u9,i9,not-a-time")  # rejected: one row in ten is within the budget
    started = console.http.post(
        console.url("imports/upload?dataset=interactions&mode=full&filename=events.csv"),
        content="\n".join(rows) + "\n",
        headers=HX,
    )
    assert started.status_code == 202, started.text
    wait_for_jobs(console)
    table = console.http.get(console.url("imports"), headers=HX).text
    assert re.search(r'class="accepted">9<.*class="rejected">1<', table), table
    link = re.search(r'href="(/console/groups/[^"]+/rejects)"', table)
    assert link is not None
    rejects = console.http.get(link.group(1))
    assert rejects.status_code == 200 and "not-a-time" in rejects.text
    assert console.engine.counts(console.group)["interactions"] == 9


def test_an_upload_with_a_bad_name_says_so(console: Console) -> None:
    refused = console.http.post(
        console.url("imports/upload?dataset=interactions&filename=x.txt"),
        content="a,b\n",
        headers=HX,
    )
    assert refused.status_code == 422 and "the name must end with" in refused.text


def test_data_page_shows_schemas_and_a_users_events(loaded: Console) -> None:
    page = loaded.http.get(loaded.url("data?user=u1"))
    assert '<td class="mono">TITLE</td><td>textual</td>' in page.text
    events = loaded.engine.recent_events(loaded.group, "u1", 100)
    assert page.text.count('<td class="mono">i') >= min(len(events), 20) > 0


def test_solution_page_trains_and_shows_metrics(loaded: Console) -> None:
    page = loaded.http.get(loaded.url("solutions/popular"))
    assert page.status_code == 200 and 'id="hyperparameters"' in page.text
    trained = loaded.http.post(loaded.url("solutions/popular/train"), headers=HX)
    assert trained.status_code == 202 and "Training…" in trained.text
    wait_for_jobs(loaded)
    versions = loaded.engine.list_solution_versions(loaded.group, "popular")
    assert len(versions) == 2 and all(v.status == "active" for v in versions)
    shown = loaded.http.get(loaded.url("solutions/popular/versions"), headers=HX).text
    ndcg = version_out(versions[0])["metrics"]["ndcg@10"]  # type: ignore[index]
    assert f'<td class="num ndcg">{ndcg:.4f}</td>' in shown
    assert 'id="versions-chart"' in shown and "version (oldest first)" in shown
    listing = loaded.http.get(loaded.url("solutions")).text
    assert "popularity-count" in listing and f"{ndcg:.4f}" in listing


def test_a_sequential_versions_training_curve_is_charted(loaded: Console) -> None:
    engine, group = loaded.engine, loaded.group
    params = {"epochs": 3, "hidden": 16, "max_len": 8, "batch_size": 16, "validation_users": 8}
    engine.create_solution(group, "next", {"recipe": "sequential", "params": params})
    engine.train(group, "next")
    (version,) = engine.list_solution_versions(group, "next")
    model = version_folder(engine.settings.artifacts, version.id) / "model" / "model.json"
    recorded = json.loads(model.read_text())["training"]["curve"]
    assert len(recorded) == 3
    page = loaded.http.get(loaded.url("solutions/next")).text
    chart = re.search(r"id=\"curve-chart\" data-chart='([^']+)'", page)
    assert chart is not None, "no training curve on the page"
    spec = json.loads(html.unescape(chart.group(1)))
    assert spec["x"] == [epoch["epoch"] for epoch in recorded]
    assert spec["series"]["loss"] == [epoch["loss"] for epoch in recorded]
    assert spec["series"]["validation NDCG@10"] == [epoch["ndcg"] for epoch in recorded]
    popular = loaded.http.get(loaded.url("solutions/popular")).text
    assert "records no training curve" in popular and 'id="curve-chart"' not in popular


def test_try_it_answers_with_titles_and_reacts_to_an_event(loaded: Console) -> None:
    ask = {"target": "campaign", "name": "home", "user_id": "u1", "k": "5", "explain": "1"}
    first = loaded.http.post(loaded.url("try/answer"), data=ask, headers=HX)
    assert first.status_code == 200, first.text
    top = re.findall(r'<tr data-item="([^"]+)">', first.text)
    assert len(top) == 5 and f"Title of {top[0]}" in first.text
    assert 'id="source">model<' in first.text and '<ul class="reasons">' in first.text
    sent = loaded.http.post(
        loaded.url("try/event"),
        headers=HX,
        data=ask | {"event_item_id": top[0], "event_type": "click"},
    )
    assert sent.status_code == 200 and 'id="sent"' in sent.text
    after = re.findall(r'<tr data-item="([^"]+)">', sent.text)
    assert top[0] not in after  # seen now: excluded from the next answer
    solution = loaded.http.post(
        loaded.url("try/answer"), headers=HX, data=ask | {"target": "solution", "name": "popular"}
    )
    assert top[0] not in re.findall(r'<tr data-item="([^"]+)">', solution.text)


def test_try_it_names_what_is_wrong(loaded: Console) -> None:
    missing = loaded.http.post(
        loaded.url("try/answer"), headers=HX, data={"target": "campaign", "name": "home"}
    )
    assert missing.status_code == 422 and "give a user, an item or both" in missing.text
    unknown = loaded.http.post(
        loaded.url("try/answer"),
        headers=HX,
        data={"target": "campaign", "name": "nope", "user_id": "u1"},
    )
    assert unknown.status_code == 404 and "nope" in unknown.text


def test_filters_validate_save_and_try(loaded: Console) -> None:
    bad = loaded.http.post(
        loaded.url("filters/validate"),
        headers=HX,
        data={"expression": "EXCLUDE ItemID WHERE Items.NOPE IN (1)"},
    )
    assert bad.status_code == 422 and "NOPE" in bad.text
    expression = "INCLUDE ItemID WHERE Items.GENRES IN ($GENRES)"
    good = loaded.http.post(
        loaded.url("filters/validate"), headers=HX, data={"expression": expression}
    )
    assert good.status_code == 200 and "valid:" in good.text and "$GENRES" in good.text
    saved = loaded.http.post(
        loaded.url("filters"), headers=HX, data={"name": "genre", "expression": expression}
    )
    assert saved.status_code == 201 and 'data-filter="genre"' in saved.text
    tried = loaded.http.post(
        loaded.url("try/answer"),
        headers=HX,
        data={
            "target": "campaign",
            "name": "home",
            "user_id": "u1",
            "filter": "genre",
            "filter_values": "GENRES=b",
        },
    )
    items = [int(i[1:]) for i in re.findall(r'<tr data-item="([^"]+)">', tried.text)]
    assert items and all(i >= 20 for i in items)  # genre b: the second half of the items


def test_campaigns_switch_and_roll_back(loaded: Console) -> None:
    engine, group = loaded.engine, loaded.group
    engine.train(group, "popular")
    older, newer = (v.id for v in reversed(engine.list_solution_versions(group, "popular")))
    switched = loaded.http.post(
        loaded.url("campaigns/home/deploy"), headers=HX, data={"version": older}
    )
    assert switched.status_code == 200 and f"home now deploys {older}" in switched.text
    assert engine.get_campaign(group, "home").deployed == older
    back = loaded.http.post(loaded.url("campaigns/home/rollback"), headers=HX)
    assert back.status_code == 200 and "home rolled back to latest" in back.text
    assert engine.get_campaign(group, "home").deployed == "latest"
    loaded.http.post(
        f"/v1/dataset-groups/{group}/campaigns/home/recommendations",
        json={"userId": "u1"},
        headers={"Authorization": f"Bearer {loaded.admin_token}"},
    )
    page = loaded.http.get(loaded.url("campaigns")).text
    assert f'<span class="mono version">{newer}</span>' in page
    assert 'id="hit-rate">' in page and "/recommendations" in page  # latency from /metrics


def test_a_rollback_without_a_previous_deployment_says_so(loaded: Console) -> None:
    refused = loaded.http.post(loaded.url("campaigns/home/rollback"), headers=HX)
    assert refused.status_code == 422 and "no previous deployment" in refused.text


def test_experiments_list_and_report(loaded: Console) -> None:
    engine, group = loaded.engine, loaded.group
    engine.create_campaign(group, "other", "popular", config={"min_interactions": 0})
    arms = [
        {"name": "control", "campaign": "home", "weight": 50},
        {"name": "treatment", "campaign": "other", "weight": 50},
    ]
    engine.experiments.create(group, "ab", arms, metric="click", attribution_window="1h")
    engine.experiments.start(group, "ab")
    listing = loaded.http.get(loaded.url("experiments")).text
    assert ">ab</a>" in listing and "running" in listing
    for user in range(60):  # every user answered; the treatment's users click more
        answer = engine.experiments.recommend(group, "ab", CampaignRequest(user_id=f"u{user}"))
        if user % 3 == 0 or (answer["arm"] == "treatment" and user % 2 == 0):
            item = answer["itemList"][0]["itemId"]
            event = {"itemId": item, "eventType": "click", "sentAt": time.time()}
            engine.put_events(group, PutEventsRequest.model_validate(
                {"userId": f"u{user}", "eventList": [event]}))  # fmt: skip
    report = engine.experiments.report(group, "ab")
    page = loaded.http.get(loaded.url("experiments/ab"))
    assert page.status_code == 200 and "tojson" not in page.text
    for metric, figures in report["arms"][1]["vs_control"].items():
        row = re.search(rf'<tr data-arm="treatment" data-metric="{metric}">(.*?)</tr>',
                        page.text, re.S)  # fmt: skip
        assert row is not None, metric
        lift, low, high = (figures[k] for k in ("lift", "ci_low", "ci_high"))
        if lift is None:  # no value on these events: no mean to compare
            assert 'class="num lift">—<' in row.group(1)
            continue
        assert f'class="num lift">{100 * lift:+.1f}%<' in row.group(1)
        assert f"{100 * low:+.1f}% to {100 * high:+.1f}%" in row.group(1)
        assert f'class="num p-value">{p_shown(figures["p_value"])}<' in row.group(1)
    srm = report["sample_ratio"]
    verdict = "sample-ratio mismatch" if srm["flagged"] else "no mismatch"
    assert verdict in page.text and f"p = {p_shown(srm['p_value'])})" in page.text
    cuped = report["cuped"]["metrics"]["conversion_rate"]["vs_control"]["treatment"]
    row = re.search(r'<tr data-metric="conversion_rate" data-arm="treatment">(.*?)</tr>',
                    page.text, re.S)  # fmt: skip
    assert row is not None and f'class="num lift">{100 * cuped["lift"]:+.1f}%<' in row.group(1)


def p_shown(p_value: float) -> str:
    return "&lt; 0.0001" if p_value < 1e-4 else f"{p_value:.4f}"
