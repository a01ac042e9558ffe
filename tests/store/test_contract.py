"""The storage contract: every test here runs on SQLite and on PostgreSQL (see ``conftest.py``)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import polars as pl
import pytest

from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.schema import DatasetKind, DatasetSchema, validate_frame
from tastebud.store import Event, JobRecord, Record, Store, WriteResult, open_store
from tastebud.store.migrations import LATEST
from tastebud.store.sql import _SqlBulkWriter
from tastebud.store.sqlite import SqliteStore

ITEM_SCHEMA = DatasetSchema.build(
    "items",
    {
        "GENRES": "categorical",
        "PRICE": "numerical",
        "DESCRIPTION": "textual",
        "RELEASED": "timestamp",
    },
)


# helpers ------------------------------------------------------------------------------------------
def typed(schema: DatasetSchema, rows: Sequence[dict[str, str | None]]) -> pl.DataFrame:
    """Rows of strings validated into the typed frame a bulk writer receives."""
    columns = list(rows[0])
    raw = pl.DataFrame(
        {c: [r.get(c) for r in rows] for c in columns}, schema=dict.fromkeys(columns, pl.String)
    )
    accepted, rejected = validate_frame(schema, raw)
    assert rejected.is_empty(), rejected
    return accepted


def interactions(
    rows: Sequence[tuple[str, str, int]], **extra: Sequence[str | None]
) -> pl.DataFrame:
    """A typed interactions chunk from ``(user, item, timestamp)`` and optional extra columns."""
    frame = {
        "USER_ID": [r[0] for r in rows],
        "ITEM_ID": [r[1] for r in rows],
        "TIMESTAMP": [str(r[2]) for r in rows],
        **{name: list(values) for name, values in extra.items()},
    }
    raw = pl.DataFrame(frame, schema=dict.fromkeys(frame, pl.String))
    accepted, rejected = validate_frame(DatasetSchema.default("interactions"), raw)
    assert rejected.is_empty(), rejected
    return accepted


def bulk(
    store: Store, group: str, dataset: DatasetKind, chunk: pl.DataFrame, mode: str = "incremental"
) -> int:
    with store.bulk_writer(group, dataset, mode) as writer:  # type: ignore[arg-type]
        return writer.write(chunk)


def ev(
    user: str | None,
    item: str,
    ts: int,
    event_id: str | None = None,
    session: str | None = None,
    **kw: object,
) -> Event:
    return Event(
        item_id=item, timestamp=ts, user_id=user, event_id=event_id, session_id=session, **kw
    )  # type: ignore[arg-type]


def decoded(store: Store, group: str) -> list[tuple[str, str, int]]:
    """``read_interactions`` turned back into external ids, in the order the store gives."""
    frame = store.read_interactions(group)
    users, items = store.vocabulary(group, "user"), store.vocabulary(group, "item")
    return [
        (users.id(u), items.id(i), t)
        for u, i, t in zip(
            frame["user_index"], frame["item_index"], frame["timestamp"], strict=True
        )
    ]


def exported(store: Store, group: str, dataset: DatasetKind) -> pl.DataFrame | None:
    chunks = list(store.export(group, dataset))
    return pl.concat(chunks) if chunks else None


def assert_dense(store: Store, group: str, kind: str, expected_ids: set[str]) -> None:
    vocab = store.vocabulary(group, kind)  # type: ignore[arg-type]
    ids = vocab.ids(range(len(vocab)))
    assert None not in ids, f"holes in a vocabulary nothing was deleted from: {ids}"
    assert set(ids) == expected_ids
    assert len(ids) == len(expected_ids)
    assert store.vocabulary_size(group, kind) == len(vocab)  # type: ignore[arg-type]


# dataset groups -----------------------------------------------------------------------------------
def test_group_create_get_list_delete(store: Store, group: str) -> None:
    other = store.create_group(f"{group}-b")
    assert other.name == f"{group}-b"
    assert abs(other.created_at - time.time()) < 60
    assert store.get_group(other.name) == other
    assert store.get_group(group).id != other.id
    names = [g.name for g in store.list_groups()]
    assert {group, other.name} <= set(names)

    store.delete_group(other.name)
    with pytest.raises(NotFound, match="does not exist"):
        store.get_group(other.name)
    assert other.name not in [g.name for g in store.list_groups()]
    assert store.get_group(group).name == group  # the other group is untouched
    again = store.create_group(other.name)  # the name is free again
    assert again.name == other.name


def test_duplicate_group_is_already_exists(store: Store, group: str) -> None:
    with pytest.raises(AlreadyExists, match=group):
        store.create_group(group)


@pytest.mark.parametrize(
    "name", ["", "has space", "dot.name", "slash/name", "semi;colon", "quote'", "x" * 64]
)
def test_bad_group_names_are_invalid(store: Store, name: str) -> None:
    with pytest.raises(InvalidInput, match="dataset group name"):
        store.create_group(name)


def test_group_name_of_63_characters_is_fine(store: Store, group: str) -> None:
    name = (group + "-" + "x" * 63)[:63]
    assert store.create_group(name).name == name


def test_unknown_group_is_not_found_everywhere(store: Store, group: str) -> None:
    missing = f"{group}-missing"
    calls = [
        lambda: store.get_group(missing),
        lambda: store.delete_group(missing),
        lambda: store.put_schema(missing, ITEM_SCHEMA),
        lambda: store.get_schema(missing, "items"),
        lambda: store.put_events(missing, [ev("u", "i", 1)]),
        lambda: store.put_records(missing, "items", [Record("i")]),
        lambda: store.delete_users(missing, ["u"]),
        lambda: store.counts(missing),
        lambda: store.vocabulary(missing, "user"),
        lambda: store.read_interactions(missing),
        lambda: store.recent_events(missing, "u", 10),
        lambda: list(store.export(missing, "interactions")),
        lambda: bulk(store, missing, "interactions", interactions([("u", "i", 1)])),
    ]
    for call in calls:
        with pytest.raises(NotFound, match=missing):
            call()


def test_groups_are_isolated_and_delete_group_removes_all_its_data(
    store: Store, group: str
) -> None:
    other = f"{group}-b"
    store.create_group(other)
    for name in (group, other):
        store.put_events(name, [ev("u1", "i1", 1, "e1"), ev("u2", "i2", 2, "e2")])
    store.put_events(other, [ev("u3", "i3", 3, "e3")])
    # Same ids in two groups: each group numbers its own from 0, and event ids dedup per group.
    assert decoded(store, group) == [("u1", "i1", 1), ("u2", "i2", 2)]
    assert len(store.vocabulary(other, "user")) == 3
    store.put_schema(other, ITEM_SCHEMA)
    store.put_records(other, "items", [Record("i1", {"PRICE": 1.0})])
    store.save_job(
        JobRecord(id=f"{other}-job", group=other, kind="import", status="queued", params={})
    )

    store.delete_group(other)
    store.create_group(other)
    assert store.counts(other) == {
        "interactions": 0, "items": 0, "users": 0, "anonymous_interactions": 0,
        "user_ids": 0, "item_ids": 0,
    }  # fmt: skip
    assert store.get_schema(other, "items") is None
    assert store.list_jobs(other) == []
    assert len(store.vocabulary(other, "user")) == 0
    assert decoded(store, group) == [("u1", "i1", 1), ("u2", "i2", 2)]


# schemas ------------------------------------------------------------------------------------------
def test_schema_round_trip_and_replace(store: Store, group: str) -> None:
    assert store.get_schema(group, "items") is None
    store.put_schema(group, ITEM_SCHEMA)
    assert store.get_schema(group, "items") == ITEM_SCHEMA
    assert store.get_schema(group, "items").types["RELEASED"] == "timestamp"  # type: ignore[union-attr]
    smaller = DatasetSchema.build("items", {"GENRES": "categorical"})
    store.put_schema(group, smaller)
    assert store.get_schema(group, "items") == smaller
    assert store.get_schema(group, "users") is None
    users = DatasetSchema.build("users", {"TIER": "categorical", "AGE": "numerical"})
    store.put_schema(group, users)
    assert store.get_schema(group, "users") == users
    assert store.get_schema(group, "items") == smaller


# migrations ---------------------------------------------------------------------------------------
def test_migrations_are_idempotent_and_keep_data(store: Store, group: str, store_url: str) -> None:
    store.put_events(group, [ev("u1", "i1", 1, "e1"), ev("u2", "i2", 2, "e2")])
    store.put_schema(group, ITEM_SCHEMA)
    assert store.migrate() == LATEST
    assert store.migrate() == LATEST
    reopened = open_store(store_url)  # migrates once more, from another connection
    try:
        assert reopened.migrate() == LATEST
        assert decoded(reopened, group) == [("u1", "i1", 1), ("u2", "i2", 2)]
        assert reopened.get_schema(group, "items") == ITEM_SCHEMA
        # The id counters survived too: a new user gets the next index.
        reopened.put_events(group, [ev("u3", "i1", 3)])
        assert reopened.vocabulary(group, "user").index("u3") == 2
    finally:
        reopened.close()


# bulk writer --------------------------------------------------------------------------------------
def test_full_import_replaces_and_incremental_appends(store: Store, group: str) -> None:
    first = interactions([("u1", "i1", 1), ("u2", "i2", 2)])
    assert bulk(store, group, "interactions", first) == 2
    assert bulk(store, group, "interactions", interactions([("u3", "i3", 3)])) == 1
    assert decoded(store, group) == [("u1", "i1", 1), ("u2", "i2", 2), ("u3", "i3", 3)]

    assert bulk(store, group, "interactions", interactions([("u4", "i1", 4)]), "full") == 1
    assert decoded(store, group) == [("u4", "i1", 4)]
    assert store.counts(group)["interactions"] == 1


def test_items_incremental_upserts_and_full_replaces(store: Store, group: str) -> None:
    store.put_schema(group, ITEM_SCHEMA)
    chunk = typed(
        ITEM_SCHEMA,
        [
            {"ITEM_ID": "i1", "PRICE": "1"},
            {"ITEM_ID": "i2", "PRICE": "2"},
            {"ITEM_ID": "i1", "PRICE": "10"},  # the last version of a repeated id wins
        ],
    )
    assert bulk(store, group, "items", chunk) == 2
    assert (
        bulk(
            store,
            group,
            "items",
            typed(ITEM_SCHEMA, [{"ITEM_ID": "i2", "PRICE": "20"}, {"ITEM_ID": "i3", "PRICE": "3"}]),
        )
        == 2
    )
    prices = exported(store, group, "items")
    assert prices is not None
    assert dict(zip(prices["ITEM_ID"], prices["PRICE"], strict=True)) == {
        "i1": 10.0,
        "i2": 20.0,
        "i3": 3.0,
    }

    bulk(store, group, "items", typed(ITEM_SCHEMA, [{"ITEM_ID": "i9", "PRICE": "9"}]), "full")
    prices = exported(store, group, "items")
    assert prices is not None
    assert prices.select("ITEM_ID", "PRICE").rows() == [("i9", 9.0)]
    assert store.counts(group)["items"] == 1


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_error_inside_bulk_writer_rolls_everything_back(
    store: Store, group: str, mode: str
) -> None:
    bulk(store, group, "interactions", interactions([("u1", "i1", 1), ("u2", "i2", 2)]))
    before_users = store.vocabulary(group, "user").ids(range(2))

    with (
        pytest.raises(RuntimeError, match="boom"),
        store.bulk_writer(group, "interactions", mode) as writer,
    ):  # type: ignore[arg-type]
        assert writer.write(interactions([("u3", "i3", 3), ("u1", "i4", 4)])) == 2
        raise RuntimeError("boom")

    assert decoded(store, group) == [("u1", "i1", 1), ("u2", "i2", 2)]
    assert store.vocabulary(group, "user").ids(range(2)) == before_users
    assert len(store.vocabulary(group, "user")) == 2  # u3's index was rolled back too
    assert len(store.vocabulary(group, "item")) == 2
    # and the store is usable afterwards (the transaction and its locks are gone)
    store.put_events(group, [ev("u3", "i3", 3)])
    assert decoded(store, group)[-1] == ("u3", "i3", 3)


def test_bulk_event_ids_dedup_and_rows_without_event_id_are_all_kept(
    store: Store, group: str
) -> None:
    store.put_events(group, [ev("u0", "i0", 1, "e-old")])
    chunk = interactions(
        [
            ("u1", "i1", 10),
            ("u1", "i2", 11),
            ("u2", "i1", 12),
            ("u2", "i3", 13),
            ("u3", "i1", 14),
            ("u3", "i1", 15),
        ],
        EVENT_ID=["e1", None, "e1", None, "e-old", None],
    )
    # e1 twice in the chunk keeps the first; e-old is already stored; the 3 rows without id stay.
    assert bulk(store, group, "interactions", chunk) == 4
    assert decoded(store, group) == [
        ("u0", "i0", 1), ("u1", "i1", 10), ("u1", "i2", 11), ("u2", "i3", 13), ("u3", "i1", 15),
    ]  # fmt: skip


def test_big_bulk_loads_sort_by_user_and_keep_every_rule(
    store: Store, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path of big imports (issue 14): chunks held back, loaded once sorted by (user, time);
    on SQLite through an ADBC scratch database. Thresholds lowered so small data takes it."""
    monkeypatch.setattr(_SqlBulkWriter, "BIG_CHUNK_ROWS", 2)
    monkeypatch.setattr(SqliteStore, "SCRATCH_ROWS", 2)
    store.put_events(group, [ev("u0", "i0", 1, "e-old")])
    first = interactions(
        [("u2", "i1", 20), ("u1", "i1", 10), ("u2", "i2", 5)],
        EVENT_ID=["e1", None, "e-old"],
        EVENT_VALUE=["1.5", None, "2"],
    )
    second = interactions(
        [("u1", "i2", 10), ("u3", "i3", 30), ("u1", "i3", 11)],
        EVENT_ID=[None, "e1", "e2"], EVENT_VALUE=[None, None, "3"],
    )  # fmt: skip
    with store.bulk_writer(group, "interactions", "incremental") as writer:  # type: ignore[arg-type]
        assert writer.write(first) + writer.write(second) == 0  # held back
        # e1 twice keeps the first (file order); e-old is already stored.
        assert writer.finish() == 4
        assert writer.finish() == 0
    # Sorted by user index (given in order of first sight: u0 before, then u2, u1), then time;
    # the tie (u1 at 10) keeps file order.
    assert decoded(store, group) == [
        ("u0", "i0", 1), ("u2", "i1", 20), ("u1", "i1", 10), ("u1", "i2", 10), ("u1", "i3", 11),
    ]  # fmt: skip
    events = store.recent_events(group, "u1", 10)
    assert [(e.item_id, e.event_id, e.event_value) for e in events] == [
        ("i1", None, None), ("i2", None, None), ("i3", "e2", 3.0),
    ]  # fmt: skip
    if isinstance(store, SqliteStore):  # the scratch databases are gone with the transaction
        assert not list(store.path.parent.glob(f"{store.path.name}.import-*"))


@pytest.mark.parametrize("mode", ["full", "incremental"])
def test_error_before_a_big_load_ends_rolls_everything_back(
    store: Store, group: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_SqlBulkWriter, "BIG_CHUNK_ROWS", 2)
    monkeypatch.setattr(SqliteStore, "SCRATCH_ROWS", 2)
    bulk(store, group, "interactions", interactions([("u1", "i1", 1), ("u2", "i2", 2)]))
    with (
        pytest.raises(RuntimeError, match="boom"),
        store.bulk_writer(group, "interactions", mode) as writer,  # type: ignore[arg-type]
    ):
        writer.write(interactions([("u3", "i3", 3), ("u1", "i4", 4), ("u4", "i1", 0)]))
        assert writer.finish() == 3
        raise RuntimeError("boom")
    assert decoded(store, group) == [("u1", "i1", 1), ("u2", "i2", 2)]
    assert len(store.vocabulary(group, "user")) == 2
    store.put_events(group, [ev("u3", "i3", 3)])
    assert decoded(store, group)[-1] == ("u3", "i3", 3)
    if isinstance(store, SqliteStore):
        assert not list(store.path.parent.glob(f"{store.path.name}.import-*"))


# id mapping ---------------------------------------------------------------------------------------
def test_ids_are_dense_and_stable_across_appends(store: Store, group: str) -> None:
    store.put_events(group, [ev(f"u{n}", f"i{n % 3}", n) for n in range(5)])
    assert_dense(store, group, "user", {f"u{n}" for n in range(5)})
    assert_dense(store, group, "item", {"i0", "i1", "i2"})
    first_users = store.vocabulary(group, "user")
    first_items = store.vocabulary(group, "item")

    bulk(
        store,
        group,
        "interactions",
        interactions([("u9", "i9", 9), ("u2", "i1", 10), ("u8", "i0", 11)]),
    )
    store.put_events(group, [ev("u7", "i7", 12), ev("u0", "i9", 13)])
    users, items = store.vocabulary(group, "user"), store.vocabulary(group, "item")
    for n in range(5):
        assert users.index(f"u{n}") == first_users.index(f"u{n}")
    for item in ("i0", "i1", "i2"):
        assert items.index(item) == first_items.index(item)
    assert_dense(store, group, "user", {f"u{n}" for n in (0, 1, 2, 3, 4, 7, 8, 9)})
    assert_dense(store, group, "item", {"i0", "i1", "i2", "i7", "i9"})
    counts = store.counts(group)
    assert (counts["user_ids"], counts["item_ids"]) == (8, 5)
    planted = [(f"u{n}", f"i{n % 3}", n) for n in range(5)]
    planted += [
        ("u9", "i9", 9),
        ("u2", "i1", 10),
        ("u8", "i0", 11),
        ("u7", "i7", 12),
        ("u0", "i9", 13),
    ]
    assert decoded(store, group) == planted


def test_user_index_is_never_reused_after_delete(store: Store, group: str) -> None:
    store.put_events(group, [ev("u0", "i0", 1), ev("u1", "i0", 2), ev("u2", "i0", 3)])
    old = store.vocabulary(group, "user")
    deleted_index = old.index("u1")
    assert store.delete_users(group, ["u1"]) == 1

    after = store.vocabulary(group, "user")
    assert len(after) == 3  # the slot stays, empty
    assert "u1" not in after
    with pytest.raises(NotFound):
        after.id(deleted_index)
    assert after.index("u0") == old.index("u0") and after.index("u2") == old.index("u2")

    store.put_events(group, [ev("u3", "i0", 4), ev("u1", "i0", 5)])
    again = store.vocabulary(group, "user")
    assert {again.index("u3"), again.index("u1")} == {3, 4}
    assert deleted_index not in {again.index("u3"), again.index("u1")}


# real-time events ---------------------------------------------------------------------------------
def test_put_events_dedups_event_ids_within_and_across_batches(store: Store, group: str) -> None:
    first = store.put_events(
        group, [ev("u1", "i1", 1, "e1"), ev("u1", "i9", 2, "e1"), ev("u1", "i2", 3, "e2")]
    )
    assert first == WriteResult(accepted=2, duplicates=1)
    second = store.put_events(group, [ev("u1", "i2", 3, "e2"), ev("u2", "i3", 4, "e3")])
    assert second == WriteResult(accepted=1, duplicates=1)
    # Events without an id are never deduplicated, even when identical.
    assert store.put_events(group, [ev("u2", "i3", 5), ev("u2", "i3", 5)]) == WriteResult(2, 0)
    assert store.counts(group)["interactions"] == 5
    kept = {e.event_id: e.item_id for e in store.recent_events(group, "u1", 10)}
    assert kept == {"e1": "i1", "e2": "i2"}  # the first copy of e1 is the one stored


def test_put_event_batches_counts_each_batch(store: Store, group: str) -> None:
    results = store.put_event_batches(
        group,
        [
            [ev("u1", "i1", 1, "e1"), ev("u1", "i2", 2, "e2")],
            [ev("u2", "i2", 3, "e2"), ev("u2", "i3", 4, "e3")],
            [],
            [ev("u3", "i1", 5, "e1"), ev("u3", "i1", 6)],
        ],
    )
    assert results == [WriteResult(2, 0), WriteResult(1, 1), WriteResult(0, 0), WriteResult(1, 1)]
    assert store.counts(group)["interactions"] == 4
    assert store.put_event_batches(group, [[], []]) == [WriteResult(0), WriteResult(0)]
    assert store.put_events(group, []) == WriteResult(0)


def test_anonymous_session_events_are_linked_once_the_user_is_known(
    store: Store, group: str
) -> None:
    store.put_events(group, [ev(None, "i1", 1, session="s1"), ev(None, "i2", 2, session="s1")])
    store.put_events(group, [ev(None, "i3", 3, session="s2")])
    assert store.counts(group)["anonymous_interactions"] == 3
    assert store.read_interactions(group).is_empty()  # anonymous events are not training data yet

    store.put_events(group, [ev("u1", "i4", 4, session="s1")])
    assert store.counts(group)["anonymous_interactions"] == 1  # only s2's event is left
    assert decoded(store, group) == [("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i4", 4)]

    # Later events of the same session without a user are attributed to u1 straight away.
    store.put_events(group, [ev(None, "i5", 5, session="s1")])
    assert store.counts(group)["anonymous_interactions"] == 1
    assert [e.item_id for e in store.recent_events(group, "u1", 10)] == ["i1", "i2", "i4", "i5"]
    assert all(e.session_id == "s1" for e in store.recent_events(group, "u1", 10))


def test_anonymous_and_identified_events_of_a_session_in_one_batch(
    store: Store, group: str
) -> None:
    result = store.put_events(
        group,
        [
            ev(None, "i1", 1, session="s1"),
            ev("u1", "i2", 2, session="s1"),
            ev(None, "i3", 3, session="s1"),
        ],
    )
    assert result.accepted == 3
    assert store.counts(group)["anonymous_interactions"] == 0
    assert decoded(store, group) == [("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 3)]


def test_recent_events_newest_last_with_limit_and_all_fields(store: Store, group: str) -> None:
    store.put_events(
        group,
        [
            ev("u1", "a", 5, "ea", event_type="click", event_value=0.5, recommendation_id="r1",
               impression="a|b|c", context={"DEVICE": "phone", "SCORE": 2.5}),
            ev("u1", "b", 1), ev("u2", "x", 100), ev("u1", "c", 3), ev("u1", "d", 3),
            ev("u1", "e", 9),
        ],
    )  # fmt: skip
    recent = store.recent_events(group, "u1", 10)
    assert [e.item_id for e in recent] == ["b", "c", "d", "a", "e"]  # by time; ties by arrival
    assert [e.item_id for e in store.recent_events(group, "u1", 2)] == ["a", "e"]
    assert store.recent_events(group, "nobody", 5) == []
    full = recent[3]
    assert full == Event(
        item_id="a", timestamp=5, user_id="u1", event_type="click", event_value=0.5, event_id="ea",
        recommendation_id="r1", impression="a|b|c", context={"DEVICE": "phone", "SCORE": 2.5},
    )  # fmt: skip


def test_recent_events_of_many_users_equals_one_by_one(store: Store, group: str) -> None:
    events = [ev(f"u{i % 7}", f"i{(i * 5) % 11}", i % 4, event_type="click") for i in range(60)]
    store.put_events(group, [*events, ev("u1", "late", 2, event_value=1.5)])
    users = [f"u{i}" for i in range(7)] + ["nobody", "u3"]  # repeats and unknown users too
    many = store.recent_events_of(group, users, 5)
    assert set(many) == {f"u{i}" for i in range(7)}
    for user in many:
        assert many[user] == store.recent_events(group, user, 5)
    assert len(store.recent_events_of(group, [f"u{i}" for i in range(1200)], 3)) == 7
    frame = store.latest_interactions(group, users, 5)
    items = store.vocabulary(group, "item")
    for user in many:
        rows = frame.filter(pl.col("user_id") == user)
        assert items.ids(rows["item_index"].to_list()) == [e.item_id for e in many[user]]
        assert rows["timestamp"].to_list() == [e.timestamp for e in many[user]]
        assert rows["event_type"].to_list() == [e.event_type for e in many[user]]
    assert frame["user_id"].n_unique() == 7
    assert store.latest_interactions(group, ["nobody"], 5).is_empty()


def test_seen_items_are_every_item_once_however_old(store: Store, group: str) -> None:
    old = [ev("u1", f"old{i}", i) for i in range(30)]
    store.put_events(group, [*old, ev("u1", "old3", 50), ev("u2", "x", 1), ev("u1", "new", 99)])
    assert [e.item_id for e in store.recent_events(group, "u1", 2)] == ["old3", "new"]
    frame = store.seen_items(group, ["u2", "nobody", "u1", "u1"])  # repeats and unknown users
    assert frame.columns == ["user_id", "item_index"]
    assert frame["item_index"].dtype == pl.Int32
    items = store.vocabulary(group, "item")
    mine = frame.filter(pl.col("user_id") == "u1")["item_index"].to_list()
    assert mine == sorted(mine)
    assert sorted(items.ids(mine)) == sorted([f"old{i}" for i in range(30)] + ["new"])
    assert frame["user_id"].to_list() == ["u1"] * 31 + ["u2"]
    assert store.seen_items(group, ["nobody"]).is_empty()
    many = [f"u{i}" for i in range(1200)]  # more users than one IN (...) list holds
    assert store.seen_items(group, many)["user_id"].n_unique() == 2
    one = store.seen_item_indexes(group, "u1")  # the real-time path's read of one user
    assert sorted(one.tolist()) == mine
    assert store.seen_item_indexes(group, "nobody").size == 0


def test_read_interactions_int_arrays_in_arrival_order(store: Store, group: str) -> None:
    store.put_events(
        group,
        [ev("u1", "i1", 30, event_type="buy", event_value=2.0, impression="i1|i9"),
         ev("u2", "i2", 10)],
    )  # fmt: skip
    # One import whose rows share a timestamp: ties keep the file's order.
    bulk(
        store,
        group,
        "interactions",
        interactions([("u3", "i3", 20), ("u1", "i2", 20), ("u2", "i1", 20), ("u3", "i1", 20)]),
    )
    frame = store.read_interactions(group)
    assert frame.schema == pl.Schema(
        {"user_index": pl.Int32, "item_index": pl.Int32, "timestamp": pl.Int64,
         "event_type": pl.String, "event_value": pl.Float32, "impression": pl.String}
    )  # fmt: skip
    assert frame["timestamp"].to_list() == [30, 10, 20, 20, 20, 20]
    assert frame["impression"].to_list() == ["i1|i9"] + [None] * 5
    assert decoded(store, group)[2:] == [
        ("u3", "i3", 20),
        ("u1", "i2", 20),
        ("u2", "i1", 20),
        ("u3", "i1", 20),
    ]
    assert frame["event_type"].to_list()[:2] == ["buy", None]
    assert frame["event_value"].to_list()[:2] == [2.0, None]


def test_empty_group_reads(store: Store, group: str) -> None:
    assert store.read_interactions(group).height == 0
    assert store.read_interactions(group)["user_index"].dtype == pl.Int32
    assert len(store.vocabulary(group, "item")) == 0
    assert exported(store, group, "interactions") is None
    assert store.delete_users(group, ["nobody"]) == 0


# records ------------------------------------------------------------------------------------------
def test_put_records_upserts_whole_rows_last_version_wins(store: Store, group: str) -> None:
    store.put_schema(group, ITEM_SCHEMA)
    stored = store.put_records(
        group,
        "items",
        [
            Record("i1", {"PRICE": 1.0, "GENRES": "a|b"}, creation_timestamp=100),
            Record("i2", {"PRICE": 2.0}),
            Record("i1", {"PRICE": 3.0}, creation_timestamp=300),
        ],
    )
    assert stored == 2
    assert store.put_records(group, "items", [Record("i2", {"GENRES": "c"})]) == 1
    items = exported(store, group, "items")
    assert items is not None
    rows = {r["ITEM_ID"]: r for r in items.iter_rows(named=True)}
    assert (rows["i1"]["PRICE"], rows["i1"]["GENRES"], rows["i1"]["CREATION_TIMESTAMP"]) == (
        3.0,
        None,
        300,
    )
    assert (rows["i2"]["PRICE"], rows["i2"]["GENRES"]) == (None, "c")  # whole row replaced
    assert store.counts(group)["items"] == 2
    assert_dense(store, group, "item", {"i1", "i2"})
    with pytest.raises(InvalidInput, match="put_events"):
        store.put_records(group, "interactions", [Record("x")])
    assert store.put_records(group, "users", []) == 0


# export -------------------------------------------------------------------------------------------
def test_export_items_round_trip_with_schema_fields(store: Store, group: str) -> None:
    store.put_schema(group, ITEM_SCHEMA)
    rows = [
        {"ITEM_ID": "i1", "CREATION_TIMESTAMP": "100", "GENRES": "drama|comedy", "PRICE": "9.5",
         "DESCRIPTION": 'a "quoted", text\nwith a newline', "RELEASED": "2024-01-01T00:00:00Z"},
        {"ITEM_ID": "i2", "CREATION_TIMESTAMP": None, "GENRES": None, "PRICE": "-1e3",
         "DESCRIPTION": "plain", "RELEASED": "86400"},
    ]  # fmt: skip
    chunk = typed(ITEM_SCHEMA, rows)
    bulk(store, group, "items", chunk)
    out = exported(store, group, "items")
    assert out is not None
    assert out.columns == [
        "ITEM_ID",
        "CREATION_TIMESTAMP",
        "GENRES",
        "PRICE",
        "DESCRIPTION",
        "RELEASED",
    ]
    assert out.rows() == [
        ("i1", 100, "drama|comedy", 9.5, 'a "quoted", text\nwith a newline', 1704067200),
        ("i2", None, None, -1000.0, "plain", 86400),
    ]


def test_export_interactions_round_trip_with_context(store: Store, group: str) -> None:
    schema = DatasetSchema.build("interactions", {"DEVICE": "categorical", "SCORE": "numerical"})
    store.put_schema(group, schema)
    raw = {
        "USER_ID": ["u1", "u2"], "ITEM_ID": ["i1", "i2"], "TIMESTAMP": ["10", "20"],
        "EVENT_TYPE": ["click", None], "EVENT_VALUE": ["1.5", None], "EVENT_ID": ["e1", None],
        "SESSION_ID": ["s1", None], "RECOMMENDATION_ID": [None, "r2"],
        "IMPRESSION": ["i1|i2", None],
        "DEVICE": ["phone", None], "SCORE": [None, "0.25"],
    }  # fmt: skip
    accepted, rejected = validate_frame(schema, pl.DataFrame(raw))
    assert rejected.is_empty()
    bulk(store, group, "interactions", accepted)
    store.put_events(group, [ev(None, "i3", 30, "e3", session="s9", context={"DEVICE": "tv"})])
    out = exported(store, group, "interactions")
    assert out is not None
    assert out.columns == [
        "USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "EVENT_ID", "SESSION_ID",
        "RECOMMENDATION_ID", "IMPRESSION", "DEVICE", "SCORE",
    ]  # fmt: skip
    assert out.rows() == [
        ("u1", "i1", 10, "click", 1.5, "e1", "s1", None, "i1|i2", "phone", None),
        ("u2", "i2", 20, None, None, None, None, "r2", None, None, 0.25),
        (None, "i3", 30, None, None, "e3", "s9", None, None, "tv", None),  # still anonymous
    ]


def test_export_users(store: Store, group: str) -> None:
    schema = DatasetSchema.build("users", {"TIER": "categorical", "AGE": "numerical"})
    store.put_schema(group, schema)
    bulk(
        store,
        group,
        "users",
        typed(
            schema,
            [
                {"USER_ID": "u1", "TIER": "gold", "AGE": "30"},
                {"USER_ID": "u2", "TIER": None, "AGE": None},
            ],
        ),
    )
    out = exported(store, group, "users")
    assert out is not None
    assert out.rows() == [("u1", "gold", 30.0), ("u2", None, None)]
    assert out.columns == ["USER_ID", "TIER", "AGE"]


# deleting users -----------------------------------------------------------------------------------
def test_delete_users_erases_interactions_profile_sessions_and_id(store: Store, group: str) -> None:
    schema = DatasetSchema.build("users", {"TIER": "categorical"})
    store.put_schema(group, schema)
    store.put_records(
        group, "users", [Record("u1", {"TIER": "gold"}), Record("u2", {"TIER": "free"})]
    )
    store.put_events(
        group, [ev(None, "i1", 1, session="s1"), ev("u1", "i2", 2, session="s1"), ev("u2", "i1", 3)]
    )
    bulk(store, group, "interactions", interactions([("u1", "i3", 4), ("u2", "i3", 5)]))
    old_index = store.vocabulary(group, "user").index("u1")

    assert store.delete_users(group, ["u1", "u1", "nobody"]) == 1

    assert decoded(store, group) == [("u2", "i1", 3), ("u2", "i3", 5)]
    assert "u1" not in store.vocabulary(group, "user")
    assert store.recent_events(group, "u1", 10) == []
    users = exported(store, group, "users")
    assert users is not None and users["USER_ID"].to_list() == ["u2"]
    events = exported(store, group, "interactions")
    assert events is not None and events["USER_ID"].to_list() == ["u2", "u2"]
    assert store.counts(group)["users"] == 1
    # The session link is gone: s1's next anonymous event stays anonymous.
    store.put_events(group, [ev(None, "i4", 6, session="s1")])
    assert store.counts(group)["anonymous_interactions"] == 1
    # A returning u1 is a new user with a new index.
    store.put_events(group, [ev("u1", "i1", 7)])
    assert store.vocabulary(group, "user").index("u1") not in (old_index, -1)
    assert decoded(store, group)[-1] == ("u1", "i1", 7)


# jobs and tokens ----------------------------------------------------------------------------------
def test_jobs_round_trip(store: Store, group: str) -> None:
    job = JobRecord(
        id=f"{group}-job-1", group=group, kind="import", status="queued",
        params={"path": "/data/x.csv", "max_error_rate": 0.1}, created_at=100.0, updated_at=100.0,
    )  # fmt: skip
    store.save_job(job)
    assert store.get_job(job.id) == job
    done = dataclasses.replace(
        job, status="succeeded", progress=1.0, result={"accepted": 3}, updated_at=105.5
    )
    store.save_job(done)
    assert store.get_job(job.id) == done
    failed = JobRecord(
        id=f"{group}-job-2", group=group, kind="import", status="failed", params={},
        error="line 3: bad", progress=0.5, created_at=200.0, updated_at=201.0,
    )  # fmt: skip
    store.save_job(failed)
    assert store.list_jobs(group) == [failed, done]  # newest first
    assert store.list_jobs(group, limit=1) == [failed]
    assert store.list_jobs(f"{group}-other") == []
    with pytest.raises(NotFound, match="nope"):
        store.get_job(f"{group}-nope")


def test_tokens_round_trip(store: Store, group: str) -> None:
    name = f"{group}-token"
    token_hash = f"hash-{group}"
    before = int(time.time())
    store.add_token(token_hash, name=name, scope="ingest")
    found = store.find_token(token_hash)
    assert found is not None
    assert (found.name, found.scope) == (name, "ingest")
    assert before - 1 <= found.created_at <= time.time() + 1
    assert store.find_token(f"other-{group}") is None
    assert name in [t.name for t in store.list_tokens()]
    with pytest.raises(AlreadyExists, match=name):
        store.add_token(f"hash2-{group}", name=name, scope="admin")
    store.revoke_token(name)
    assert store.find_token(token_hash) is None
    assert name not in [t.name for t in store.list_tokens()]
    with pytest.raises(NotFound, match=name):
        store.revoke_token(name)
