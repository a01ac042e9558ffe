"""``tastebud restore FILE``: a backup archive made into the store again, never half-way.

Everything is prepared in a new place first — the archive extracted and checked against its
manifest, the database loaded (a new SQLite file, or a new PostgreSQL database beside the
configured one), checked (``integrity_check``, the row count of every table) and migrated —
and only then swapped in: renames, one transaction for PostgreSQL. A damaged or incompatible
archive is refused before anything is touched; what the restore replaced is kept aside (its
paths are in the result) until the operator deletes it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tastebud.errors import InvalidInput, NotReady
from tastebud.maintenance.archive import Manifest, extract_verified, read_manifest
from tastebud.maintenance.backup import HOME_FILES, sqlite_path, store_kind
from tastebud.maintenance.swap import DatabaseSwap, Plan, finish_interrupted, plan_moves, swap
from tastebud.settings import Settings
from tastebud.store import open_store
from tastebud.store.copies import (
    Snapshot,
    database_name,
    drop_database,
    pg_restore_new,
    pg_sessions,
    pg_snapshot,
    sqlite_integrity,
    sqlite_snapshot,
    sqlite_users,
    with_database,
)
from tastebud.store.migrations import LATEST, too_new

_log = logging.getLogger(__name__)
STAGING_PREFIX = ".tastebud-restore-"
PREVIOUS_PREFIX = ".tastebud-pre-restore-"


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    seconds: float
    previous: list[str]  # where what was replaced is kept (folders, a database name)


def check_archive(settings: Settings, path: Path) -> Manifest:
    """The archive's manifest, if this tastebud and its configured store can restore it.

    Raises:
        InvalidInput: not an archive, a newer format or schema, another kind of store.
    """
    manifest = read_manifest(path)
    kind = store_kind(settings.store_url)
    if manifest.store != kind:
        where = ("unset TASTEBUD_DATABASE_URL (SQLite under TASTEBUD_HOME)" if manifest.store
                 == "sqlite" else "set TASTEBUD_DATABASE_URL=postgresql://…")  # fmt: skip
        raise InvalidInput(
            f"{path} holds a {manifest.store} store but tastebud is configured for {kind}: "
            f"{where} to restore it (moving between backends is an export and an import)"
        )
    if manifest.schema_version > LATEST:
        raise InvalidInput(f"{path}: {too_new(str(path), manifest.schema_version)}")
    return manifest


def restore(settings: Settings, path: Path) -> RestoreResult:
    """Replace the configured store, artifacts and home key files with the archive's.

    Stop servers, workers and consumers first: a restore refuses to swap a store in use.

    Raises:
        InvalidInput: a damaged or incompatible archive (nothing changed).
        NotReady: the store is in use by another process (nothing changed).
    """
    started = time.perf_counter()
    finish_interrupted(settings.home)  # a restore killed half-way is finished first
    manifest = check_archive(settings, path)
    url = settings.store_url
    _refuse_if_in_use(url, manifest)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    settings.home.mkdir(parents=True, exist_ok=True)
    staging = settings.home / f"{STAGING_PREFIX}{stamp}-{os.getpid()}"
    staging.mkdir()
    try:
        extract_verified(path, staging)
        files = [(staging / "artifacts", settings.artifacts)]
        files += [(staging / "home" / name, settings.home / name) for name in HOME_FILES]
        if manifest.store == "sqlite":
            database = staging / manifest.database
            _prepare_sqlite(database, manifest, path)
            files.append((database, sqlite_path(url)))
            _refuse_if_in_use(url, manifest)  # again: a server may have started meanwhile
            moves = plan_moves(files, f"{PREVIOUS_PREFIX}{stamp}")
            swap(settings.home, Plan(moves, None, staging))
            previous = _kept(moves)
        else:
            previous = _restore_postgres(settings.home, url, staging, manifest, files, stamp,
                                         path)  # fmt: skip
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - started
    _log.info("restore done path=%s store=%s seconds=%.2f", path, manifest.store, seconds)
    return RestoreResult(manifest, seconds, previous)


def _refuse_if_in_use(url: str, manifest: Manifest) -> None:
    if manifest.store == "sqlite":
        users = sqlite_users(sqlite_path(url))
        if users:
            raise NotReady(
                f"{sqlite_path(url)} is open in process(es) {', '.join(map(str, users))}: stop "
                "tastebud serve, workers and consumers first (their writes would be lost), "
                "then restore again"
            )
    elif sessions := pg_sessions(url):
        raise NotReady(
            f"database {database_name(url)!r} is in use by {sessions} other session(s): stop "
            "tastebud serve, workers and consumers first, then restore again"
        )


def _prepare_sqlite(database: Path, manifest: Manifest, archive: Path) -> None:
    problems = sqlite_integrity(database)
    if problems:
        raise InvalidInput(f"{archive}: the database fails SQLite's integrity_check "
                           f"({'; '.join(problems[:3])})")  # fmt: skip
    _check_rows(sqlite_snapshot(database), manifest, archive)
    open_store(f"sqlite:///{database}").close()  # migrated here, before the swap


def _restore_postgres(
    home: Path, url: str, staging: Path, manifest: Manifest, files: list[tuple[Path, Path]],
    stamp: str, archive: Path,
) -> list[str]:  # fmt: skip
    staged = pg_restore_new(url, staging / manifest.database)
    moves = plan_moves(files, f"{PREVIOUS_PREFIX}{stamp}")
    kept = f"{database_name(url)}_pre_restore_{stamp.lower()}"[:63]
    try:
        _check_rows(pg_snapshot(staged), manifest, archive)
        open_store(staged).close()  # migrated here, before the swap
        replaced = swap(home, Plan(moves, DatabaseSwap(url, staged, kept), staging))
    except BaseException:
        drop_database(url, database_name(staged))
        raise
    if replaced and not pg_snapshot(with_database(url, kept)).tables:
        drop_database(url, kept)  # an empty database (made for the restore) is not worth keeping
        replaced = False
    return _kept(moves) + ([f"database {kept}"] if replaced else [])


def _check_rows(restored: Snapshot, manifest: Manifest, archive: Path) -> None:
    """The loaded database holds exactly the rows the backup counted, table by table."""
    differing = {t: (n, restored.tables.get(t)) for t, n in manifest.tables.items()
                 if restored.tables.get(t) != n}  # fmt: skip
    if differing:
        table, (expected, found) = next(iter(differing.items()))
        raise InvalidInput(f"{archive}: table {table} holds {found} rows after loading, the "
                           f"backup counted {expected}; nothing was restored")  # fmt: skip


def _kept(moves: list[tuple[Path, Path]]) -> list[str]:
    """The folders holding what a swap moved aside."""
    return sorted({str(to.parent) for _, to in moves if to.parent.name.startswith(PREVIOUS_PREFIX)})
