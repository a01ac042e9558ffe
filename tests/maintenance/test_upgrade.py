"""Store migrations as upgrades: a store written by the previous release (schema v6, the
fixture made by tests/maintenance/upgrade/make_fixture.py with that release's code) opens, migrates
and serves what it served before; a store newer than this code refuses to open, unchanged."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.errors import TastebudError
from tastebud.ingest import PutEventsRequest
from tastebud.serving.campaigns import CampaignRequest
from tastebud.serving.versions import CHECKSUMS, verify_checksums
from tastebud.settings import Settings
from tastebud.store import open_store
from tastebud.store.migrations import LATEST
from tests.maintenance.conftest import MakeSettings

FIXTURE = Path(__file__).parent / "upgrade" / "schema-v6"
PREVIOUS_SCHEMA = 6


def _previous_release(backend: str, settings: Settings) -> None:
    """Put the fixture's store and artifacts where ``settings`` point."""
    shutil.copytree(FIXTURE / backend / "artifacts", settings.artifacts)
    if backend == "sqlite":
        shutil.copy(FIXTURE / "sqlite" / "tastebud.db", settings.home / "tastebud.db")
        return
    subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", "-f",
                    str(FIXTURE / "postgres" / "dump.sql"), str(settings.database_url)],
                   check=True, capture_output=True)  # fmt: skip


def _schema_rows(backend: str, settings: Settings) -> list[int]:
    query = "SELECT version FROM schema_migrations ORDER BY version"
    if backend == "sqlite":
        with sqlite3.connect(settings.home / "tastebud.db") as conn:
            return [r[0] for r in conn.execute(query)]
    with psycopg.connect(str(settings.database_url)) as conn:
        return [r[0] for r in conn.execute(query)]


def test_a_store_of_the_previous_release_opens_migrates_and_serves(
    backend: str, make_settings: MakeSettings
) -> None:
    expected = json.loads((FIXTURE / "expected.json").read_text())[backend]
    settings = make_settings("upgrade").model_copy(update={"default_group": expected["group"]})
    _previous_release(backend, settings)
    assert _schema_rows(backend, settings) == list(range(1, PREVIOUS_SCHEMA + 1))
    group = expected["group"]
    with Engine(settings) as engine:
        assert engine.store.schema_version() == LATEST
        assert engine.counts(group) == expected["counts"]
        answers = expected["answers"]
        popular = engine.recommender.recommend(group, {"solution": "popular"}, user_id="u01", k=5)
        assert [r.id for r in popular.results] == answers["popular/u01"]
        similar = engine.recommender.similar_items(group, {"solution": "similar"},
                                                   item_id="i01", k=3)  # fmt: skip
        assert [r.id for r in similar.results] == answers["similar/i01"]
        campaign = engine.campaign_answer(group, "home", CampaignRequest(user_id="u02", k=5))
        assert [r["itemId"] for r in campaign["itemList"]] == answers["campaign home/u02"]
        record = engine.authenticate(expected["token"]["secret"])
        assert record is not None and record.name == expected["token"]["name"]
        # It keeps working: events, training (the new version has checksums, the old none).
        body = {"userId": "u05", "eventList": [{"eventId": "after-upgrade", "itemId": "i09"}]}
        assert engine.put_events(group, PutEventsRequest.model_validate(body)).accepted == 1
        version = engine.train(group, "popular")
        assert verify_checksums(settings.artifacts / version.id) == []
        assert not (settings.artifacts / expected["versions"][0] / CHECKSUMS).exists()
    assert _schema_rows(backend, settings) == list(range(1, LATEST + 1))


def test_a_store_newer_than_the_code_refuses_to_open(
    backend: str, make_settings: MakeSettings
) -> None:
    settings = make_settings("future")
    open_store(settings.store_url).close()
    future = LATEST + 1
    if backend == "sqlite":
        with sqlite3.connect(settings.home / "tastebud.db") as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (future,))
    else:
        with psycopg.connect(str(settings.database_url)) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (future,))
    with pytest.raises(TastebudError) as refused:
        open_store(settings.store_url)
    message = refused.value.message
    assert f"schema version {future}, newer than this tastebud" in message
    assert f"knows ({LATEST})" in message and "downgrades are not supported" in message
    assert _schema_rows(backend, settings) == [*range(1, LATEST + 1), future]  # untouched
    # The CLI says the same in one line, without a traceback.
    env = {"TASTEBUD_HOME": str(settings.home),
           "TASTEBUD_DATABASE_URL": settings.database_url or ""}  # fmt: skip
    result = CliRunner().invoke(app, ["status"], env={k: v for k, v in env.items() if v})
    assert result.exit_code == 1
    assert f"schema version {future}" in result.output and "Traceback" not in result.output


def test_processes_starting_together_migrate_once(
    backend: str, make_settings: MakeSettings
) -> None:
    """Workers of a new release start at once on the old store: one migrates, the others wait
    and find it done (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE)."""
    settings = make_settings("together")
    _previous_release(backend, settings)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_one() -> None:
        start.wait()
        try:
            open_store(settings.store_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _schema_rows(backend, settings) == list(range(1, LATEST + 1))
