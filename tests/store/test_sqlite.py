"""SQLite only: big frames go through attached scratch databases (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tastebud.store.sqlite as sqlite_store
from tastebud.store import open_store
from tastebud.store.sql import _SqlBulkWriter
from tastebud.store.sqlite import SqliteStore
from tests.store.test_contract import ITEM_SCHEMA, decoded, exported, interactions, typed


def test_past_the_attach_limit_big_frames_fall_back_to_executemany(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_SqlBulkWriter, "BIG_CHUNK_ROWS", 2)
    monkeypatch.setattr(SqliteStore, "SCRATCH_ROWS", 2)
    monkeypatch.setattr(sqlite_store, "_MAX_ATTACHED", 3)
    monkeypatch.setattr(sqlite_store, "_SCRATCH_SLICE_ROWS", 3)  # 6 new users: 2 slices
    attached: list[str] = []
    original = SqliteStore._attach

    def spy(self: SqliteStore, path: Path) -> str:
        attached.append(original(self, path))
        return attached[-1]

    monkeypatch.setattr(SqliteStore, "_attach", spy)
    store = open_store(f"sqlite:///{tmp_path / 'tastebud.db'}")
    store.create_group("g")
    rows = [(f"u{n}", f"i{n % 2}", n) for n in range(6)]
    with store.bulk_writer("g", "interactions", "full") as writer:
        writer.write(interactions(rows[:3]))
        writer.write(interactions(rows[3:]))
        assert writer.finish() == 6
    # users (6 new ids): 2 slices; items (2 new ids): 1 slice; the 6 rows: no room left.
    assert attached == ["scratch0", "scratch1", "scratch2"]
    assert decoded(store, "g") == rows
    assert not list(tmp_path.glob("*.import-*"))
    store.close()


def test_scratch_files_left_by_a_killed_import_are_removed_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqliteStore, "SCRATCH_ROWS", 2)
    leftover = tmp_path / "tastebud.db.import-dead.tmp"
    leftover.write_bytes(b"x" * 100)
    store = open_store(f"sqlite:///{tmp_path / 'tastebud.db'}")
    store.create_group("g")
    rows = [("u1", "i1", 1), ("u2", "i2", 2), ("u3", "i1", 3)]
    with store.bulk_writer("g", "interactions", "full") as writer:
        writer.write(interactions(rows))
    assert not leftover.exists()
    assert decoded(store, "g") == rows
    store.close()


def test_items_upsert_through_scratch_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SqliteStore, "SCRATCH_ROWS", 2)
    store = open_store(f"sqlite:///{tmp_path / 'tastebud.db'}")
    store.create_group("g")
    store.put_schema("g", ITEM_SCHEMA)

    def items(prices: dict[str, str]) -> int:
        chunk = typed(ITEM_SCHEMA, [{"ITEM_ID": i, "PRICE": p} for i, p in prices.items()])
        with store.bulk_writer("g", "items", "incremental") as writer:
            return writer.write(chunk)

    assert items({"a": "1", "b": "2", "c": "3"}) == 3
    assert items({"b": "20", "c": None, "d": "4"}) == 3  # two updated, one added
    out = exported(store, "g", "items")
    assert out is not None
    assert sorted(out.select("ITEM_ID", "PRICE").rows()) == [
        ("a", 1.0), ("b", 20.0), ("c", None), ("d", 4.0),
    ]  # fmt: skip
    store.close()
