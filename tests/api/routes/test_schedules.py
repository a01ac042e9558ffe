"""Schedule endpoints over HTTP (SQLite and PostgreSQL): scopes, bad input named, pause and
resume, a run seen through jobs, versions and /metrics; and the Python client's methods."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tastebud.client import Client
from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.store import SolutionVersionRecord
from tests.api.routes.test_recommendations import trained  # noqa: F401 (fixture)
from tests.jobs.test_scheduler import noise
from tests.serving.conftest import write_clustered
from tests.test_client import Server, client, server  # noqa: F401 (fixtures)

from ..conftest import Api


def schedule(api: Api, **body: Any) -> Any:
    body = {"name": "hourly", "solution": "popular", "every": "1h"} | body
    return api.http.post(api.url("/schedules"), json=body, headers=api.admin)


def test_create_list_pause_resume_delete(trained: Api) -> None:  # noqa: F811
    api = trained
    created = schedule(api, maxTrainSeconds=600)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["trigger"], body["description"], body["everySeconds"]) == ("every", "every 1h",
                                                                              3600)  # fmt: skip
    assert body["maxTrainSeconds"] == 600 and body["paused"] is False and body["runs"] == 0
    assert body["nextRunAt"] == pytest.approx(time.time() + 3600, abs=60)
    events = schedule(api, name="live", every=None, afterEvents=500).json()
    # Counted from the data the serving version saw: none yet.
    assert events["pendingEvents"] == 0 and events["nextRunAt"] is None
    listed = api.http.get(api.url("/schedules"), headers=api.admin).json()["schedules"]
    assert [s["name"] for s in listed] == ["hourly", "live"]

    paused = api.http.post(api.url("/schedules/hourly/pause"), headers=api.admin)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    resumed = api.http.post(api.url("/schedules/hourly/resume"), headers=api.admin).json()
    assert resumed["paused"] is False and resumed["nextRunAt"] is not None
    assert api.http.delete(api.url("/schedules/hourly"), headers=api.admin).status_code == 204
    gone = api.http.get(api.url("/schedules/hourly"), headers=api.admin)
    assert gone.status_code == 404 and "schedule 'hourly' does not exist" in gone.text


def test_bad_input_is_named(trained: Api) -> None:  # noqa: F811
    api = trained
    cases = [
        ({"every": "soon"}, 422, "every: expected a duration such as 30s, 15m"),
        ({"every": None, "cron": "61 * * * *"}, 422, "cron: '61 * * * *' is not a valid cron"),
        ({"afterEvents": 10}, 422, "exactly one trigger"),
        ({"every": None, "afterEvents": 0}, 422, "after_events: expected a positive integer"),
        ({"maxTrainSeconds": -1}, 422, "max_train_seconds: expected a positive number, got -1"),
        ({"maxMetricDrop": 0.1, "metric": "auc"}, 422, "metric: expected one of ndcg@10"),
        ({"solution": "nope"}, 404, "solution 'nope' does not exist"),
        ({"name": "no spaces"}, 422, "schedule name 'no spaces'"),
    ]
    for body, status, message in cases:
        answer = schedule(api, **body)
        assert (answer.status_code, message in answer.text) == (status, True), answer.text
    assert schedule(api).status_code == 201
    assert schedule(api).status_code == 409
    assert schedule(api, every="2h", replace=True).json()["everySeconds"] == 7200


def test_admin_only(trained: Api) -> None:  # noqa: F811
    api = trained
    body = {"name": "x", "solution": "popular", "every": "1h"}
    assert api.http.post(api.url("/schedules"), json=body, headers=api.ingest).status_code == 403
    assert api.http.get(api.url("/schedules"), headers=api.ingest).status_code == 403
    assert api.http.get(api.url("/schedules")).status_code == 401


def test_a_run_shows_in_jobs_versions_and_metrics(trained: Api) -> None:  # noqa: F811
    api = trained
    assert schedule(api, name="soon", every=None, afterEvents=100).status_code == 201
    api.engine.scheduler.groups = (api.group,)  # the PostgreSQL database is shared
    noise(api.engine, api.group, users=19)  # 95 events
    assert api.engine.scheduler.run_due() == []
    shown = api.http.get(api.url("/schedules/soon"), headers=api.admin).json()
    assert shown["pendingEvents"] == 95 and shown["runs"] == 0
    noise(api.engine, api.group, users=1, seed=2)
    (report,) = api.engine.scheduler.run_due()
    assert report.outcome == "succeeded"

    shown = api.http.get(api.url("/schedules/soon"), headers=api.admin).json()
    assert shown["runs"] == 1 and shown["lastRun"]["outcome"] == "succeeded"
    assert shown["lastRun"]["version"] == report.version_id and shown["pendingEvents"] == 0
    jobs = api.http.get(api.url("/jobs"), headers=api.admin).json()["jobs"]
    (job,) = [j for j in jobs if j["kind"] == "scheduled-training"]
    assert job["id"] == report.job_id and job["status"] == "succeeded"
    assert job["result"]["solutionVersion"] == report.version_id
    metrics = api.http.get("/metrics", headers=api.admin).text
    line = (f'tastebud_schedule_runs_total{{group="{api.group}",outcome="succeeded",'
            f'schedule="soon"}} 1.0')  # fmt: skip
    assert line in metrics


def test_gated_versions_are_listed_with_their_reason_and_never_answer(
    trained: Api,  # noqa: F811
) -> None:
    api = trained
    serving = api.engine.list_solution_versions(api.group, "popular")[0]
    reason = "ndcg@10 0.0100 is 0.2000 below the serving version"
    gated = SolutionVersionRecord(
        id=f"sv-gated-{uuid.uuid4().hex[:8]}", group=api.group, solution="popular",
        status="gated", body={"recipe": "popularity-count", "gated": reason},
        created_at=time.time() + 10, updated_at=time.time() + 10,
    )  # fmt: skip
    api.engine.store.save_solution_version(gated)
    versions = api.http.get(api.url("/solutions/popular/versions"), headers=api.admin).json()
    newest = versions["versions"][0]
    assert (newest["id"], newest["status"], newest["gatedReason"]) == (gated.id, "gated", reason)
    created = api.http.post(api.url("/campaigns"), headers=api.admin, json={
        "name": "home", "solution": "popular", "config": {"minInteractions": 0}})  # fmt: skip
    assert created.json()["solutionVersionId"] == serving.id  # latest skips the gated one
    asked = api.http.post(api.url("/recommendations"), headers=api.admin,
                          json={"solution": "popular", "userId": "u1"})  # fmt: skip
    assert asked.json()["solutionVersionId"] == serving.id
    by_id = api.http.post(api.url("/recommendations"), headers=api.admin,
                          json={"solutionVersionId": gated.id, "userId": "u1"})  # fmt: skip
    assert by_id.status_code == 503 and "is gated" in by_id.text


# the Python client ------------------------------------------------------------------------------
def test_client_schedule_methods(
    client: Client,  # noqa: F811
    server: Server,  # noqa: F811
    tmp_path: Path,
) -> None:
    interactions, _ = write_clustered(tmp_path)
    client.import_file(interactions, dataset="interactions", mode="full", poll_interval=0.02)
    client.create_solution("popular", "popularity-count")
    made = client.create_schedule("nightly", "popular", cron="0 3 * * *", max_metric_drop=0.05)
    assert (made["cron"], made["maxMetricDrop"], made["metric"]) == ("0 3 * * *", 0.05, "ndcg@10")
    assert time.gmtime(made["nextRunAt"] or 0)[3:6] == (3, 0, 0)  # 03:00 UTC
    with pytest.raises(AlreadyExists, match="schedule 'nightly' already exists"):
        client.create_schedule("nightly", "popular", cron="0 3 * * *")
    with pytest.raises(InvalidInput, match=re.escape("every: at least 10s, got '1s'")):
        client.create_schedule("fast", "popular", every="1s")
    client.create_schedule("live", "popular", after_events=700, max_train_seconds=300)
    assert [s["name"] for s in client.list_schedules()] == ["live", "nightly"]
    assert client.pause_schedule("nightly")["paused"] is True
    assert client.resume_schedule("nightly")["paused"] is False

    server.engine.scheduler.groups = (client.group,)
    (report,) = server.engine.scheduler.run_due()
    assert report.outcome == "succeeded"
    live = client.get_schedule("live")
    assert live["lastRun"] is not None and live["lastRun"]["version"] == report.version_id
    assert client.job(report.job_id or "")["kind"] == "scheduled-training"
    client.delete_schedule("live")
    with pytest.raises(NotFound, match="schedule 'live' does not exist"):
        client.get_schedule("live")
