"""PostgreSQL plans per-request queries from statistics: a bulk load refreshes them at once,
rather than leaving the planner blind until autovacuum gets to the table."""

from __future__ import annotations

import datetime

import polars as pl
import psycopg

from tastebud.store import open_store
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
