"""Stream features online, on SQLite and PostgreSQL: windows, distinct users, sessions, rates,
exactly-once counting, request-time features, and agreement with point-in-time values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tastebud import observability
from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotFound
from tests.features.conftest import LIVE, T, event, online, put, shows


@pytest.fixture
def live(engine: Engine, group: str) -> Engine:
    shows(engine, group, {"s1": "h1", "s2": "h2", "s3": "h1"})
    engine.features.apply(group, LIVE)
    return engine


def test_a_count_forgets_events_that_age_out_of_its_window(live: Engine, group: str) -> None:
    put(live, group, event("u1", "s1", T - 100), event("u2", "s1", T - 10),
        event("u3", "s1", T - 400), event("u1", "s1", T - 5, "start"))  # fmt: skip
    assert online(live, group, ["views_5m"], "u1", ["s1", "s2"], T) == [[2.0], [0.0]]
    # T - 100 leaves the 5-minute window at T + 200; T - 10 stays until T + 290.
    assert online(live, group, ["views_5m"], "u1", ["s1"], T + 250) == [[1.0]]
    assert online(live, group, ["views_5m"], "u1", ["s1"], T + 295) == [[0.0]]


def test_distinct_users_sums_and_entities(live: Engine, group: str) -> None:
    put(live, group, event("u1", "s1", T - 100, event_value=3.0),
        event("u1", "s1", T - 50, event_value=4.5), event("u2", "s1", T - 20),
        event("u2", "s2", T - 7200), event(None, "s1", T - 30, session_id="anon"))  # fmt: skip
    names = ["viewers_1h", "minutes_1h", "pair_7d", "user_24h"]
    assert online(live, group, names, "u1", ["s1", "s2"], T) == [
        [2.0, 7.5, 2.0, 2.0], [0.0, 0.0, 0.0, 2.0]
    ]  # fmt: skip
    anonymous = online(live, group, names, None, ["s1"], T)[0]
    assert anonymous[:2] == [2.0, 7.5] and all(math.isnan(v) for v in anonymous[2:])


def test_sessions_longer_than_n_minutes(live: Engine, group: str) -> None:
    # u1: one session on s1 of 12 minutes (events 4 minutes apart, under the 5-minute gap);
    # u2: 6 minutes, then a 20-minute gap: two short sessions; u3: 15 minutes by SESSION_ID.
    put(live, group, *[event("u1", "s1", T - 1800 + 240 * k) for k in range(4)],
        event("u2", "s1", T - 1800), event("u2", "s1", T - 1440), event("u2", "s1", T - 240),
        event("u3", "s2", T - 3000, session_id="x"), event("u3", "s2", T - 2100, session_id="x"),
        event("u4", "s3", T - 9000), event("u4", "s3", T - 8000))  # fmt: skip
    assert online(live, group, ["long_sessions"], "u1", ["s1", "s2", "s3"], T) == [
        [1.0], [1.0], [0.0]  # s3's long session ended before the hour
    ]  # fmt: skip


def test_rates_are_smoothed_toward_the_global_rate(live: Engine, group: str) -> None:
    starts = [event(f"u{k}", "s1", T - 100 - k, "start") for k in range(4)]
    starts += [event(f"v{k}", "s2", T - 100 - k, "start") for k in range(4)]
    completes = [event(f"u{k}", "s1", T - 50 - k, "complete") for k in range(3)]
    put(live, group, *starts, *completes)
    # p = 3/8; s1: (3 + 2p) / (4 + 2) = 0.625; s2: 2p / 6 = 0.125; unseen s3: p.
    assert online(live, group, ["completion"], None, ["s1", "s2", "s3"], T) == [
        [0.625], [0.125], [0.375]
    ]  # fmt: skip


def test_recency_of_the_viewer_watching_this_host(live: Engine, group: str) -> None:
    put(live, group, event("u1", "s1", T - 600), event("u1", "s2", T - 60))
    # s3 has s1's host: seen 600 s ago through s1; an unknown item has no host: NaN.
    values = online(live, group, ["host_seen"], "u1", ["s3", "s2", "zz"], T)
    assert values[:2] == [[600.0], [60.0]] and math.isnan(values[2][0])


def test_replayed_event_ids_are_counted_once(live: Engine, group: str) -> None:
    batch = [event("u1", "s1", T - 100, event_id="e1"), event("u2", "s1", T - 90, event_id="e2")]
    assert put(live, group, *batch).accepted == 2
    assert online(live, group, ["views_5m", "viewers_1h"], "u1", ["s1"], T) == [[2.0, 2.0]]
    for _ in range(3):  # a client retrying after a timeout
        assert put(live, group, *batch).duplicates == 2
    put(live, group, event("u3", "s1", T - 80, event_id="e3"), batch[0])
    assert online(live, group, ["views_5m", "viewers_1h"], "u1", ["s1"], T) == [[3.0, 3.0]]


def test_request_time_features(engine: Engine, group: str) -> None:
    shows(engine, group, {"s1": "h1"}, created=T - 7200)
    engine.features.apply(
        group,
        """
features:
  - {name: hour, kind: request, source: hour_of_day}
  - {name: weekday, kind: request, source: day_of_week}
  - {name: age, kind: request, source: item_age}
  - {name: device, kind: request, source: context, field: DEVICE, values: [ios, android, web]}
  - {name: os, kind: request, source: context, field: DEVICE, encoding: onehot,
     values: [ios, web]}
""",
    )
    names = engine.features.names(group)
    assert names == ["hour", "weekday", "age", "device", "os.ios", "os.web"]
    # T = 2027-01-15 08:00:00 UTC, a Friday.
    values = online(engine, group, names, "u1", ["s1", "zz"], T, context={"DEVICE": "web"})
    assert values[0] == [8.0, 4.0, 7200.0, 2.0, 0.0, 1.0]
    assert math.isnan(values[1][2])
    unknown = online(engine, group, ["device"], "u1", ["s1"], T, context={"DEVICE": "tv"})
    assert math.isnan(unknown[0][0])


def test_online_values_match_point_in_time_values(live: Engine, group: str) -> None:
    kinds = ("complete", "start", "watch", "start")
    put(live, group, *[event(f"u{k % 3}", f"s{1 + k % 2}", T - 97 * k, kinds[k % 4],
                             event_value=float(k)) for k in range(60)])  # fmt: skip
    names = live.features.names(group)
    items = ["s1", "s2", "s3"]
    now = online(live, group, names, "u1", items, T)
    then = live.features.point_in_time(group, names, user_ids=["u1"] * 3, item_ids=items,
                                       times=[T] * 3)  # fmt: skip
    np.testing.assert_allclose(np.array(now), then, rtol=1e-4, atol=1e-3, equal_nan=True)
    assert np.count_nonzero(np.nan_to_num(then)) > 10  # the comparison is not all zeros


def test_versions_unknown_names_and_missing_declarations(live: Engine, group: str) -> None:
    assert live.features.describe(group)["version"] == 1
    live.features.apply(group, "features: [{name: only, kind: request, source: hour_of_day}]")
    assert live.features.describe(group)["version"] == 2
    assert live.features.names(group) == ["only"]
    with pytest.raises(InvalidInput, match="unknown 'views_5m'"):
        live.features.online(group, ["views_5m"], user_id="u1", item_ids=["s1"])
    live.create_group(f"{group}-bare")
    with pytest.raises(NotFound, match="declares no features"):
        live.features.names(f"{group}-bare")


def test_freshness_is_exported(live: Engine, group: str) -> None:
    online(live, group, ["views_5m"], "u1", ["s1"], T)  # the group is followed from now on
    put(live, group, event("u1", "s1", T - 1))
    assert online(live, group, ["views_5m"], "u1", ["s1"], T) == [[1.0]]
    text = observability.render()[0].decode()
    assert "tastebud_feature_freshness_seconds_count" in text
    count = next(line for line in text.splitlines()
                 if line.startswith("tastebud_feature_freshness_seconds_count"))  # fmt: skip
    assert float(count.split()[-1]) >= 1
