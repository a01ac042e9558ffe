"""``tastebud doctor``: what is wrong with this installation, and how to fix it.

Each check reads and never changes anything (no migration, no file written): the
configuration, the store (reachable, schema version, SQLite's ``integrity_check``), Redis and
NATS when configured, free disk space, every solution version's artifact (checksums, format
numbers, the active versions' folders) and what an interrupted restore or training left behind.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import ValidationError

from tastebud.errors import TastebudError
from tastebud.maintenance.backup import sqlite_path, store_kind
from tastebud.maintenance.restore import PREVIOUS_PREFIX, STAGING_PREFIX
from tastebud.recipes.base import ARTIFACT_FORMAT
from tastebud.serving.versions import verify_checksums
from tastebud.settings import Settings, StoreSettings
from tastebud.store import Store, open_store
from tastebud.store.copies import pg_ping, sqlite_integrity
from tastebud.store.migrations import LATEST, too_new
from tastebud.text.items import CACHE_FOLDER as TEXT_CACHE_FOLDER

Status = Literal["ok", "warn", "fail"]
MIN_FREE_BYTES = 1 << 30  # below this a bulk import or a backup may fail half-way
_TIMEOUT = 3.0  # seconds per network check
_SHOWN = 5  # problems listed per check


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str
    fix: str | None = None
    details: list[str] = field(default_factory=list)


def diagnose(make_settings: Callable[[], Settings], *, min_free_bytes: int = MIN_FREE_BYTES
             ) -> list[Check]:  # fmt: skip
    """Every check, in order; ``make_settings`` builds the configuration (its errors are the
    first check's finding)."""
    try:
        settings = make_settings()
        store_kind(settings.store_url)
    except (ValidationError, TastebudError) as error:
        detail = str(error) if isinstance(error, ValidationError) else error.message
        return [
            Check(
                "configuration",
                "fail",
                detail.splitlines()[0],
                "fix the TASTEBUD_* environment variables or options named above",
                detail.splitlines(),
            )
        ]
    checks = [_configuration(settings)]
    store_checks, versions = _store(settings)
    checks += store_checks
    if settings.redis_url:
        checks.append(_reach_redis(settings.redis_url))
    if "nats_url" in settings.stream.model_fields_set:
        checks.append(_reach_nats(settings.stream.nats_url))
    checks.append(_disk(settings, min_free_bytes))
    checks.append(_artifacts(settings.artifacts, versions))
    checks.append(_leftovers(settings))
    return checks


def _configuration(settings: Settings) -> Check:
    home = settings.home.resolve()
    if not home.exists():
        return Check("configuration", "warn", f"home {home} does not exist yet",
                     "tastebud init creates it (or set TASTEBUD_HOME)")  # fmt: skip
    if not home.is_dir():
        return Check("configuration", "fail", f"home {home} is not a folder",
                     "point TASTEBUD_HOME at a folder")  # fmt: skip
    probe = home / ".tastebud-doctor-probe"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        return Check("configuration", "fail", f"home {home} is not writable ({error})",
                     "give the server's user write access to it")  # fmt: skip
    return Check("configuration", "ok", f"home {home}, store {store_kind(settings.store_url)}")


def _store(settings: Settings) -> tuple[list[Check], dict[str, str] | None]:
    """The store's checks, and its solution versions (id -> status; None: unreadable)."""
    url = settings.store_url
    if store_kind(url) == "sqlite" and not sqlite_path(url).exists():
        return [Check("store", "warn", f"no store yet at {sqlite_path(url)}",
                      "tastebud init (or the first tastebud serve) creates it")], {}  # fmt: skip
    try:
        if store_kind(url) == "postgres":
            pg_ping(url, timeout=_TIMEOUT)  # the driver's reason (a pool only says "timeout")
        limits = StoreSettings(connect_timeout_seconds=_TIMEOUT, pool_timeout_seconds=_TIMEOUT)
        store = open_store(url, migrate=False, limits=limits)
    except Exception as error:  # any driver error: unreachable
        return [Check("store", "fail", f"cannot reach the store: {_one_line(error)}",
                      "start PostgreSQL or fix TASTEBUD_DATABASE_URL")], None  # fmt: skip
    try:
        return _schema(store, url, settings)
    finally:
        store.close()


def _schema(
    store: Store, url: str, settings: Settings
) -> tuple[list[Check], dict[str, str] | None]:
    try:
        version = store.schema_version()
    except Exception as error:
        return [Check("store", "fail", f"cannot read the store: {_one_line(error)}",
                      "start PostgreSQL or fix TASTEBUD_DATABASE_URL")], None  # fmt: skip
    checks = [Check("store", "ok", f"reachable ({store_kind(url)})")]
    if version > LATEST:
        checks.append(Check("migrations", "fail", too_new(url, version),
                            "upgrade tastebud to the release that wrote this store"))  # fmt: skip
        return checks, None
    if version < LATEST:
        checks.append(Check(
            "migrations", "warn", f"schema version {version}; this tastebud migrates it to "
            f"{LATEST} when it next opens the store",
            "make a backup first (tastebud backup FILE), then start tastebud once"))  # fmt: skip
    else:
        checks.append(Check("migrations", "ok", f"schema version {version} (current)"))
    if store_kind(url) == "sqlite":
        problems = sqlite_integrity(sqlite_path(url))
        checks.append(
            Check("integrity", "fail", "SQLite's integrity_check found damage",
                  "restore the latest backup (tastebud restore FILE)", problems[:_SHOWN])
            if problems else Check("integrity", "ok", "SQLite integrity_check: ok")
        )  # fmt: skip
    if version < LATEST:
        return checks, None  # the version tables may not be there yet
    versions: dict[str, str] = {v.id: v.status for g in store.list_groups()
                for v in store.list_solution_versions(g.name)}  # fmt: skip
    return checks, versions


def _reach_redis(url: str) -> Check:
    import redis

    shown = _host(url)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT,
                                      socket_timeout=_TIMEOUT)  # fmt: skip
        client.ping()
        client.close()
    except (redis.RedisError, OSError) as error:
        return Check("redis", "fail", f"cannot reach Redis at {shown}: {_one_line(error)}",
                     "start Redis, fix TASTEBUD_REDIS_URL, or unset it (one process, no "
                     "shared cache)")  # fmt: skip
    return Check("redis", "ok", f"Redis at {shown} answers PING")


def _reach_nats(url: str) -> Check:
    """A NATS server greets every new connection with an ``INFO`` line."""
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222),
                                      timeout=_TIMEOUT) as conn:  # fmt: skip
            greeting = conn.recv(4)
    except OSError as error:
        greeting, problem = b"", _one_line(error)
    else:
        problem = f"it does not speak NATS (got {greeting!r})"
    if greeting == b"INFO":
        return Check("nats", "ok", f"NATS at {_host(url)} answers")
    return Check("nats", "fail", f"cannot reach NATS at {_host(url)}: {problem}",
                 "start nats-server (with -js) or fix TASTEBUD_STREAM__NATS_URL")  # fmt: skip


def _disk(settings: Settings, min_free_bytes: int) -> Check:
    folder = settings.home.resolve()
    while not folder.exists():
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    free = f"{usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB at {folder}"
    if usage.free < min_free_bytes:
        return Check("disk", "fail", free, f"free at least {min_free_bytes / 2**30:.1f} GiB: "
                     "imports, training and backups need room to write")  # fmt: skip
    if usage.free < usage.total / 10:
        return Check("disk", "warn", free, "less than 10% is free; free some space soon")
    return Check("disk", "ok", free)


def _artifacts(root: Path, versions: dict[str, str] | None) -> Check:
    # every folder but the text-embedding cache (tastebud.text) is a version's
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != TEXT_CACHE_FOLDER
                     ) if root.is_dir() else []  # fmt: skip
    damaged, unsummed, leftovers = [], [], []
    for folder in folders:
        if folder.name.endswith(".partial"):
            leftovers.append(folder.name)
            continue
        problems = _artifact_problems(folder)
        if problems is None:
            unsummed.append(folder.name)
        elif problems:
            damaged.append(f"{folder.name}: {problems[0]}")
    present = {f.name for f in folders}
    missing = sorted(v for v, status in (versions or {}).items()
                     if status == "active" and v not in present)  # fmt: skip
    damaged += [f"{v}: active, but its folder is missing" for v in missing]
    counted = f"{len(folders) - len(leftovers)} version folder(s) in {root}"
    if damaged:
        return Check("artifacts", "fail", f"{len(damaged)} damaged or missing of {counted}",
                     "retrain those solutions (tastebud train NAME) or restore a backup",
                     damaged[:_SHOWN])  # fmt: skip
    notes = [f"{len(unsummed)} without checksums (written before tastebud kept them)"] * bool(
        unsummed
    ) + [f"{len(leftovers)} unfinished (.partial, from a stopped training)"] * bool(leftovers)
    if leftovers:
        return Check("artifacts", "warn", f"{counted}; " + "; ".join(notes),
                     f"delete the .partial folders in {root}", leftovers[:_SHOWN])  # fmt: skip
    return Check("artifacts", "ok", "; ".join([counted, *notes]))


def _artifact_problems(folder: Path) -> list[str] | None:
    """What is wrong with one version's folder (``[]``: nothing; None: no checksums to
    verify, and nothing else wrong)."""
    try:
        json.loads((folder / "version.json").read_text())
        formats = [int(json.loads(p.read_text()).get("format", 0))
                   for p in folder.glob("model/**/model.json")]  # fmt: skip
    except (OSError, ValueError, AttributeError) as error:
        return [f"unreadable metadata ({_one_line(error)})"]
    newer = [f for f in formats if f > ARTIFACT_FORMAT]
    if newer:
        return [f"artifact format {max(newer)}, newer than this tastebud reads ({ARTIFACT_FORMAT})"]
    return verify_checksums(folder)


def _leftovers(settings: Settings) -> Check:
    home = settings.home
    staging = sorted(p.name for p in home.glob(f"{STAGING_PREFIX}*")) if home.is_dir() else []
    kept = sorted(p.name for p in home.glob(f"{PREVIOUS_PREFIX}*")) if home.is_dir() else []
    if staging:
        return Check(
            "leftovers",
            "warn",
            "an interrupted restore left its staging folder",
            f"delete {', '.join(staging)} in {home} (the store was not changed)",
        )
    if kept:
        return Check("leftovers", "ok", f"kept from an earlier restore: {', '.join(kept)} "
                     "(delete once the restored store is right)")  # fmt: skip
    return Check("leftovers", "ok", "nothing left behind by restores")


def _host(url: str) -> str:
    return url.rpartition("@")[2]


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
