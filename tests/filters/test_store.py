"""Filters and user profiles in the store; runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store import FilterRecord, Record, Store
from tastebud.store.migrations import LATEST


def test_filters_round_trip_replace_and_delete(store: Store, group: str) -> None:
    assert LATEST >= 3
    first = FilterRecord(group, "cheap", "INCLUDE ItemID WHERE Items.PRICE < 10", created_at=5)
    store.put_filter(first)
    assert store.get_filter(group, "cheap") == first
    with pytest.raises(AlreadyExists, match="filter 'cheap' already exists"):
        store.put_filter(first)
    changed = FilterRecord(group, "cheap", "INCLUDE ItemID WHERE Items.PRICE < 5", created_at=6)
    store.put_filter(changed, replace=True)
    store.put_filter(FilterRecord(group, "a-first", 'EXCLUDE ItemID WHERE Items.X IN ("y")'))
    listed = store.list_filters(group)
    assert [f.name for f in listed] == ["a-first", "cheap"]
    assert listed[1].expression.endswith("< 5") and listed[0].created_at > 0
    store.delete_filter(group, "cheap")
    with pytest.raises(NotFound, match=f"filter 'cheap' does not exist in group '{group}'"):
        store.get_filter(group, "cheap")
    with pytest.raises(NotFound, match="filter 'cheap'"):
        store.delete_filter(group, "cheap")


def test_filters_belong_to_their_group(store: Store, group: str) -> None:
    other = f"{group}-other"
    store.create_group(other)
    store.put_filter(FilterRecord(other, "f", "INCLUDE ItemID WHERE Items.A IN ($A)"))
    assert store.list_filters(group) == []
    store.delete_group(other)
    store.create_group(other)
    assert store.list_filters(other) == []  # deleting the group deleted its filters
    with pytest.raises(NotFound, match="dataset group 'nope'"):
        store.list_filters("nope")


def test_get_user_reads_one_profile(store: Store, group: str) -> None:
    store.put_records(group, "users", [Record("u1", {"TIER": "gold", "AGE": 30.0}), Record("u2")])
    assert store.get_user(group, "u1") == Record("u1", {"TIER": "gold", "AGE": 30.0})
    assert store.get_user(group, "u2") == Record("u2", {})
    assert store.get_user(group, "nobody") is None
