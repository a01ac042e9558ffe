"""The scheduler over real trainings (SQLite and PostgreSQL): runs, outcomes, campaigns that
follow ``latest``, the quality gate, several workers on one store, leases and shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tastebud.engine import Engine
from tastebud.errors import InvalidInput
from tastebud.ingest import PutEventsRequest
from tastebud.jobs.runner import JobRunner
from tastebud.jobs.scheduler import JOB_KIND, RunReport, Scheduler, TrainFn
from tastebud.jobs.schedules import ScheduleSpec
from tastebud.jobs.training import VersionTrainer
from tastebud.serving.campaigns import CampaignRequest
from tastebud.settings import ScheduleSettings, Settings
from tastebud.store import JobRecord, Store, open_store
from tests.recipes.conftest import clustered
from tests.serving.conftest import write_clustered

T0 = 1_800_000_000.0  # a fixed "now": runs are driven by run_due(now=...), nothing sleeps


@pytest.fixture
def engine(store: Store, group: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine whose scheduler serves only this test's group (PostgreSQL is shared)."""
    settings = Settings(home=tmp_path / "home", default_group=group,
                        schedules=ScheduleSettings(groups=[group]))  # fmt: skip
    engine = Engine(settings, store=store)
    yield engine
    engine.close()


@pytest.fixture
def loaded(engine: Engine, group: str, tmp_path: Path) -> Engine:
    """Clustered interactions (720), a popularity solution with one active version, and a
    campaign following its latest version."""
    interactions, _ = write_clustered(tmp_path)
    engine.import_file(group, "interactions", interactions, mode="full")
    engine.create_solution(group, "popular", {"recipe": "popularity-count"})
    engine.train(group, "popular")
    engine.create_campaign(group, "home", "popular", config={"min_interactions": 0})
    return engine


def create(engine: Engine, group: str, name: str = "s", solution: str = "popular", *,
           now: float = T0, **spec: Any) -> None:  # fmt: skip
    spec_ = ScheduleSpec.parse(**spec)
    engine.schedules.create(group, name, solution=solution, spec=spec_, now=now)


def answering(engine: Engine, group: str, campaign: str = "home") -> tuple[str, str | None]:
    answer = engine.campaign_answer(group, campaign, CampaignRequest(user_id="u1", k=3))
    return answer["source"], answer["solutionVersionId"]


def active(engine: Engine, group: str, solution: str = "popular") -> list[str]:
    return [v.id for v in engine.list_solution_versions(group, solution) if v.status == "active"]


def scheduled_jobs(engine: Engine, group: str) -> list[JobRecord]:
    return [job for job in engine.list_jobs(group) if job.kind == JOB_KIND]


def counted(group: str, schedule: str, outcome: str) -> float:
    labels = {"group": group, "schedule": schedule, "outcome": outcome}
    return REGISTRY.get_sample_value("tastebud_schedule_runs_total", labels) or 0.0


# runs and outcomes ------------------------------------------------------------------------------
def test_a_due_run_trains_and_latest_campaigns_switch_at_once(loaded: Engine, group: str) -> None:
    (old,) = active(loaded, group)
    assert answering(loaded, group) == ("model", old)
    create(loaded, group, every="15m")
    assert loaded.scheduler.run_due(now=T0 + 899) == []  # not due yet

    (report,) = loaded.scheduler.run_due(now=T0 + 900)
    assert report.outcome == "succeeded" and report.version_id not in (None, old)
    assert active(loaded, group) == [report.version_id, old]
    assert answering(loaded, group) == ("model", report.version_id)  # no wait: same process
    (job,) = scheduled_jobs(loaded, group)
    assert (job.id, job.status, job.error) == (report.job_id, "succeeded", None)
    assert job.result is not None and job.result["solution_version"] == report.version_id
    assert job.params["schedule"] == "s" and job.params["trigger"] == "every 15m"
    record = loaded.schedules.get(group, "s")
    assert (record.runs, record.lease_owner, record.next_run_at) == (1, None, T0 + 1800)
    assert record.last_run is not None and record.last_run["outcome"] == "succeeded"
    assert loaded.scheduler.run_due(now=T0 + 900) == []  # that run is done, once
    assert counted(group, "s", "succeeded") == 1


def test_a_failed_training_keeps_the_old_version_serving(
    loaded: Engine, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    (old,) = active(loaded, group)
    create(loaded, group, every="1m")
    # The solution changed to count an event type nobody sends: training fails.
    loaded.create_solution(group, "popular", {"recipe": "popularity-count",
                           "data": {"event_weights": {"purchase": 1}}}, replace=True)  # fmt: skip
    with caplog.at_level(logging.INFO, logger="tastebud.jobs.scheduler"):
        (report,) = loaded.scheduler.run_due(now=T0 + 60)
    assert report.outcome == "failed" and "no interactions left" in (report.message or "")
    assert answering(loaded, group) == ("model", old)
    (job,) = scheduled_jobs(loaded, group)
    assert job.status == "failed" and "no interactions left" in (job.error or "")
    newest = loaded.list_solution_versions(group, "popular")[0]
    assert newest.status == "failed" and newest.body["job"] == job.id
    assert counted(group, "s", "failed") == 1 and counted(group, "s", "succeeded") == 0
    assert f"schedule run done group={group} schedule=s outcome=failed" in caplog.text
    record = loaded.schedules.get(group, "s")
    assert record.runs == 1 and record.next_run_at == T0 + 120  # tried again next time


def test_a_training_past_max_train_seconds_keeps_the_old_version(
    loaded: Engine, group: str
) -> None:
    create(loaded, group, "slow", every="1m", max_train_seconds=0.001)
    create(loaded, group, "roomy", every="1m", max_train_seconds=120)
    reports = {r.schedule: r for r in loaded.scheduler.run_due(now=T0 + 60)}
    slow, roomy = reports["slow"], reports["roomy"]
    assert slow.outcome == "timed_out"
    assert "max_train_seconds: training took longer than 0.001 s" in (slow.message or "")
    assert roomy.outcome == "succeeded"  # the deadline only stops what runs past it
    jobs = {job.id: job for job in scheduled_jobs(loaded, group)}
    assert jobs[slow.job_id or ""].status == "failed"
    assert "max_train_seconds" in (jobs[slow.job_id or ""].error or "")
    statuses = {v.body.get("job"): v.status for v in loaded.list_solution_versions(group)}
    assert statuses[slow.job_id] == "failed" and statuses[roomy.job_id] == "active"
    assert counted(group, "slow", "timed_out") == 1


def test_too_slow_alone_keeps_the_campaign_on_the_old_version(loaded: Engine, group: str) -> None:
    (old,) = active(loaded, group)
    create(loaded, group, every="1m", max_train_seconds=0.001)
    (report,) = loaded.scheduler.run_due(now=T0 + 60)
    assert report.outcome == "timed_out"
    assert active(loaded, group) == [old] and answering(loaded, group) == ("model", old)


# the quality gate -------------------------------------------------------------------------------
def noise(engine: Engine, group: str, *, users: int = 200, seed: int = 1) -> None:
    """Uniformly random clicks by new users: the planted clusters no longer predict the data."""
    rng = np.random.default_rng(seed)
    for user in range(users):
        items = [f"i{i}" for i in rng.choice(40, size=5, replace=False)]
        engine.put_events(group, PutEventsRequest.model_validate({
            "userId": f"noise{user}",
            "eventList": [{"itemId": item, "eventType": "click", "sentAt": 2_000_000 + n}
                          for n, item in enumerate(items)],
        }))  # fmt: skip


def test_a_worse_version_is_trained_but_not_deployed(loaded: Engine, group: str) -> None:
    loaded.create_solution(group, "for-you", {"recipe": "user-personalization",
                                              "params": {"algorithm": "ease"}})  # fmt: skip
    good = loaded.train(group, "for-you")
    loaded.create_campaign(group, "mine", "for-you", config={"min_interactions": 0})
    create(loaded, group, "strict", "for-you", after_events=500, max_metric_drop=0.02)
    create(loaded, group, "lenient", "for-you", after_events=500, max_metric_drop=1.0)
    loaded.schedules.pause(group, "lenient")
    noise(loaded, group)  # 1,000 events

    (report,) = loaded.scheduler.run_due(now=T0)
    assert report.outcome == "gated" and "max_metric_drop 0.02" in (report.message or "")
    gated = loaded.solution_version(report.version_id or "")
    old_ndcg, new_ndcg = good.body["metrics"]["ndcg@10"], gated.body["metrics"]["ndcg@10"]
    assert new_ndcg < old_ndcg - 0.02  # the gate read the metrics right
    assert gated.status == "gated" and gated.body["gated"] == report.message
    assert f"below the serving version {good.id}" in gated.body["gated"]
    assert active(loaded, group, "for-you") == [good.id]
    assert answering(loaded, group, "mine") == ("model", good.id)
    (job,) = scheduled_jobs(loaded, group)
    assert job.status == "succeeded" and job.result is not None
    assert job.result["outcome"] == "gated" and job.result["gated"] == report.message
    assert counted(group, "strict", "gated") == 1

    loaded.schedules.resume(group, "lenient")
    (allowed,) = loaded.scheduler.run_due(now=T0)
    assert allowed.outcome == "succeeded"
    assert answering(loaded, group, "mine") == ("model", allowed.version_id)


# several workers, leases, shutdown ----------------------------------------------------------------
class Worker:
    """One scheduler with its own store connections, job runner and trainer (a process's)."""

    def __init__(self, store_url: str, group: str, artifacts: Path, **options: Any) -> None:
        self.store = open_store(store_url)
        self.jobs = JobRunner(self.store)
        trainer = VersionTrainer(self.store, artifacts)
        self.trainings: list[str] = []

        def train(group: str, solution: str, **kwargs: Any) -> Any:
            self.trainings.append(solution)
            return trainer.train_new(group, solution, **kwargs)

        self.scheduler = Scheduler(self.store, train, self.jobs, groups=[group], **options)

    def close(self) -> None:
        self.scheduler.stop()
        self.jobs.close()
        self.store.close()


@pytest.fixture
def workers(loaded: Engine, store_url: str, group: str) -> Iterator[list[Worker]]:
    made = [Worker(store_url, group, loaded.settings.artifacts) for _ in range(2)]
    yield made
    for worker in made:
        worker.close()


def race(worker: Worker, barrier: threading.Barrier, now: float, out: list[RunReport]) -> None:
    barrier.wait()  # both read the due schedule at the same moment
    out.extend(worker.scheduler.run_due(now=now))


def test_two_workers_never_run_one_schedule_run_twice(
    loaded: Engine, group: str, workers: list[Worker]
) -> None:
    create(loaded, group, every="1m")
    rounds = 3
    for round_ in range(1, rounds + 1):
        barrier = threading.Barrier(len(workers))
        reports: list[RunReport] = []
        threads = [threading.Thread(target=race, args=(w, barrier, T0 + 60 * round_, reports))
                   for w in workers]  # fmt: skip
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [r.outcome for r in reports] == ["succeeded"]
        assert sum(len(w.trainings) for w in workers) == round_
    assert len(scheduled_jobs(loaded, group)) == rounds
    assert len(active(loaded, group)) == rounds + 1
    assert loaded.schedules.get(group, "s").runs == rounds


def test_an_expired_lease_is_taken_over(loaded: Engine, group: str, workers: list[Worker]) -> None:
    create(loaded, group, every="1m")
    store = loaded.store
    # A worker claimed the run, started its job, then died: it renews nothing any more.
    assert store.claim_schedule(group, "s", runs=0, owner="dead-worker", now=T0 + 60,
                                lease_until=T0 + 120)  # fmt: skip
    dead = JobRecord(id="scheduled-training-dead", group=group, kind=JOB_KIND, status="running",
                     params={}, created_at=T0 + 60, updated_at=T0 + 60)  # fmt: skip
    store.save_job(dead)
    store.renew_schedule_lease(group, "s", owner="dead-worker", lease_until=T0 + 120,
                               job_id=dead.id)  # fmt: skip
    survivor = workers[0].scheduler
    assert survivor.run_due(now=T0 + 119) == [] and workers[0].trainings == []
    (report,) = survivor.run_due(now=T0 + 121)
    assert report.outcome == "succeeded" and workers[0].trainings == ["popular"]
    lost = store.get_job(dead.id)
    assert lost.status == "failed"
    assert "dead-worker stopped renewing its lease" in (lost.error or "")
    record = store.get_schedule(group, "s")
    assert (record.runs, record.lease_owner, record.job_id) == (1, None, report.job_id)


def test_a_live_worker_keeps_its_lease_past_its_length(
    loaded: Engine, group: str, store_url: str
) -> None:
    """A training longer than the lease: the heartbeat renews it, so nobody takes over."""
    create(loaded, group, every="10s")
    slow = Worker(store_url, group, loaded.settings.artifacts, lease_seconds=3.0)
    other = Worker(store_url, group, loaded.settings.artifacts, lease_seconds=3.0)
    trainer = slow.scheduler.train

    def sleepy(group: str, solution: str, **kwargs: Any) -> Any:
        time.sleep(4.5)
        return trainer(group, solution, **kwargs)

    slow.scheduler.train = sleepy
    done: list[RunReport] = []
    try:
        now = T0 + 10
        thread = threading.Thread(target=lambda: done.extend(slow.scheduler.run_due(now=now)))
        thread.start()
        time.sleep(3.6)  # past the first lease_until: only renewals keep it
        assert other.scheduler.run_due(now=now + 3.6) == []
        thread.join()
    finally:
        slow.close()
        other.close()
    assert [r.outcome for r in done] == ["succeeded"] and other.trainings == []


def test_stopping_cancels_a_run_which_another_worker_then_does(
    loaded: Engine, group: str, workers: list[Worker]
) -> None:
    create(loaded, group, every="10s", now=time.time() - 10)  # due now: the thread reads the clock
    first, second = workers
    started = threading.Event()
    trainer: TrainFn = first.scheduler.train

    def paced(group: str, solution: str, **kwargs: Any) -> Any:
        started.set()
        time.sleep(0.3)  # the stop arrives now; training stops at its first progress report
        return trainer(group, solution, **kwargs)

    first.scheduler.train = paced
    first.scheduler.poll_seconds = 0.05
    first.scheduler.start()
    assert started.wait(20)
    first.scheduler.stop()
    assert not first.scheduler.running
    record = loaded.schedules.get(group, "s")
    assert record.runs == 0 and record.lease_owner is None  # released, not counted
    assert record.last_run is not None and record.last_run["outcome"] == "cancelled"
    (job,) = scheduled_jobs(loaded, group)
    assert job.status == "failed" and "shutting down" in (job.error or "")
    (report,) = second.scheduler.run_due()
    assert report.outcome == "succeeded" and loaded.schedules.get(group, "s").runs == 1


# the rule engine, then the model, retrained as events arrive ------------------------------------
def test_rules_until_enough_events_then_the_model_retrained_every_n_events(
    engine: Engine, group: str
) -> None:
    """A live event: a campaign answers by rules below 1,000 interactions; an after-events
    schedule trains as data arrives, the campaign switches to the model at 1,000 and follows
    each retrain to a newer version."""
    engine.create_solution(group, "match", {"recipe": "user-personalization",
                                            "params": {"algorithm": "ease"}})  # fmt: skip
    engine.create_campaign(group, "live", "match")  # min_interactions: the default 1,000
    create(engine, group, solution="match", after_events=300)
    data = clustered(n_items=80, per_user=25)  # 60 users x 25 = 1,500 events
    order = np.random.default_rng(7).permutation(data.size)  # users interleaved in time
    arrived, trained, seen = 0, [], []
    for start in range(0, data.size, 50):
        batch = order[start : start + 50]
        for user in np.unique(data.users[batch]):
            mine = batch[data.users[batch] == user]
            engine.put_events(group, PutEventsRequest.model_validate({
                "userId": f"u{user}",
                "eventList": [{"itemId": f"i{data.items[row]}", "eventType": "click",
                               "sentAt": 1_000_000 + start + n} for n, row in enumerate(mine)],
            }))  # fmt: skip
        arrived += len(batch)
        trained += [r.version_id for r in engine.scheduler.run_due() if r.outcome == "succeeded"]
        source, version = answering(engine, group, "live")
        if arrived < 1000:
            assert source == "rules" and version is None, arrived
        else:
            assert (source, version) == ("model", trained[-1]), arrived
            seen.append(version)
    assert len(trained) == 5  # at 300, 600, 900, 1,200 and 1,500 events
    assert list(dict.fromkeys(seen)) == trained[2:]  # 1,000 -> the 900 version, then each new


def test_an_incremental_schedule_grows_the_serving_version(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    interactions, _ = write_clustered(tmp_path)
    engine.import_file(group, "interactions", interactions, mode="full")
    tiny = {"epochs": 2, "hidden": 16, "max_len": 8, "validation_users": 8}
    engine.create_solution(group, "next", {"recipe": "sequential", "params": tiny,
                                           "evaluate": False})  # fmt: skip
    create(engine, group, solution="next", every="15m", incremental=True)
    assert engine.schedules.describe(engine.schedules.get(group, "s"))["incremental"] is True
    (first,) = engine.scheduler.run_due(now=T0 + 900)  # nothing to grow yet: a full fit
    (second,) = engine.scheduler.run_due(now=T0 + 1800)
    assert (first.outcome, second.outcome) == ("succeeded", "succeeded")
    assert first.version_id is not None and second.version_id is not None
    grown = engine.solution_version(second.version_id).body["incremental"]
    assert "fallback" in engine.solution_version(first.version_id).body["incremental"]
    assert grown["parent"] == first.version_id
    with pytest.raises(InvalidInput, match="max_metric_drop: incremental versions"):
        ScheduleSpec.parse(every="15m", incremental=True, max_metric_drop=0.01)
