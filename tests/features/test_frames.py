"""Point-in-time frames and batch features: nothing at or after a row's time leaks in."""

from __future__ import annotations

import math
import time

import polars as pl
import pytest

from tastebud.engine import Engine
from tests.features.conftest import LIVE, T, event, online, put, shows

BATCH = """
features:
  - {name: pair_7d, kind: counter, entity: user_item, aggregation: count, window: 7d}
  - {name: host_affinity, kind: batch, entity: user_item_field, field: HOST,
     aggregation: share, days: 60, every: 1d}
  - {name: show_completion, kind: batch, entity: item, aggregation: rate,
     numerator: [complete], denominator: [start], prior_strength: 0, days: 60}
"""
DAY = 86_400


@pytest.fixture
def batch(engine: Engine, group: str) -> Engine:
    shows(engine, group, {"s1": "h1", "s2": "h2", "s3": "h1"})
    engine.features.apply(group, BATCH)
    return engine


def test_the_label_event_and_later_events_never_reach_its_row(batch: Engine, group: str) -> None:
    # The label is u1 watching s1 at T. A feature read after the fact would see that event
    # (and the two after it); as of T it must see only the one before.
    put(batch, group, event("u1", "s1", T - 3600), event("u1", "s1", T),
        event("u1", "s1", T + 1), event("u1", "s1", T + 60), event("u2", "s1", T - 10))  # fmt: skip
    labels = pl.DataFrame({"USER_ID": ["u1", "u1", "u2"], "ITEM_ID": ["s1", "s1", "s1"],
                           "TIMESTAMP": [T, T - 3600, T - 10], "LABEL": [1, 1, 1]})  # fmt: skip
    frame = batch.features.frame(group, labels, ["pair_7d"])
    assert frame["pair_7d"].to_list() == [1.0, 0.0, 0.0]
    assert frame["LABEL"].to_list() == [1, 1, 1]  # labels and their extra columns kept
    # Read now, the same feature does see everything: the frame is not the online value.
    assert online(batch, group, ["pair_7d"], "u1", ["s1"], T + 100) == [[4.0]]


def test_a_frame_from_the_stores_interactions_and_impressions(batch: Engine, group: str) -> None:
    put(batch, group, event("u1", "s1", T - 100, impression="s1|s2|s3"),
        event("u1", "s1", T - 50, impression="s1|s2"))  # fmt: skip
    labels = batch.features.labels(group)
    assert sorted(zip(labels["ITEM_ID"], labels["TIMESTAMP"], labels["LABEL"], strict=True)) == [
        ("s1", T - 100, 1), ("s1", T - 50, 1), ("s2", T - 100, 0), ("s2", T - 50, 0),
        ("s3", T - 100, 0),
    ]  # fmt: skip
    frame = batch.features.frame(group, labels)
    first = frame.filter((pl.col("ITEM_ID") == "s1") & (pl.col("TIMESTAMP") == T - 50))
    assert first["pair_7d"].to_list() == [1.0]  # the event at T - 100 only


def test_batch_features_are_computed_stored_and_read_with_their_time(
    batch: Engine, group: str
) -> None:
    put(batch, group, *[event("u1", "s1", T - 5 * DAY + k) for k in range(3)],
        event("u1", "s2", T - 2 * DAY), event("u2", "s2", T - DAY, "start"),
        event("u2", "s2", T - DAY + 1, "complete"), event("u3", "s1", T - DAY, "start"),
        event("u1", "s3", T - 90 * DAY))  # fmt: skip
    summary = batch.features.compute(group, now=T)
    assert summary["computed_at"] == T and summary["features"]["host_affinity"] == 4
    described = batch.features.describe(group)
    assert described["computations"]["host_affinity"]["computed_at"] == T
    values = online(batch, group, ["host_affinity", "show_completion"], "u1",
                    ["s1", "s3", "s2", "zz"], T)  # fmt: skip
    # u1's 60 days: 3 events on h1 shows, 1 on h2 (the 90-day-old one is out of range).
    assert values[0] == [0.75, 0.0] and values[1][0] == 0.75 and values[2] == [0.25, 1.0]
    assert math.isnan(values[3][0]) and math.isnan(values[3][1])


def test_frames_take_batch_values_from_the_run_before_each_row(batch: Engine, group: str) -> None:
    day0 = (T // DAY) * DAY
    put(batch, group, event("u1", "s1", day0 + 100), event("u1", "s2", day0 + 200),
        event("u1", "s2", day0 + DAY + 50))  # fmt: skip
    labels = pl.DataFrame(
        {
            "USER_ID": ["u1"] * 3,
            "ITEM_ID": ["s1"] * 3,
            "TIMESTAMP": [day0 + 300, day0 + DAY + 10, day0 + 2 * DAY + 10],
        }
    )
    frame = batch.features.frame(group, labels, ["host_affinity"])
    # Same day as the events: the run at day0 saw none of them; the next day's run saw two;
    # the day after, three (the later h2 event too).
    assert frame["host_affinity"].to_list() == [0.0, 0.5, pytest.approx(1 / 3)]


def test_point_in_time_of_the_live_declaration(engine: Engine, group: str) -> None:
    shows(engine, group, {"s1": "h1"})
    engine.features.apply(group, LIVE)
    put(engine, group, event("u1", "s1", T - 200), event("u2", "s1", T - 100))
    values = engine.features.point_in_time(
        group, ["views_5m", "viewers_1h"], user_ids=["u1", None, None],
        item_ids=["s1", "s1", "s1"], times=[T, T - 100, T - 200],
    )  # fmt: skip
    assert values.tolist() == [[2.0, 2.0], [1.0, 1.0], [0.0, 0.0]]


def test_a_due_batch_run_goes_to_one_process(batch: Engine, group: str) -> None:
    put(batch, group, event("u1", "s1", int(time.time()) - 60))
    batch.features.sync(group)  # the group is followed; its batch features were never run
    batch.features._run_batch_if_due(group)
    assert set(batch.store.feature_computations(group)) == {"host_affinity", "show_completion"}
    now = time.time()  # that run was claimed just now: the next is due in a day
    assert not batch.store.claim_feature_run(group, due_before=now - DAY, now=now)
    later = now + DAY + 1
    assert batch.store.claim_feature_run(group, due_before=later - DAY, now=later)
    assert not batch.store.claim_feature_run(group, due_before=later - DAY, now=later)
