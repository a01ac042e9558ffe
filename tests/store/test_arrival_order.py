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
