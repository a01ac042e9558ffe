"""PostgreSQL plans per-request queries from statistics: a bulk load refreshes them at once,
rather than leaving the planner blind until autovacuum gets to the table."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import polars as pl
import psycopg

from tastebud.store import open_store
from tastebud.store.base import Event
from tastebud.store.postgres import STORED_EVENT_IDS
from tests.conftest import unique_name


def test_a_bulk_load_analyzes_what_it_loaded(pg_url: str) -> None:
    store = open_store(pg_url)
    group = unique_name("stats")
    store.create_group(group)
    started = datetime.datetime.now(datetime.UTC)
    try:
        chunk = pl.DataFrame({"USER_ID": ["u1", "u2"], "ITEM_ID": ["i1", "i2"],
                              "TIMESTAMP": [1, 2]})  # fmt: skip
        with store.bulk_writer(group, "interactions", "full") as writer:
            writer.write(chunk)
    finally:
        store.delete_group(group)
        store.close()
    with psycopg.connect(pg_url) as conn:
        rows = dict(conn.execute(
            "SELECT relname, last_analyze FROM pg_stat_user_tables "
            "WHERE relname IN ('interactions', 'id_map')").fetchall())  # fmt: skip
    assert rows["interactions"] is not None and rows["interactions"] >= started
    assert rows["id_map"] is not None and rows["id_map"] >= started


def test_the_duplicate_check_probes_each_event_id_after_a_bulk_load(pg_url: str) -> None:
    """A bulk import without event ids leaves statistics that say "no event ids"; live events
    with ids come after. The duplicate check must still look each id up in the index rather
    than read every id the group holds (it did: 4 ms a commit after 20,000 live events)."""
    store = open_store(pg_url)
    group = unique_name("dupcheck")
    store.create_group(group)
    try:
        n = 5_000
        chunk = pl.DataFrame({"USER_ID": [f"u{k % 50}" for k in range(n)],
                              "ITEM_ID": [f"i{k % 70}" for k in range(n)],
                              "TIMESTAMP": list(range(n))})  # fmt: skip
        with store.bulk_writer(group, "interactions", "full") as writer:
            writer.write(chunk)
        live = [Event(user_id=f"u{k % 50}", item_id=f"i{k % 70}", timestamp=n + k,
                      event_type="click", event_id=f"e{k}") for k in range(3_000)]  # fmt: skip
        assert store.put_events(group, live).accepted == 3_000
        with psycopg.connect(pg_url) as conn:
            group_id = conn.execute(
                "SELECT id FROM dataset_groups WHERE name = %s", (group,)
            ).fetchone()
            assert group_id is not None
            plan = conn.execute(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {STORED_EVENT_IDS}",
                (["e17", "e2999", "missing"], group_id[0]),
            ).fetchone()
        assert plan is not None
        scans = list(_index_scans(plan[0][0]["Plan"]))
        assert scans and all("event_id" in s.get("Index Cond", "") for s in scans), scans
        assert all(s.get("Rows Removed by Filter", 0) == 0 for s in scans), scans
        assert store.put_events(group, live[:2]).duplicates == 2
    finally:
        store.delete_group(group)
        store.close()


def _index_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "Index" in node["Node Type"]:
        yield node
    for child in node.get("Plans", []):
        yield from _index_scans(child)
