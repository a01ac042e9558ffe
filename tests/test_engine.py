"""The engine facade on both backends: tokens, init, export, background import jobs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import psycopg
import pytest

import tastebud.engine as engine_module
from tastebud.engine import Engine, hash_token
from tastebud.errors import InvalidInput, NotFound
from tastebud.ingest import ItemIn, PutEventsRequest
from tastebud.settings import ApiSettings, Settings
from tastebud.store import JobRecord, Store, open_store


def wait_for(engine: Engine, job_id: str, statuses: set[str], timeout: float = 30.0) -> JobRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = engine.job(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {engine.job(job_id).status}, wanted {statuses}")


def events_request(user: str, *items: str, start: int = 1_700_000_000) -> PutEventsRequest:
    return PutEventsRequest.model_validate(
        {
            "userId": user,
            "eventList": [{"itemId": item, "sentAt": start + n} for n, item in enumerate(items)],
        }
    )


# tokens -------------------------------------------------------------------------------------------
def test_tokens_create_authenticate_revoke(engine: Engine, store: Store, group: str) -> None:
    name = f"{group}-ci"
    token = engine.create_token(name, scope="ingest")
    assert token.startswith("tb_") and len(token) > 40
    record = engine.authenticate(token)
    assert record is not None and (record.name, record.scope) == (name, "ingest")
    # The store keeps the hash, never the token.
    assert store.find_token(hash_token(token)) == record
    assert store.find_token(token) is None
    assert engine.authenticate(token + "x") is None
    assert name in [t.name for t in engine.list_tokens()]
    other = engine.create_token(f"{group}-admin", scope="admin")
    assert other != token and engine.authenticate(other).scope == "admin"  # type: ignore[union-attr]

    engine.revoke_token(name)
    assert engine.authenticate(token) is None
    assert engine.authenticate(other) is not None
    with pytest.raises(NotFound):
        engine.revoke_token(name)
    with pytest.raises(InvalidInput, match="scope"):
        engine.create_token(f"{group}-bad", scope="root")  # type: ignore[arg-type]


def test_configured_admin_token(store: Store, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, api=ApiSettings(admin_token="s3cret-admin"))
    engine = Engine(settings, store=store)
    try:
        record = engine.authenticate("s3cret-admin")
        assert record is not None and record.scope == "admin"
        assert engine.authenticate("s3cret-admi") is None
    finally:
        engine.close()


# init ---------------------------------------------------------------------------------------------
@pytest.fixture
def empty_store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A store with no tokens at all: ``init`` looks at the whole store, not one group."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    base_url: str = request.getfixturevalue("pg_url")
    name = f"tastebud_init_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield base_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_init_is_idempotent_and_writes_the_admin_token(
    empty_store_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    with Engine(
        Settings(home=home, default_group="main"), store=open_store(empty_store_url)
    ) as engine:
        token = engine.init()
        assert token is not None
        path = home / "admin.token"
        assert path.read_text(encoding="utf-8") == token + "\n"
        assert path.stat().st_mode & 0o777 == 0o600
        record = engine.authenticate(token)
        assert record is not None and record.scope == "admin"
        assert [g.name for g in engine.list_groups()] == ["main"]

        assert engine.init() is None  # second run: nothing new
        assert path.read_text(encoding="utf-8") == token + "\n"
        assert [t.name for t in engine.list_tokens()] == ["admin"]
        assert [g.name for g in engine.list_groups()] == ["main"]
        assert engine.authenticate(token) is not None


# export -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_to_file(engine: Engine, group: str, tmp_path: Path, suffix: str) -> None:
    engine.put_schema(group, "items", {"GENRES": "categorical", "PRICE": "numerical"})
    assert (
        engine.put_items(
            group, [ItemIn(item_id="a", properties={"GENRES": ["x", "y"], "PRICE": 2})]
        )
        == 1
    )
    engine.put_items(
        group, [ItemIn(item_id="b", properties={"creation_timestamp": "2024-01-01T00:00:00Z"})]
    )
    engine.put_events(group, events_request("u1", "a", "b"))
    engine.put_events(group, events_request("u2", "b", start=1_700_000_100))

    items_path, events_path = tmp_path / f"out/items{suffix}", tmp_path / f"out/events{suffix}"
    assert engine.export(group, "items", items_path) == 2
    assert engine.export(group, "interactions", events_path) == 3
    read = pl.read_csv if suffix == ".csv" else pl.read_parquet
    items = read(items_path)
    assert items.columns == ["ITEM_ID", "CREATION_TIMESTAMP", "GENRES", "PRICE"]
    assert items.rows() == [("a", None, "x|y", 2.0), ("b", 1_704_067_200, None, None)]
    events = read(events_path)
    assert events.select("USER_ID", "ITEM_ID", "TIMESTAMP").rows() == [
        ("u1", "a", 1_700_000_000), ("u1", "b", 1_700_000_001), ("u2", "b", 1_700_000_100),
    ]  # fmt: skip
    assert not list(tmp_path.glob("out/*.partial"))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_empty_dataset_still_has_columns(
    engine: Engine, group: str, tmp_path: Path, suffix: str
) -> None:
    engine.put_schema(group, "users", {"TIER": "categorical"})
    path = tmp_path / f"users{suffix}"
    assert engine.export(group, "users", path) == 0
    frame = pl.read_csv(path) if suffix == ".csv" else pl.read_parquet(path)
    assert frame.columns == ["USER_ID", "TIER"]
    assert frame.height == 0


def test_empty_parquet_export_has_the_same_types_as_a_full_one(
    engine: Engine, group: str, tmp_path: Path
) -> None:
    engine.put_schema(group, "interactions", {"SCORE": "numerical"})
    engine.export(group, "interactions", tmp_path / "empty.parquet")
    engine.put_events(group, events_request("u1", "a"))
    engine.export(group, "interactions", tmp_path / "full.parquet")
    empty, full = (
        pl.read_parquet(tmp_path / "empty.parquet"),
        pl.read_parquet(tmp_path / "full.parquet"),
    )
    assert empty.schema == full.schema
    assert (full.schema["TIMESTAMP"], full.schema["EVENT_VALUE"], full.schema["SCORE"]) == (
        pl.Int64,
        pl.Float64,
        pl.Float64,
    )


def test_export_refuses_other_formats(engine: Engine, group: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"\.csv or \.parquet"):
        engine.export(group, "items", tmp_path / "items.json")
    with pytest.raises(InvalidInput, match="dataset"):
        engine.export(group, "purchases", tmp_path / "x.csv")  # type: ignore[arg-type]


# background import jobs ---------------------------------------------------------------------------
def test_start_import_goes_queued_running_succeeded(
    engine: Engine, store: Store, group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real_run_import = engine_module.run_import

    def gated_run_import(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(30)
        return real_run_import(*args, **kwargs)

    monkeypatch.setattr(engine_module, "run_import", gated_run_import)
    path = tmp_path / "events.csv"
    path.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\nu2,i2,2\nu2,i1,bad\n" + "u3,i3,3\n" * 7)

    job = engine.start_import(group, "interactions", path, max_error_rate=0.2)
    assert job.status == "queued" and job.kind == "import" and job.group == group
    assert store.get_job(job.id).status == "queued"
    assert started.wait(30)
    assert wait_for(engine, job.id, {"running"}).status == "running"
    release.set()

    done = wait_for(engine, job.id, {"succeeded", "failed"})
    assert done.status == "succeeded", done.error
    assert done.progress == 1.0
    assert done.result is not None
    assert (done.result["accepted"], done.result["rejected"], done.result["stored"]) == (9, 1, 9)
    assert done.result["rejects_file"] is not None and Path(done.result["rejects_file"]).is_file()
    assert store.get_job(job.id) == done  # the final record is stored
    assert [j.id for j in engine.list_jobs(group)] == [job.id]
    assert store.counts(group)["interactions"] == 9


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("USER_ID,ITEM_ID,TIMESTAMP\n", "no data rows"),
        ("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,soon\nu2,i2,later\n", "2 of 2 rows rejected"),
    ],
)
def test_start_import_failure_is_reported(
    engine: Engine, store: Store, group: str, tmp_path: Path, text: str, error: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    job = engine.start_import(group, "interactions", path)
    done = wait_for(engine, job.id, {"succeeded", "failed"})
    assert done.status == "failed"
    assert done.error is not None and error in done.error
    assert store.get_job(job.id).status == "failed"
    assert store.counts(group)["interactions"] == 0
    if "rejected" in error:  # a rejected import still reports its counts
        assert done.result is not None and done.result["rejected"] == 2


def test_start_import_checks_arguments_up_front(engine: Engine, group: str, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1\n")
    with pytest.raises(NotFound):
        engine.start_import(f"{group}-missing", "interactions", path)
    with pytest.raises(InvalidInput, match="mode"):
        engine.start_import(group, "interactions", path, mode="replace")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_error_rate"):
        engine.start_import(group, "interactions", path, max_error_rate=1.5)
    assert engine.list_jobs(group) == []


# real-time writes through the engine --------------------------------------------------------------
def test_put_events_validates_and_reads_back(engine: Engine, group: str) -> None:
    engine.put_schema(group, "interactions", {"DEVICE": "categorical"})
    request = PutEventsRequest.model_validate(
        {
            "userId": "u1", "sessionId": "s1",
            "eventList": [
                {"itemId": "a", "eventId": "e1", "sentAt": "2024-01-01T00:00:00Z",
                 "properties": {"DEVICE": "tv"}},
                {"itemId": "b", "eventId": "e1", "sentAt": 1_704_067_201},
                {"itemId": "c", "impression": ["a", "b", "c"], "sentAt": 1_704_067_202},
            ],
        }
    )  # fmt: skip
    result = engine.put_events(group, request)
    assert (result.accepted, result.duplicates) == (2, 1)
    recent = engine.recent_events(group, "u1")
    assert [(e.item_id, e.timestamp) for e in recent] == [
        ("a", 1_704_067_200),
        ("c", 1_704_067_202),
    ]
    assert recent[0].context == {"DEVICE": "tv"} and recent[1].impression == "a|b|c"

    bad = PutEventsRequest.model_validate(
        {"userId": "u1", "eventList": [{"itemId": "a", "properties": {"COLOUR": "red"}}]}
    )
    with pytest.raises(InvalidInput, match=r"eventList\[0\]\.properties\.COLOUR: unknown field"):
        engine.put_events(group, bad)
    with pytest.raises(InvalidInput, match="user_ids"):
        engine.delete_users(group, [])
