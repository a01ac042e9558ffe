"""Events per second now, per group, from the store's arrival numbers (SQLite and
PostgreSQL): another group's events do not count, old readings leave the window."""

from __future__ import annotations

from tastebud.console.rate import EventRate
from tastebud.store import Event, Store


def test_the_rate_is_the_groups_own(store: Store, group: str) -> None:
    other = group + "-busy"
    store.create_group(other)
    rate = EventRate()
    assert rate.per_second(store, group, now=1000.0) is None  # nothing to compare with yet
    assert rate.per_second(store, other, now=1000.0) is None
    store.put_events(group, [Event(f"i{n}", 100 + n, "u1") for n in range(20)])
    store.put_events(other, [Event(f"i{n}", 100 + n, "u2") for n in range(50)])
    assert rate.per_second(store, group, now=1002.0) == 10.0  # 20 events in 2 s
    assert rate.per_second(store, other, now=1002.0) == 25.0
    assert rate.per_second(store, group, now=1004.0) == 5.0  # none since: 20 in 4 s
    assert rate.per_second(store, group, now=1030.0) is None  # older readings dropped
    assert rate.per_second(store, group, now=1031.0) == 0.0
