"""``tastebud backup FILE``: the store, every solution version's artifact and the home's key
files in one archive, taken while the server keeps serving and ingesting.

The database is copied first, from one snapshot (``store/copies.py``); the artifacts of the
versions that snapshot names follow. Artifacts never change once written, so copying them after
the snapshot is safe; a version trained meanwhile is not in the snapshot and is left out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tastebud import __version__
from tastebud.errors import InvalidInput, TastebudError
from tastebud.maintenance.archive import Manifest, StoreKind, checksum, write_archive
from tastebud.serving.versions import DERIVED, version_folder
from tastebud.settings import Settings
from tastebud.store.copies import Snapshot, pg_dump, sqlite_copy
from tastebud.store.migrations import LATEST, too_new

_log = logging.getLogger(__name__)

# Files of TASTEBUD_HOME that belong with the store: the admin token shown at init and the key
# that signs messages' tracking links (links already sent must keep working after a restore).
HOME_FILES = ("admin.token", "messaging.key")


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    seconds: float
    missing_artifacts: list[str]  # active versions whose artifact folder was not found


def store_kind(url: str) -> StoreKind:
    if url.startswith("sqlite:///"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise InvalidInput(f"database url {url!r}: expected sqlite:///PATH or postgresql://HOST/DB")


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def backup(settings: Settings, path: Path) -> BackupResult:
    """Write the archive ``path`` (``.tar``, or ``.tar.gz`` compressed).

    Raises:
        InvalidInput: ``path``'s folder does not exist, or the url is not a store's.
        NotReady: no store yet, or ``pg_dump`` is not installed.
    """
    started = time.perf_counter()
    url = settings.store_url
    kind = store_kind(url)
    if not path.parent.is_dir():
        raise InvalidInput(f"{path}: folder {path.parent} does not exist")
    # Beside the archive: the copy is on the same disk as the archive that will hold it.
    staging = Path(tempfile.mkdtemp(prefix=".tastebud-backup-", dir=path.parent))
    try:
        database = staging / ("tastebud.db" if kind == "sqlite" else "postgres.dump")
        snapshot = (sqlite_copy(sqlite_path(url), database) if kind == "sqlite"
                    else pg_dump(url, database))  # fmt: skip
        if snapshot.schema_version > LATEST:
            raise TastebudError(too_new(url, snapshot.schema_version))
        manifest = _manifest(kind, snapshot)
        sources = {manifest.database: database}
        sources |= _artifacts(settings.artifacts, snapshot.versions)
        sources |= {f"home/{name}": settings.home / name for name in HOME_FILES
                    if (settings.home / name).is_file()}  # fmt: skip
        files = {name: checksum(source) for name, source in sources.items()}
        manifest = dataclasses.replace(manifest, files=files)
        write_archive(path, manifest, sources)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    missing = sorted(v for v, status in snapshot.versions.items()
                     if status == "active" and not (settings.artifacts / v).is_dir())  # fmt: skip
    seconds = time.perf_counter() - started
    _log.info("backup done path=%s store=%s files=%d seconds=%.2f missing_artifacts=%d",
              path, kind, len(files), seconds, len(missing))  # fmt: skip
    return BackupResult(path, manifest, seconds, missing)


def _manifest(kind: StoreKind, snapshot: Snapshot) -> Manifest:
    return Manifest(
        store=kind, schema_version=snapshot.schema_version, tastebud_version=__version__,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        tables=snapshot.tables, versions=snapshot.versions,
    )  # fmt: skip


def _artifacts(root: Path, versions: dict[str, str]) -> dict[str, Path]:
    """Archive name -> file for the artifacts of ``versions`` (derived arrays left out: each
    process remakes them)."""
    sources = {}
    for version in sorted(versions):
        folder = version_folder(root, version)
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*")):
            relative = file.relative_to(root)
            if file.is_file() and DERIVED not in relative.parts:
                sources[f"artifacts/{relative.as_posix()}"] = file
    return sources
