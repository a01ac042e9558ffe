"""Arrival numbers: training snapshots and live updates read by them (SQLite and PostgreSQL)."""

from __future__ import annotations

from tastebud.store import Event, Store


def test_reads_by_arrival_number(store: Store, group: str) -> None:
    assert store.last_seq(group) == 0
    store.put_events(group, [Event("a", 100, "u1"), Event("b", 101, "u1")])
    snapshot = store.last_seq(group)
    store.put_events(group, [Event("c", 102, "u2", event_type="click", event_value=2.0)])
    assert store.last_seq(group) > snapshot
    assert store.read_interactions(group, up_to_seq=snapshot).height == 2
    assert store.read_interactions(group).height == 3
    after = store.interactions_after(group, snapshot, limit=10)
    assert after.select("timestamp", "event_type", "event_value").rows() == [(102, "click", 2.0)]
    items = store.vocabulary(group, "item")
    assert items.id(int(after["item_index"][0])) == "c"
    assert store.interactions_after(group, store.last_seq(group), limit=10).is_empty()
    assert store.interactions_after(group, 0, limit=1).height == 1


def test_arrivals_counted_per_group(store: Store, group: str) -> None:
    other = group + "-other"
    store.create_group(other)
    before = store.newest_seq()
    store.put_events(group, [Event("a", 100, "u1"), Event("b", 101, "u1")])
    store.put_events(other, [Event("a", 100, "u1")])
    middle = store.newest_seq()
    store.put_events(group, [Event("c", 102, "u2")])
    newest = store.newest_seq()
    assert before < middle < newest
    assert store.count_arrived(group, before, newest) == 3
    assert store.count_arrived(other, before, newest) == 1
    assert store.count_arrived(group, middle, newest) == 1
    assert store.count_arrived(group, newest, newest) == 0
