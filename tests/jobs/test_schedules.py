"""Schedules: parsing, next-run times, their records, and the claim that gives each run to one
worker (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.jobs.schedules import (
    Schedules,
    ScheduleSpec,
    format_interval,
    parse_cron,
    parse_interval,
)
from tastebud.store import ScheduleRecord, SolutionRecord, Store, open_store


# parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172_800), ("45s", 45), (" 10M ", 600),
     (120, 120)],
)  # fmt: skip
def test_intervals(text: str | int, seconds: int) -> None:
    assert parse_interval(text) == seconds
    assert parse_interval(format_interval(seconds)) == seconds


@pytest.mark.parametrize("text", ["15", "abc", "m15", "1.5h", "-5m", "", "1w"])
def test_bad_intervals_are_named(text: str) -> None:
    with pytest.raises(InvalidInput, match=rf"every: expected a duration .*got {text!r}"):
        parse_interval(text)


def test_too_short_intervals_are_refused() -> None:
    with pytest.raises(InvalidInput, match="every: at least 10s, got '5s'"):
        parse_interval("5s")
    with pytest.raises(InvalidInput, match="every: at least 10s, got '0m'"):
        parse_interval("0m")


def test_cron() -> None:
    assert parse_cron(" 0  3 * * * ") == "0 3 * * *"
    assert parse_cron("*/15 8-18 * * mon-fri") == "*/15 8-18 * * mon-fri"
    with pytest.raises(InvalidInput, match=r"cron: '61 3 \* \* \*' is not a valid cron"):
        parse_cron("61 3 * * *")
    with pytest.raises(InvalidInput, match=r"cron: expected 5 fields .*got '0 3 \* \*'"):
        parse_cron("0 3 * *")
    with pytest.raises(InvalidInput, match="cron: expected 5 fields"):
        parse_cron("0 0 3 * * *")  # seconds are not cron's


def test_spec_needs_exactly_one_trigger_and_valid_options() -> None:
    with pytest.raises(InvalidInput, match=r"exactly one trigger.*got none"):
        ScheduleSpec.parse()
    with pytest.raises(InvalidInput, match=r"exactly one trigger.*got every, after_events"):
        ScheduleSpec.parse(every="15m", after_events=10)
    with pytest.raises(InvalidInput, match="after_events: expected a positive integer, got 0"):
        ScheduleSpec.parse(after_events=0)
    with pytest.raises(InvalidInput, match="max_train_seconds: expected a positive number, got 0"):
        ScheduleSpec.parse(every="1h", max_train_seconds=0)
    with pytest.raises(InvalidInput, match=r"max_metric_drop: expected a number >= 0, got -0\.1"):
        ScheduleSpec.parse(every="1h", max_metric_drop=-0.1)
    with pytest.raises(InvalidInput, match=r"metric: expected one of ndcg@10, .*got 'auc'"):
        ScheduleSpec.parse(every="1h", max_metric_drop=0.1, metric="auc")
    with pytest.raises(InvalidInput, match="metric: 'hr@10' is only used with max_metric_drop"):
        ScheduleSpec.parse(every="1h", metric="hr@10")
    spec = ScheduleSpec.parse(after_events=1000, max_metric_drop=0.02, metric="hr@10")
    assert (spec.trigger, spec.describe(), spec.metric) == ("after-events", "after 1000 events",
                                                            "hr@10")  # fmt: skip
    assert ScheduleSpec.from_dict(spec.to_dict()) == spec


# next runs --------------------------------------------------------------------------------------
def test_intervals_stay_on_their_grid_and_skip_missed_slots() -> None:
    spec = ScheduleSpec.parse(every="15m")
    assert spec.describe() == "every 15m"
    assert spec.first_run(1_000.0) == 1_900.0
    assert spec.next_run(due_at=1_900.0, now=1_950.0) == 2_800.0  # 50 s of training: no drift
    assert spec.next_run(due_at=1_900.0, now=1_900.0 + 2_000) == 1_900.0 + 3 * 900
    assert spec.next_run(due_at=1_900.0, now=1_800.0) == 2_800.0  # a run claimed early


def test_cron_runs_at_the_next_matching_minute_in_utc() -> None:
    spec = ScheduleSpec.parse(cron="0 3 * * *")
    five_am = datetime(2026, 1, 1, 5, 0, tzinfo=UTC).timestamp()
    next_day = datetime(2026, 1, 2, 3, 0, tzinfo=UTC).timestamp()
    assert spec.first_run(five_am) == next_day
    assert spec.next_run(due_at=next_day, now=next_day + 120) == next_day + 86_400


def test_event_triggers_have_no_time() -> None:
    spec = ScheduleSpec.parse(after_events=50)
    assert spec.first_run(1.0) is None and spec.next_run(due_at=1.0, now=2.0) is None


# records ----------------------------------------------------------------------------------------
@pytest.fixture
def schedules(store: Store, group: str) -> Schedules:
    store.put_solution(SolutionRecord(group, "popular", "popularity-count",
                                      {"recipe": "popularity-count"}))  # fmt: skip
    return Schedules(store)


def test_create_list_pause_resume_delete(schedules: Schedules, group: str) -> None:
    made = schedules.create(group, "hourly", solution="popular",
                            spec=ScheduleSpec.parse(every="1h"), now=1_000.0)  # fmt: skip
    assert (made.next_run_at, made.paused, made.runs, made.seq_watermark) == (4_600.0, False, 0, 0)
    assert made.spec["every_seconds"] == 3600
    schedules.create(group, "after-100", solution="popular",
                     spec=ScheduleSpec.parse(after_events=100))  # fmt: skip
    assert [s.name for s in schedules.in_group(group)] == ["after-100", "hourly"]

    paused = schedules.pause(group, "hourly")
    assert paused.paused and paused.next_run_at is None
    resumed = schedules.resume(group, "hourly", now=9_000.0)
    assert not resumed.paused and resumed.next_run_at == 12_600.0
    schedules.delete(group, "hourly")
    with pytest.raises(NotFound, match="schedule 'hourly' does not exist"):
        schedules.get(group, "hourly")
    with pytest.raises(NotFound, match="schedule 'hourly'"):
        schedules.delete(group, "hourly")
    with pytest.raises(NotFound, match="schedule 'nope'"):
        schedules.pause(group, "nope")


def test_mistakes_are_named(schedules: Schedules, group: str) -> None:
    spec = ScheduleSpec.parse(every="1h")
    with pytest.raises(NotFound, match="solution 'nope' does not exist"):
        schedules.create(group, "s", solution="nope", spec=spec)
    with pytest.raises(InvalidInput, match="schedule name 'bad name'"):
        schedules.create(group, "bad name", solution="popular", spec=spec)
    schedules.create(group, "s", solution="popular", spec=spec)
    with pytest.raises(AlreadyExists, match="schedule 's' already exists"):
        schedules.create(group, "s", solution="popular", spec=spec)
    schedules.create(group, "s", solution="popular", spec=ScheduleSpec.parse(every="2h"),
                     replace=True)  # fmt: skip
    assert schedules.get(group, "s").spec["every_seconds"] == 7200
    schedules.store.put_solution(SolutionRecord(group, "quiet", "popularity-count",
                                                {"recipe": "popularity-count",
                                                 "evaluate": False}))  # fmt: skip
    gated = ScheduleSpec.parse(every="1h", max_metric_drop=0.02)
    with pytest.raises(InvalidInput, match="max_metric_drop: solution 'quiet' has evaluate=false"):
        schedules.create(group, "g", solution="quiet", spec=gated)


def test_deleting_the_group_deletes_its_schedules(schedules: Schedules, group: str) -> None:
    schedules.create(group, "s", solution="popular", spec=ScheduleSpec.parse(every="1h"))
    schedules.store.delete_group(group)
    schedules.store.create_group(group)
    assert schedules.in_group(group) == []


# the claim ----------------------------------------------------------------------------------------
def schedule(group: str, name: str = "s", *, next_run_at: float | None = 100.0) -> ScheduleRecord:
    spec = {"every_seconds": 60} if next_run_at is not None else {"after_events": 5}
    return ScheduleRecord(group=group, name=name, solution="popular", spec=spec,
                          next_run_at=next_run_at)  # fmt: skip


def test_due_schedules(store: Store, group: str) -> None:
    store.put_schedule(schedule(group, "early", next_run_at=100.0))
    store.put_schedule(schedule(group, "late", next_run_at=500.0))
    store.put_schedule(schedule(group, "events", next_run_at=None))
    store.put_schedule(schedule(group, "paused", next_run_at=50.0))
    store.set_schedule_paused(group, "paused", paused=True, next_run_at=50.0)
    due = store.due_schedules(200.0, groups=[group])
    assert sorted(s.name for s in due) == ["early", "events"]
    assert store.due_schedules(200.0, groups=["another-group"]) == []
    assert store.claim_schedule(group, "early", runs=0, owner="a", now=200.0, lease_until=260.0)
    assert [s.name for s in store.due_schedules(200.0, groups=[group])] == ["events"]
    assert "early" in [s.name for s in store.due_schedules(261.0, groups=[group])]  # expired


def test_one_claim_wins_and_a_finished_run_is_not_claimed_again(store: Store, group: str) -> None:
    store.put_schedule(schedule(group))
    seen = store.due_schedules(200.0, groups=[group])[0]  # both workers read the same state
    first = store.claim_schedule(group, "s", runs=seen.runs, owner="a", now=200.0,
                                 lease_until=260.0)  # fmt: skip
    second = store.claim_schedule(group, "s", runs=seen.runs, owner="b", now=200.0,
                                  lease_until=260.0)  # fmt: skip
    assert first is not None and first.lease_owner is None and second is None
    assert store.get_schedule(group, "s").lease_owner == "a"
    assert not store.renew_schedule_lease(group, "s", owner="b", lease_until=300.0)
    assert store.renew_schedule_lease(group, "s", owner="a", lease_until=300.0, job_id="job-1")
    assert not store.finish_schedule_run(group, "s", owner="b", next_run_at=400.0,
                                         seq_watermark=0, last_run={})  # fmt: skip
    assert store.finish_schedule_run(group, "s", owner="a", next_run_at=400.0, seq_watermark=7,
                                     last_run={"outcome": "succeeded"})  # fmt: skip
    done = store.get_schedule(group, "s")
    assert (done.runs, done.lease_owner, done.next_run_at, done.seq_watermark, done.job_id) == (
        1, None, 400.0, 7, "job-1")  # fmt: skip
    assert done.last_run == {"outcome": "succeeded"}
    # "b" saw the state before "a" finished: past the lease, its stale claim must still fail.
    assert store.claim_schedule(group, "s", runs=0, owner="b", now=500.0, lease_until=560.0) is None
    assert store.claim_schedule(group, "s", runs=1, owner="b", now=399.0, lease_until=460.0) is None
    assert store.claim_schedule(group, "s", runs=1, owner="b", now=400.0, lease_until=460.0)


def test_an_expired_lease_is_taken_over_and_its_owner_cannot_finish(
    store: Store, group: str
) -> None:
    store.put_schedule(schedule(group))
    assert store.claim_schedule(group, "s", runs=0, owner="dead", now=200.0, lease_until=260.0)
    store.renew_schedule_lease(group, "s", owner="dead", lease_until=260.0, job_id="job-dead")
    assert store.claim_schedule(group, "s", runs=0, owner="b", now=259.0, lease_until=319.0) is None
    taken = store.claim_schedule(group, "s", runs=0, owner="b", now=261.0, lease_until=321.0)
    assert taken is not None and (taken.lease_owner, taken.job_id) == ("dead", "job-dead")
    assert not store.finish_schedule_run(group, "s", owner="dead", next_run_at=1.0,
                                         seq_watermark=0, last_run={})  # fmt: skip
    assert store.release_schedule(group, "s", owner="b", last_run={"outcome": "cancelled"})
    released = store.get_schedule(group, "s")
    assert (released.runs, released.lease_owner) == (0, None)  # a released run is done again


def test_paused_schedules_are_not_claimed(store: Store, group: str) -> None:
    store.put_schedule(schedule(group))
    store.set_schedule_paused(group, "s", paused=True, next_run_at=100.0)
    assert store.claim_schedule(group, "s", runs=0, owner="a", now=200.0, lease_until=1.0) is None


def test_concurrent_claims_from_separate_connections(
    store: Store, group: str, store_url: str
) -> None:
    """Eight workers, each with its own store (connections), claim the same due run at once."""
    store.put_schedule(schedule(group))
    workers = [open_store(store_url) for _ in range(8)]
    barrier = threading.Barrier(len(workers))
    won: list[str] = []

    def claim(index: int, worker: Store) -> None:
        barrier.wait()
        if worker.claim_schedule(group, "s", runs=0, owner=f"w{index}", now=time.time(),
                                 lease_until=time.time() + 60):  # fmt: skip
            won.append(f"w{index}")

    try:
        threads = [threading.Thread(target=claim, args=(i, w)) for i, w in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for worker in workers:
            worker.close()
    assert len(won) == 1 and store.get_schedule(group, "s").lease_owner == won[0]


def test_counting_interactions_after_a_seq(store: Store, group: str) -> None:
    from tastebud.store import Event

    store.put_events(group, [Event(item_id=f"i{n}", timestamp=n, user_id="u") for n in range(5)])
    first = store.last_seq(group)
    store.put_events(group, [Event(item_id="j", timestamp=9, user_id="u") for _ in range(3)])
    assert store.interactions_after_count(group, first, cap=100) == 3
    assert store.interactions_after_count(group, first, cap=2) == 2
    assert store.interactions_after_count(group, 0, cap=100) == 8
