"""tastebud backup / restore on SQLite and PostgreSQL: a restored store answers the same, a
backup taken during live ingestion misses nothing acknowledged before it began, and a damaged
or incompatible archive is refused with nothing changed."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import polars as pl
import pytest

from tastebud.engine import Engine
from tastebud.errors import InvalidInput, NotReady
from tastebud.maintenance import backup, read_manifest, restore
from tastebud.maintenance.archive import MANIFEST
from tastebud.maintenance.restore import PREVIOUS_PREFIX, STAGING_PREFIX
from tastebud.maintenance.swap import JOURNAL
from tastebud.store.migrations import LATEST
from tests.maintenance.conftest import (
    GROUP,
    ITEMS,
    USERS,
    MakeSettings,
    answers,
    populate,
    put_event,
)


def _event_ids(engine: Engine, folder: Path) -> set[str]:
    path = folder / "interactions.parquet"
    engine.export(GROUP, "interactions", path)
    return set(pl.read_parquet(path).get_column("EVENT_ID").drop_nulls().to_list())


def test_a_restored_store_answers_the_same(make_settings: MakeSettings, tmp_path: Path) -> None:
    source = make_settings("source")
    with Engine(source) as engine:
        token = populate(engine, tmp_path / "data")
        expected = answers(engine)
        counts = engine.counts(GROUP)
        schema = engine.get_schema(GROUP, "items")
        versions = {v.id for v in engine.list_solution_versions(GROUP)}
        result = backup(source, tmp_path / "store.tar.gz")
    assert result.manifest.tables["interactions"] == counts["interactions"]
    assert set(result.manifest.versions) == versions and result.missing_artifacts == []

    target = make_settings("target")  # another machine: its own, empty home and database
    restored = restore(target, tmp_path / "store.tar.gz")
    assert restored.previous == []  # nothing was there to replace
    with Engine(target) as engine:
        assert answers(engine) == expected
        assert engine.counts(GROUP) == counts
        assert engine.get_schema(GROUP, "items") == schema
        assert {v.id for v in engine.list_solution_versions(GROUP)} == versions
        record = engine.authenticate(token)
        assert record is not None and record.name == "backup-admin"
        assert engine.get_filter(GROUP, "unwatched").expression.startswith("EXCLUDE")
        assert engine.get_campaign(GROUP, "home").solution == "popular"
    assert (target.home / "admin.token").read_text() == (source.home / "admin.token").read_text()


def test_restore_replaces_the_store_and_keeps_the_old_one_aside(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    settings = make_settings("site")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
        backup(settings, tmp_path / "store.tar")
        put_event(engine, "u01", "i02", "after-backup")  # lost by the restore, kept aside
        before = engine.counts(GROUP)["interactions"]
    result = restore(settings, tmp_path / "store.tar")
    with Engine(settings) as engine:
        assert engine.counts(GROUP)["interactions"] == before - 1
        assert "after-backup" not in _event_ids(engine, tmp_path)
    assert result.previous, "what the restore replaced is kept until the operator drops it"
    assert not list(settings.home.glob(f"{STAGING_PREFIX}*"))


def test_backup_during_live_ingestion_misses_nothing_acknowledged(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    source = make_settings("live")
    acknowledged: list[str] = []
    stop = threading.Event()
    with Engine(source) as engine:
        populate(engine, tmp_path / "data")

        def ingest() -> None:
            n = 0
            while not stop.is_set():
                event_id = f"live-{n}"
                put_event(engine, USERS[n % len(USERS)], ITEMS[n % len(ITEMS)], event_id)
                acknowledged.append(event_id)  # put_events returned: committed
                n += 1

        thread = threading.Thread(target=ingest)
        thread.start()
        try:
            while len(acknowledged) < 200:  # the backup starts in the middle of the stream
                stop.wait(0.01)
            before_backup = list(acknowledged)
            result = backup(source, tmp_path / "live.tar")
        finally:
            stop.set()
            thread.join()
    target = make_settings("restored")
    restore(target, tmp_path / "live.tar")
    with Engine(target) as engine:
        stored = _event_ids(engine, tmp_path)
        assert set(before_backup) <= stored
        # What the backup holds is exactly a prefix of the stream: no gap, nothing half-written.
        live = sorted(int(e.removeprefix("live-")) for e in stored if e.startswith("live-"))
        assert live == list(range(len(live)))
        assert engine.counts(GROUP)["interactions"] == result.manifest.tables["interactions"]


def _rewrite(archive: Path, target: Path, *, manifest: dict | None = None,
             damage: str | None = None, extra: str | None = None) -> Path:  # fmt: skip
    """A copy of ``archive`` with its manifest replaced, one member's bytes changed, or an
    unlisted member added."""
    with tarfile.open(archive) as source, tarfile.open(target, "w") as out:
        for info in source.getmembers():
            body = source.extractfile(info).read()  # type: ignore[union-attr]
            if info.name == MANIFEST and manifest is not None:
                body = json.dumps(manifest).encode()
            if info.name == damage:
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            info.size = len(body)
            out.addfile(info, io.BytesIO(body))
        if extra:
            info = tarfile.TarInfo(extra)
            info.size = 1
            out.addfile(info, io.BytesIO(b"x"))
    return target


def test_a_damaged_or_incompatible_archive_is_refused_and_nothing_changes(
    make_settings: MakeSettings, tmp_path: Path, backend: str
) -> None:
    settings = make_settings("site")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
        good = backup(settings, tmp_path / "good.tar")
        put_event(engine, "u03", "i05", "still-here")
        expected = answers(engine)
    manifest = json.loads(good.manifest.to_json())
    artifact = next(name for name in manifest["files"] if name.endswith("version.json"))
    other = "postgres" if backend == "sqlite" else "sqlite"
    raw = (tmp_path / "good.tar").read_bytes()
    (tmp_path / "truncated.tar").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "noise.tar").write_bytes(b"not an archive at all")
    cases = {
        "truncated.tar": "damaged or truncated",
        "noise.tar": "not a tastebud backup archive",
        "flipped.tar": "differs from its checksum",
        "unlisted.tar": "unexpected member 'artifacts/evil.py'",
        "future-format.tar": "archive format 99 is newer than this tastebud reads",
        "future-schema.tar": f"schema version {LATEST + 1}, newer than this tastebud",
        "other-store.tar": f"holds a {other} store but tastebud is configured for {backend}",
    }
    _rewrite(tmp_path / "good.tar", tmp_path / "flipped.tar", damage=artifact)
    _rewrite(tmp_path / "good.tar", tmp_path / "unlisted.tar", extra="artifacts/evil.py")
    _rewrite(
        tmp_path / "good.tar", tmp_path / "future-format.tar", manifest=manifest | {"format": 99}
    )
    _rewrite(tmp_path / "good.tar", tmp_path / "future-schema.tar",
             manifest=manifest | {"schema_version": LATEST + 1})  # fmt: skip
    _rewrite(
        tmp_path / "good.tar", tmp_path / "other-store.tar", manifest=manifest | {"store": other}
    )
    for name, message in cases.items():
        with pytest.raises(InvalidInput, match=re.escape(message)):
            restore(settings, tmp_path / name)
    with Engine(settings) as engine:
        assert answers(engine) == expected
        assert "still-here" in _event_ids(engine, tmp_path)
    assert not list(settings.home.glob(f"{STAGING_PREFIX}*"))
    assert not list(settings.home.glob(".tastebud-pre-restore-*"))
    assert read_manifest(tmp_path / "good.tar").store == backend


def test_a_database_that_does_not_load_whole_is_refused(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    """The manifest counts every table's rows; a load that differs (here: a manifest that
    claims one more interaction) is refused and the new copy thrown away."""
    settings = make_settings("site")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
        good = backup(settings, tmp_path / "good.tar")
    manifest = json.loads(good.manifest.to_json())
    manifest["tables"]["interactions"] += 1
    _rewrite(tmp_path / "good.tar", tmp_path / "short.tar", manifest=manifest)
    with pytest.raises(
        InvalidInput, match=r"table interactions holds \d+ rows after loading, the backup counted"
    ):
        restore(settings, tmp_path / "short.tar")
    assert restore(settings, tmp_path / "good.tar").previous  # the good one still restores


def test_restore_refuses_a_store_in_use(make_settings: MakeSettings, tmp_path: Path) -> None:
    """A server still running would keep writing to the replaced store: refused, unchanged."""
    settings = make_settings("busy")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
        backup(settings, tmp_path / "store.tar")
        put_event(engine, "u04", "i08", "kept")
    # SQLite: another process has the file open; PostgreSQL: another session is connected.
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, settings.store_url],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(NotReady, match="stop tastebud serve, workers and consumers"):
            restore(settings, tmp_path / "store.tar")
    finally:
        holder.kill()
        holder.wait()
    with Engine(settings) as engine:
        assert "kept" in _event_ids(engine, tmp_path)
    assert not list(settings.home.glob(".tastebud-*"))
    assert restore(settings, tmp_path / "store.tar").previous  # once it is closed: restored


_HOLD = """
import sys, time, sqlite3, psycopg
url = sys.argv[1]
conn = (sqlite3.connect(url.removeprefix("sqlite:///")) if url.startswith("sqlite")
        else psycopg.connect(url))
conn.execute("SELECT 1")
print("open", flush=True)
time.sleep(60)
"""


_KILLED_RESTORE = """
import os, sys
from pathlib import Path
from tastebud.maintenance import restore, swap
from tastebud.settings import Settings

home, url, archive, point = sys.argv[1:5]
moves = 0
real_move = swap._move

def move_then_die(source, destination):
    global moves
    real_move(source, destination)
    moves += 1
    if point == "first-move":
        os._exit(9)  # like kill -9: no finally, no undo

def die(database):
    os._exit(9)

swap._move = move_then_die
if point == "database":
    swap._swap_databases = die
settings = Settings(home=Path(home), default_group="shop", database_url=url or None)
restore(settings, Path(archive))
"""


@pytest.mark.parametrize("point", ["first-move", "database"])
def test_a_restore_killed_half_way_is_finished_by_the_next_process(
    make_settings: MakeSettings, tmp_path: Path, point: str
) -> None:
    settings = make_settings("killed")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
        expected = answers(engine)
        backup(settings, tmp_path / "store.tar")
        put_event(engine, "u01", "i02", "after-backup")  # the restore replaces it
    url = settings.database_url or ""
    command = [sys.executable, "-c", _KILLED_RESTORE, str(settings.home), url,
               str(tmp_path / "store.tar"), point]  # fmt: skip
    killed = subprocess.run(command, capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert (settings.home / JOURNAL).exists()  # half-way: the journal says what is left
    with Engine(settings) as engine:  # the next process finishes the restore first
        assert answers(engine) == expected
        assert "after-backup" not in _event_ids(engine, tmp_path)
    assert not (settings.home / JOURNAL).exists()
    assert not list(settings.home.glob(f"{STAGING_PREFIX}*"))
    assert list(settings.home.glob(f"{PREVIOUS_PREFIX}*")), "the replaced files are kept aside"
