"""Import jobs on both backends: formats, rejects with file line numbers, budgets, modes, chunks."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import tastebud.jobs.imports as imports
from tastebud.errors import InvalidInput
from tastebud.jobs import ImportRejected, ImportRequest, ImportResult, run_import
from tastebud.schema import DatasetSchema
from tastebud.store import Store
from tastebud.store.sqlite import SqliteStore

HEADER = "USER_ID,ITEM_ID,TIMESTAMP,DEVICE\n"
# Ten good rows with a planted answer: user u<n> saw item i<n % 4> at time 1000 + n.
GOOD_ROWS = [f"u{n},i{n % 4},{1000 + n},{'phone' if n % 2 else 'tv'}\n" for n in range(10)]


def planted(numbers: range | list[int]) -> list[tuple[str, str, int]]:
    return [(f"u{n}", f"i{n % 4}", 1000 + n) for n in numbers]


def decoded(store: Store, group: str) -> list[tuple[str, str, int]]:
    frame = store.read_interactions(group)
    users, items = store.vocabulary(group, "user"), store.vocabulary(group, "item")
    return [
        (users.id(u), items.id(i), t)
        for u, i, t in zip(
            frame["user_index"], frame["item_index"], frame["timestamp"], strict=True
        )
    ]


def write(path: Path, text: str | bytes) -> Path:
    data = text.encode() if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


@pytest.fixture
def run(store: Store, group: str, tmp_path: Path) -> Callable[..., ImportResult]:
    """``run(path, **request_options)``: one import into the test's group."""

    def run(
        path: Path,
        *,
        dataset: str = "interactions",
        progress: list[float] | None = None,
        **options: object,
    ) -> ImportResult:
        request = ImportRequest(group=group, dataset=dataset, path=path, **options)  # type: ignore[arg-type]
        on_progress = (
            (lambda fraction, message: progress.append(fraction)) if progress is not None else None
        )
        return run_import(
            store,
            request,
            rejects_path=tmp_path / "rejects" / f"{path.name}.csv",
            on_progress=on_progress,
        )

    return run


def rejects(result: ImportResult) -> list[tuple[int | None, str, str]]:
    assert result.rejects_file is not None
    frame = pl.read_csv(
        result.rejects_file, schema={"line": pl.Int64, "reason": pl.String, "row": pl.String}
    )
    return frame.rows()


# formats ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_import_each_format_and_infer_the_schema(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"events{suffix}"
    if suffix == ".parquet":
        rows = [line.strip().split(",") for line in GOOD_ROWS]
        pl.DataFrame(
            {
                "USER_ID": [r[0] for r in rows],
                "ITEM_ID": [r[1] for r in rows],
                "TIMESTAMP": [int(r[2]) for r in rows],
                "DEVICE": [r[3] for r in rows],
            }
        ).write_parquet(path)
    else:
        write(path, HEADER + "".join(GOOD_ROWS))

    result = run(path)
    assert (result.accepted, result.rejected, result.stored) == (10, 0, 10)
    assert result.schema_inferred and result.rejects_file is None
    assert decoded(store, group) == planted(range(10))
    schema = store.get_schema(group, "interactions")
    assert schema is not None and schema.extra_fields == {"DEVICE": "categorical"}
    exported = pl.concat(list(store.export(group, "interactions")))
    assert exported["DEVICE"].to_list() == ["phone" if n % 2 else "tv" for n in range(10)]


def test_parquet_numbers_and_nulls(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    path = tmp_path / "items.parquet"
    pl.DataFrame(
        {"ITEM_ID": ["a", "b", "c"], "PRICE": [1.5, None, 3.0], "GENRES": ["x|y", None, "z"]}
    ).write_parquet(path)
    result = run(path, dataset="items")
    assert (result.accepted, result.stored) == (3, 3)
    schema = store.get_schema(group, "items")
    assert schema is not None and schema.extra_fields == {
        "PRICE": "numerical",
        "GENRES": "categorical",
    }
    out = pl.concat(list(store.export(group, "items")))
    assert out.select("ITEM_ID", "PRICE", "GENRES").rows() == [
        ("a", 1.5, "x|y"),
        ("b", None, None),
        ("c", 3.0, "z"),
    ]


def test_bom_and_crlf_are_read(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = "\ufeff" + (HEADER + "".join(GOOD_ROWS[:3])).replace("\n", "\r\n")
    result = run(write(tmp_path / "bom.csv", text))
    assert result.accepted == 3
    assert decoded(store, group) == planted(range(3))


# bad files ----------------------------------------------------------------------------------------
def test_empty_file(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        run(write(tmp_path / "empty.csv", ""))
    assert store.counts(group)["interactions"] == 0


def test_header_only_file(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="no data rows"):
        run(write(tmp_path / "header.csv", HEADER))
    assert store.get_schema(group, "interactions") is None  # nothing inferred from nothing


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.csv", "no such file"), ("events.json", "unsupported file type")],
)
def test_missing_or_unsupported_file(
    run: Callable[..., ImportResult], tmp_path: Path, name: str, message: str
) -> None:
    if name.endswith(".json"):
        write(tmp_path / name, "{}")
    with pytest.raises(InvalidInput, match=message):
        run(tmp_path / name)


def test_not_a_parquet_file(run: Callable[..., ImportResult], tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="Parquet"):
        run(write(tmp_path / "fake.parquet", "USER_ID\nu1\n"))


def test_repeated_and_missing_columns(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="repeated column"):
        run(write(tmp_path / "twice.csv", "USER_ID,ITEM_ID,TIMESTAMP,ITEM_ID\nu1,i1,1,i2\n"))
    with pytest.raises(InvalidInput, match=r"required column.*TIMESTAMP"):
        run(write(tmp_path / "short.csv", "USER_ID,ITEM_ID\nu1,i1\n"))
    assert store.counts(group)["interactions"] == 0


def test_latin1_file_names_the_line_and_the_option(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = HEADER + GOOD_ROWS[0] + "u1,caf\xe9,1001,tv\n" + GOOD_ROWS[2]
    path = write(tmp_path / "latin.csv", text.encode("latin-1"))
    with pytest.raises(InvalidInput, match=r"line 3 is not valid utf-8.*--encoding") as caught:
        run(path)
    assert "latin-1" in caught.value.message
    assert store.counts(group)["interactions"] == 0

    result = run(path, encoding="latin-1")
    assert result.accepted == 3
    assert decoded(store, group) == [("u0", "i0", 1000), ("u1", "café", 1001), ("u2", "i2", 1002)]


def test_latin1_gzip_file(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = HEADER + "u1,caf\xe9,1001,tv\n"
    path = write(tmp_path / "latin.csv.gz", text.encode("latin-1"))
    with pytest.raises(InvalidInput, match="line 2 is not valid utf-8"):
        run(path)
    assert run(path, encoding="latin-1").accepted == 1


# rejected rows ------------------------------------------------------------------------------------
def test_malformed_and_wrong_typed_rows_go_to_the_rejects_file(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    lines = list(GOOD_ROWS)
    lines[1] = "u1,i1,1001,tv,extra\n"  # line 3: five fields
    lines[4] = "u4,i0,yesterday,tv\n"  # line 6: not a timestamp
    lines[6] = "u6,i2\n"  # line 8: two fields
    lines[8] = ",i0,1008,tv\n"  # line 10: no user
    result = run(write(tmp_path / "mixed.csv", HEADER + "".join(lines)), max_error_rate=0.5)
    assert (result.accepted, result.rejected, result.stored) == (6, 4, 6)
    assert decoded(store, group) == planted([0, 2, 3, 5, 7, 9])
    assert rejects(result) == [
        (3, "expected 4 fields, got 5", "u1,i1,1001,tv,extra"),
        (
            6,
            "interactions.TIMESTAMP: expected epoch seconds or ISO-8601, got 'yesterday'",
            "u4,i0,yesterday,tv",
        ),
        (8, "expected 4 fields, got 2", "u6,i2"),
        (10, "interactions.USER_ID: required value is missing", ",i0,1008,tv"),
    ]


def test_line_numbers_count_blank_lines(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = HEADER + GOOD_ROWS[0] + "\n" + GOOD_ROWS[1] + "u2,i2,later,tv\n" + GOOD_ROWS[3]
    result = run(write(tmp_path / "blank.csv", text), max_error_rate=0.5)
    assert (result.accepted, result.rejected) == (3, 1)
    assert [line for line, _, _ in rejects(result)] == [5]  # the blank line 3 still counts


def test_line_numbers_count_quoted_newlines(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = HEADER + 'u0,i0,1000,"two\nlines"\n' + "u1,i1,soon,tv\n" + GOOD_ROWS[2]
    result = run(write(tmp_path / "quoted.csv", text), max_error_rate=0.5)
    assert (result.accepted, result.rejected) == (2, 1)
    assert [line for line, _, _ in rejects(result)] == [4]  # the record on lines 2-3 is one row


def test_error_budget_exceeded_stores_nothing(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    first = run(write(tmp_path / "first.csv", HEADER + "".join(GOOD_ROWS[:4])))
    assert first.stored == 4
    lines = [f"u{n},i{n},bad{n},tv\n" for n in range(20, 24)] + [
        f"u{n},i{n % 4},{1000 + n},tv\n" for n in range(24, 30)
    ]
    for mode in ("incremental", "full"):
        with pytest.raises(
            ImportRejected, match=r"4 of 10 rows rejected.*nothing was stored"
        ) as caught:
            run(
                write(tmp_path / "second.csv", HEADER + "".join(lines)),
                max_error_rate=0.3,
                mode=mode,
            )
        assert (caught.value.result.accepted, caught.value.result.rejected) == (6, 4)
        assert len(rejects(caught.value.result)) == 4
        assert decoded(store, group) == planted(range(4))  # the earlier import is intact
        assert "u24" not in store.vocabulary(group, "user")  # no ids were kept either
    # exactly at the budget is fine
    assert (
        run(write(tmp_path / "third.csv", HEADER + "".join(lines)), max_error_rate=0.4).stored == 6
    )


def test_rejected_first_import_does_not_keep_its_inferred_schema(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = HEADER + "u1,i1,bad,tv\nu2,i2,worse,tv\n"
    with pytest.raises(ImportRejected):
        run(write(tmp_path / "bad.csv", text))
    assert store.get_schema(group, "interactions") is None
    assert store.counts(group)["interactions"] == 0


def test_unknown_column_is_invalid_and_nothing_is_stored(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    run(write(tmp_path / "first.csv", HEADER + "".join(GOOD_ROWS[:2])))  # infers DEVICE
    with pytest.raises(InvalidInput, match=r"unknown field.*'COLOUR'"):
        run(
            write(
                tmp_path / "second.csv", "USER_ID,ITEM_ID,TIMESTAMP,DEVICE,COLOUR\nu5,i5,5,tv,red\n"
            )
        )
    with pytest.raises(InvalidInput, match=r"unknown field.*'COLOUR'"):
        run(
            write(tmp_path / "third.csv", "USER_ID,ITEM_ID,TIMESTAMP,COLOUR\nu6,i6,6,red\n"),
            mode="full",
        )
    assert decoded(store, group) == planted(range(2))


def test_schema_inferred_on_first_import_then_enforced(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    first = run(
        write(tmp_path / "a.csv", "ITEM_ID,PRICE,GENRES\na,1.5,x|y\nb,2,z\n"), dataset="items"
    )
    assert first.schema_inferred
    assert store.get_schema(group, "items") == DatasetSchema.build(
        "items", {"PRICE": "numerical", "GENRES": "categorical"}
    )
    second = run(
        write(tmp_path / "b.csv", "ITEM_ID,PRICE\nc,cheap\nd,4\n"),
        dataset="items",
        max_error_rate=0.5,
    )
    assert not second.schema_inferred
    assert (second.accepted, second.rejected) == (1, 1)
    assert rejects(second) == [(2, "items.PRICE: expected a number, got 'cheap'", "c,cheap")]
    # A declared schema wins over inference from the start.
    store.put_schema(group, DatasetSchema.build("users", {"AGE": "categorical"}))
    third = run(write(tmp_path / "u.csv", "USER_ID,AGE\nu1,30\n"), dataset="users")
    assert not third.schema_inferred
    assert store.get_schema(group, "users").types["AGE"] == "categorical"  # type: ignore[union-attr]


# modes --------------------------------------------------------------------------------------------
def test_full_replaces_and_incremental_appends(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    run(write(tmp_path / "a.csv", HEADER + "".join(GOOD_ROWS[:3])))
    run(write(tmp_path / "b.csv", HEADER + "".join(GOOD_ROWS[3:5])), mode="incremental")
    assert decoded(store, group) == planted(range(5))
    result = run(write(tmp_path / "c.csv", HEADER + "".join(GOOD_ROWS[7:9])), mode="full")
    assert result.mode == "full"
    assert decoded(store, group) == planted([7, 8])


def test_items_incremental_upserts(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    text = "ITEM_ID,CREATION_TIMESTAMP,PRICE\na,100,1\nb,200,2\na,300,3\n"
    assert run(write(tmp_path / "a.csv", text), dataset="items").stored == 2
    run(
        write(tmp_path / "b.csv", "ITEM_ID,CREATION_TIMESTAMP,PRICE\nb,250,20\nc,400,4\n"),
        dataset="items",
    )
    out = pl.concat(list(store.export(group, "items")))
    assert sorted(out.rows()) == [("a", 300, 3.0), ("b", 250, 20.0), ("c", 400, 4.0)]


def test_event_ids_dedup_across_imports(
    store: Store, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    header = "USER_ID,ITEM_ID,TIMESTAMP,EVENT_ID\n"
    first = run(write(tmp_path / "a.csv", header + "u1,i1,1,e1\nu1,i2,2,\nu1,i3,3,e1\nu2,i1,4,\n"))
    assert (first.accepted, first.stored) == (4, 3)  # e1 twice; rows without an id all kept
    second = run(write(tmp_path / "b.csv", header + "u3,i1,5,e1\nu3,i2,6,e2\n"))
    assert (second.accepted, second.stored) == (2, 1)
    assert decoded(store, group) == [
        ("u1", "i1", 1),
        ("u1", "i2", 2),
        ("u2", "i1", 4),
        ("u3", "i2", 6),
    ]


# progress and chunks ------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_progress_increases_to_one(
    run: Callable[..., ImportResult], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"events{suffix}"
    rows = [f"u{n},i{n % 4},{1000 + n},tv\n" for n in range(40)]
    if suffix == ".parquet":
        pl.read_csv((HEADER + "".join(rows)).encode()).write_parquet(path, row_group_size=10)
    else:
        write(path, HEADER + "".join(rows))
    progress: list[float] = []
    run(path, progress=progress, chunk_rows=10)
    assert len(progress) >= 2
    assert progress == sorted(progress), progress
    assert all(0.0 <= f <= 1.0 for f in progress)
    assert progress[-1] == 1.0


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_small_chunks_keep_line_numbers_right(
    store: Store,
    group: str,
    run: Callable[..., ImportResult],
    tmp_path: Path,
    suffix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chunk_sizes: list[int] = []
    original = imports.validate_frame

    def spy(schema, raw, *, first_row=0):  # type: ignore[no-untyped-def]
        chunk_sizes.append(raw.height)
        return original(schema, raw, first_row=first_row)

    monkeypatch.setattr(imports, "validate_frame", spy)
    numbers = range(11)
    bad = {0, 4, 5, 10}  # rows at the start, middle, across a boundary and at the end
    rows = [f"u{n},i{n % 4},{'bad' if n in bad else 1000 + n},tv\n" for n in numbers]
    path = tmp_path / f"events{suffix}"
    if suffix == ".parquet":
        pl.read_csv((HEADER + "".join(rows)).encode(), infer_schema=False).write_parquet(path)
    else:
        write(path, HEADER + "".join(rows))

    result = run(path, chunk_rows=3, max_error_rate=0.5)
    assert chunk_sizes == [3, 3, 3, 2]
    assert (result.accepted, result.rejected) == (7, 4)
    assert decoded(store, group) == planted([n for n in numbers if n not in bad])
    # Parquet has no lines: its rows are numbered as if it were a CSV file with a header.
    assert [line for line, _, _ in rejects(result)] == [n + 2 for n in sorted(bad)]


# crash safety -------------------------------------------------------------------------------------
_KILLED_IMPORT = """
import sys, time
from pathlib import Path
from tastebud.jobs import ImportRequest, run_import
from tastebud.store import open_store
from tastebud.store.sql import SqlStore, _SqlBulkWriter
from tastebud.store.sqlite import SqliteStore

url, group, path, rejects = sys.argv[1:]
_SqlBulkWriter.BIG_CHUNK_ROWS = SqliteStore.SCRATCH_ROWS = 1_000
store = open_store(url)
if isinstance(store, SqliteStore):  # a tiny cache: uncommitted pages spill into the WAL
    store._connection().execute("PRAGMA cache_size=20")
original = SqlStore._store_interactions

def store_then_hang(self, cur, rows):
    stored = original(self, cur, rows)
    print("loaded", stored, flush=True)
    time.sleep(120)  # killed here: the sorted load is written, not committed
    return stored

SqlStore._store_interactions = store_then_hang
request = ImportRequest(group=group, dataset="interactions", path=Path(path), mode="full",
                        chunk_rows=5_000)
run_import(store, request, rejects_path=Path(rejects))
"""


def test_killed_full_import_leaves_the_old_data_whole(
    store: Store, store_url: str, group: str, run: Callable[..., ImportResult], tmp_path: Path
) -> None:
    run(write(tmp_path / "old.csv", HEADER + "".join(GOOD_ROWS[:3])))
    rows = [f"n{n % 3000},i{n % 700},{2000 + n},tv\n" for n in range(30_000)]
    path = write(tmp_path / "new.csv", HEADER + "".join(rows))
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_IMPORT, store_url, group, str(path),
         str(tmp_path / "rejects.csv")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["loaded", "30000"]
    finally:
        child.kill()
        child.wait(timeout=30)
    assert decoded(store, group) == planted(range(3))
    assert len(store.vocabulary(group, "user")) == 3  # the new ids went with the transaction
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert not list(tmp_path.glob("*.import-*"))  # the scratch database went with it
    # and the store takes the same import afterwards
    assert run(path, mode="full").stored == 30_000
    assert store.counts(group)["interactions"] == 30_000
