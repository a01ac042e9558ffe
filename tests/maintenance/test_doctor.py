"""tastebud doctor: all green on a healthy installation, and each check failing on its own
fault (a damaged artifact, an unreachable Redis, NATS or PostgreSQL, a store from the future,
a damaged SQLite file, a bad configuration, a full disk), with the CLI's exit code."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
from pathlib import Path

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from tastebud.cli import app
from tastebud.engine import Engine
from tastebud.maintenance import Check, diagnose
from tastebud.settings import Settings
from tastebud.store.migrations import LATEST
from tastebud.text.items import CACHE_FOLDER as TEXT_CACHE_FOLDER
from tests.maintenance.conftest import GROUP, MakeSettings, populate

REDIS_URL = os.environ.get("TASTEBUD_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
NATS_URL = os.environ.get("TASTEBUD_TEST_NATS_URL", "nats://127.0.0.1:4222")
FIXTURE = Path(__file__).parent / "upgrade" / "schema-v6"


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def _failed(checks: list[Check]) -> set[str]:
    return {check.name for check in checks if check.status == "fail"}


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {"TASTEBUD_HOME": str(settings.home), **extra}
    if settings.database_url:
        env["TASTEBUD_DATABASE_URL"] = settings.database_url
    return env


@pytest.fixture
def healthy(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    """A populated installation that uses Redis and NATS."""
    settings = make_settings("doctor")
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
    return settings.model_copy(update={"redis_url": REDIS_URL})


def test_a_healthy_installation_passes(healthy: Settings) -> None:
    env = _env(healthy, TASTEBUD_REDIS_URL=REDIS_URL, TASTEBUD_STREAM__NATS_URL=NATS_URL)
    result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    expected = {"configuration", "store", "migrations", "redis", "nats", "disk", "artifacts",
                "leftovers"} | ({"integrity"} if not healthy.database_url else set())  # fmt: skip
    assert statuses == dict.fromkeys(expected, "ok")
    artifacts = next(c for c in report["checks"] if c["name"] == "artifacts")
    assert artifacts["message"].startswith("2 version folder(s)")


def test_a_damaged_artifact_fails_and_names_the_file(healthy: Settings) -> None:
    folder = sorted(p for p in healthy.artifacts.iterdir() if p.is_dir())[0]
    arrays = folder / "model" / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[-1] ^= 0xFF
    arrays.write_bytes(bytes(data))
    checks = diagnose(lambda: healthy)
    assert _failed(checks) == {"artifacts"}
    assert _by_name(checks)["artifacts"].details == [
        f"{folder.name}: model/arrays.npz: checksum differs (damaged or changed)"
    ]
    result = CliRunner().invoke(app, ["doctor"], env=_env(healthy))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "model/arrays.npz" in result.output


def test_missing_and_unfinished_artifacts(healthy: Settings) -> None:
    folders = sorted(p for p in healthy.artifacts.iterdir() if p.is_dir())
    (healthy.artifacts / "sv-stopped.partial").mkdir()
    checks = diagnose(lambda: healthy)
    assert _by_name(checks)["artifacts"].status == "warn"  # a stopped training's leftover
    shutil.rmtree(folders[0])
    checks = diagnose(lambda: healthy)
    assert _by_name(checks)["artifacts"].details == [
        f"{folders[0].name}: active, but its folder is missing"
    ]


def test_artifacts_written_before_checksums_are_fine(tmp_path: Path) -> None:
    """The previous release wrote no checksums: noted, not failed (they still load:
    test_upgrade.py)."""
    home = tmp_path / "home"
    shutil.copytree(FIXTURE / "sqlite", home)
    settings = Settings(home=home)
    artifacts = _by_name(diagnose(lambda: settings))["artifacts"]
    assert artifacts.status == "ok"
    assert "2 without checksums" in artifacts.message
    assert _by_name(diagnose(lambda: settings))["migrations"].status == "warn"  # v6: to migrate


def test_unreachable_redis_and_nats_fail(healthy: Settings) -> None:
    port = _closed_port()
    env = _env(healthy, TASTEBUD_REDIS_URL=f"redis://:secret@127.0.0.1:{port}/0",
               TASTEBUD_STREAM__NATS_URL=f"nats://127.0.0.1:{port}")  # fmt: skip
    result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 1
    report = json.loads(result.output)
    failed = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert set(failed) == {"redis", "nats"}
    assert f"cannot reach Redis at 127.0.0.1:{port}/0" in failed["redis"]["message"]
    assert "secret" not in result.output  # never a password
    assert failed["nats"]["fix"].startswith("start nats-server")


def test_a_store_from_the_future_fails_and_is_not_touched(healthy: Settings) -> None:
    future = LATEST + 1
    if healthy.database_url:
        with psycopg.connect(healthy.database_url) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (%s, 0)", (future,))
    else:
        with sqlite3.connect(healthy.home / "tastebud.db") as conn:
            conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (future,))
    checks = diagnose(lambda: healthy)
    assert _failed(checks) == {"migrations"}
    assert (
        f"schema version {future}, newer than this tastebud"
        in _by_name(checks)["migrations"].message
    )


def test_an_unreachable_postgresql_fails(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/x"
    settings = Settings(home=tmp_path / "home", database_url=url)
    checks = diagnose(lambda: settings)
    store = _by_name(checks)["store"]
    assert store.status == "fail" and store.message.startswith("cannot reach the store")
    assert "artifacts" in _by_name(checks)  # the other checks still run


def test_a_damaged_sqlite_file_fails(tmp_path: Path) -> None:
    """SQLite only: PostgreSQL checks its own pages."""
    settings = Settings(home=tmp_path / "home", default_group=GROUP)
    with Engine(settings) as engine:
        populate(engine, tmp_path / "data")
    database = settings.home / "tastebud.db"
    data = bytearray(database.read_bytes())
    page = 4096
    for start in range(page * 3, len(data) - page, page * 2):  # every other page after the first
        data[start + 100 : start + 400] = os.urandom(300)
    database.write_bytes(bytes(data))
    failed = _failed(diagnose(lambda: settings))
    assert failed & {"store", "integrity"}


def test_a_bad_configuration_fails(tmp_path: Path) -> None:
    env = {"TASTEBUD_HOME": str(tmp_path), "TASTEBUD_API__PORT": "eighty"}
    result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 1
    check = json.loads(result.output)["checks"][0]
    assert check["name"] == "configuration" and check["status"] == "fail"
    assert "api.port" in check["message"] or "api.port" in " ".join(check["details"])
    bad = Settings(home=tmp_path, database_url="mysql://db/x")
    (configuration,) = diagnose(lambda: bad)
    assert configuration.status == "fail" and "mysql://db/x" in configuration.message


def test_too_little_free_disk_fails(healthy: Settings) -> None:
    checks = diagnose(lambda: healthy, min_free_bytes=1 << 60)
    assert _failed(checks) == {"disk"}
    assert "GiB free" in _by_name(checks)["disk"].message


def test_a_store_not_made_yet_is_a_warning_and_doctor_creates_nothing(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "new", default_group=GROUP)
    checks = diagnose(lambda: settings)
    assert not _failed(checks)
    assert _by_name(checks)["store"].status == "warn"
    assert not (tmp_path / "new").exists()


def test_the_text_embedding_cache_is_no_version_folder(healthy: Settings) -> None:
    shard = healthy.artifacts / TEXT_CACHE_FOLDER / "ab"
    shard.mkdir(parents=True)
    np.save(shard / f"ab{'0' * 62}.npy", np.zeros(384, np.float32))
    check = _by_name(diagnose(lambda: healthy))["artifacts"]
    assert check.status == "ok" and check.message.startswith("2 version folder(s)")
