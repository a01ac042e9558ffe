"""The backup archive: one tar file, ``manifest.json`` first, then the files it lists.

    manifest.json               format, tastebud and schema versions, store kind, what the
                                database held (rows per table, solution versions), and the
                                SHA-256 and size of every other member
    database/tastebud.db        SQLite: the online copy   | database/postgres.dump (pg_dump -Fc)
    artifacts/<version>/…       every solution version's artifact (derived arrays left out)
    home/admin.token, …         the small files of TASTEBUD_HOME that the store relies on

A ``.tar.gz`` / ``.tgz`` name makes it gzip-compressed. The manifest comes first so that an
incompatible archive is refused before anything is read; every member is checked against it
while it is extracted, and a member it does not list, a missing one or a differing one refuses
the whole archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Literal

from tastebud.errors import InvalidInput

FORMAT = 1
MANIFEST = "manifest.json"
StoreKind = Literal["sqlite", "postgres"]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    sha256: str
    bytes: int


@dataclass(frozen=True)
class Manifest:
    store: StoreKind
    schema_version: int
    tastebud_version: str
    created_at: str  # ISO-8601, UTC
    tables: dict[str, int]  # rows per table in the database copy
    versions: dict[str, str]  # solution version id -> status
    files: dict[str, Member] = field(default_factory=dict)  # archive name -> checksum
    format: int = FORMAT

    @property
    def database(self) -> str:
        return "database/tastebud.db" if self.store == "sqlite" else "database/postgres.dump"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, archive: Path) -> Manifest:
        try:
            body = json.loads(raw)
            version = int(body["format"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidInput(f"{archive}: its {MANIFEST} is unreadable ({error})") from None
        if version > FORMAT:
            raise InvalidInput(
                f"{archive}: archive format {version} is newer than this tastebud reads "
                f"({FORMAT}); restore it with the tastebud that made it "
                f"({body.get('tastebud_version', 'unknown')}) or a newer one"
            )
        try:
            files = {name: Member(**member) for name, member in body.pop("files").items()}
            return cls(**body, files=files)
        except (KeyError, TypeError, AttributeError) as error:
            raise InvalidInput(f"{archive}: its {MANIFEST} is incomplete ({error})") from None


def write_archive(path: Path, manifest: Manifest, sources: dict[str, Path]) -> None:
    """Write ``sources`` (archive name -> file on disk) after ``manifest``, whose ``files``
    must already hold their checksums; to a temporary name first, so a failed backup never
    leaves a file that looks whole. The archive is readable by its owner only (it holds
    token hashes and signing keys)."""
    partial = path.with_name(f".{path.name}.partial")
    mode: Literal["w", "w:gz"] = "w:gz" if path.name.endswith((".tar.gz", ".tgz")) else "w"
    try:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # Level 6, gzip's own default: tarfile's 9 is far slower for a few percent less.
        options = {"compresslevel": 6} if mode == "w:gz" else {}
        with (
            os.fdopen(descriptor, "wb") as raw,
            tarfile.open(fileobj=raw, mode=mode, **options) as tar,  # type: ignore[call-overload]
        ):
            body = manifest.to_json()
            _add_bytes(tar, MANIFEST, body)
            for name, source in sources.items():
                info = tar.gettarinfo(str(source), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with source.open("rb") as file:
                    tar.addfile(info, file)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def checksum(path: Path) -> Member:
    with path.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    return Member(sha256=digest, bytes=path.stat().st_size)


def read_manifest(path: Path) -> Manifest:
    """The archive's manifest alone (its first member), checked for compatibility."""
    with _open(path) as tar:
        return _first_manifest(tar, path)


def extract_verified(path: Path, target: Path) -> Manifest:
    """Extract the archive under ``target`` (a new, empty folder), checking every member
    against the manifest as it streams.

    Raises:
        InvalidInput: not an archive, a truncated or damaged one, a member that is missing,
            unlisted, unsafe or differs from its checksum (the message names it).
    """
    with _open(path) as tar:
        manifest = _first_manifest(tar, path)
        seen: set[str] = set()
        try:
            for info in _members(tar):
                name = _safe_name(info, manifest, path)
                seen.add(name)
                source = tar.extractfile(info)
                if source is None:
                    raise InvalidInput(f"{path}: member {name} is not a regular file")
                _copy_checked(source, target / name, manifest.files[name], name, path)
        except (tarfile.TarError, EOFError, OSError) as error:
            raise InvalidInput(f"{path}: the archive is damaged or truncated ({error})") from None
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise InvalidInput(f"{path}: the archive lacks {len(missing)} file(s) its manifest "
                           f"lists, such as {missing[0]} (truncated?)")  # fmt: skip
    return manifest


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    try:
        return tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as error:
        raise InvalidInput(f"{path}: not a tastebud backup archive ({error})") from None


def _first_manifest(tar: tarfile.TarFile, path: Path) -> Manifest:
    try:
        first = tar.next()
        source = tar.extractfile(first) if first is not None else None
        if first is None or first.name != MANIFEST or source is None:
            raise InvalidInput(f"{path}: not a tastebud backup archive (no {MANIFEST} first)")
        return Manifest.from_json(source.read(), archive=path)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise InvalidInput(f"{path}: the archive is damaged or truncated ({error})") from None


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while (info := tar.next()) is not None:
        yield info


def _safe_name(info: tarfile.TarInfo, manifest: Manifest, path: Path) -> str:
    name = info.name
    parts = PurePosixPath(name).parts
    if not info.isfile() or name.startswith("/") or ".." in parts or name not in manifest.files:
        raise InvalidInput(f"{path}: unexpected member {name!r} (not in the manifest)")
    return name


def _copy_checked(source: IO[bytes], target: Path, member: Member, name: str, path: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    if size != member.bytes or digest.hexdigest() != member.sha256:
        raise InvalidInput(
            f"{path}: {name} differs from its checksum in the manifest (damaged archive; "
            "nothing was restored)"
        )


def _add_bytes(tar: tarfile.TarFile, name: str, body: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    info.mtime = int(time.time())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(body))


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    """What an archive holds, for people: counts, not checksums."""
    return {
        "store": manifest.store, "schema_version": manifest.schema_version,
        "tastebud_version": manifest.tastebud_version, "created_at": manifest.created_at,
        "tables": manifest.tables, "solution_versions": len(manifest.versions),
        "files": len(manifest.files), "bytes": sum(m.bytes for m in manifest.files.values()),
    }  # fmt: skip
