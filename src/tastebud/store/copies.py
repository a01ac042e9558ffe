"""Whole-store copies for backups and restores: SQLite's online backup, ``pg_dump`` and
``pg_restore``, and the few statements that check and swap a copy (``maintenance/`` drives them).

A copy is taken from one consistent snapshot while the store keeps serving: SQLite copies every
page under one read transaction (WAL: writers never wait for it); PostgreSQL exports the
snapshot of a repeatable-read transaction, and ``pg_dump`` and the row counts both read it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tastebud.errors import InvalidInput, NotReady, TastebudError


@dataclass(frozen=True)
class Snapshot:
    """What a copy holds: rows per table, solution versions by status, the schema version."""

    tables: dict[str, int]
    versions: dict[str, str]  # solution version id -> status
    schema_version: int


# SQLite -----------------------------------------------------------------------------------------
def sqlite_copy(source: Path, target: Path) -> Snapshot:
    """Copy the live database ``source`` to the new file ``target`` with SQLite's backup API.

    One step (all pages at once) under one read transaction: a consistent snapshot that holds
    every commit made before it began, while writers keep committing to the WAL. (A copy in
    several steps would restart each time another connection writes.)
    """
    if not source.is_file():
        raise NotReady(f"no SQLite store at {source}: nothing to back up")
    with contextlib.closing(sqlite3.connect(f"file:{source}?mode=rw", uri=True)) as live:
        live.execute("PRAGMA busy_timeout=60000")
        with contextlib.closing(sqlite3.connect(target)) as copy:
            live.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    return sqlite_snapshot(target)


def sqlite_snapshot(path: Path) -> Snapshot:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]  # fmt: skip
        return _snapshot(conn.cursor(), names)


def sqlite_integrity(path: Path) -> list[str]:
    """SQLite's ``integrity_check``: the problems it finds (none: ``[]``)."""
    try:  # mode=rw: a live WAL database is read like any other (never created here)
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True)) as conn:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as error:
        return [str(error)]
    return [] if rows == ["ok"] else rows


def sqlite_users(path: Path) -> list[int]:
    """Processes (other than this one) that have the database or its WAL open (Linux only:
    elsewhere ``[]``). A restore must not swap a file from under a running server, whose
    writes would go to the replaced file and be lost."""
    targets = {str(path.resolve()), f"{path.resolve()}-wal"}
    users = []
    for fd_folder in Path("/proc").glob("[0-9]*/fd"):
        pid = int(fd_folder.parent.name)
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in targets for fd in fd_folder.iterdir()):
                users.append(pid)
    return users


# PostgreSQL -------------------------------------------------------------------------------------
def database_name(url: str) -> str:
    name = conninfo_to_dict(url).get("dbname")
    if not name:
        raise InvalidInput(f"database url {_shown(url)}: it names no database")
    return str(name)


def with_database(url: str, name: str) -> str:
    """``url`` (``postgresql://…``) with database ``name``: the same server and credentials."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def pg_ping(url: str, *, timeout: float) -> None:
    """Connect once and run ``SELECT 1``.

    Raises:
        psycopg.OperationalError: unreachable, refused or denied (the driver's reason).
    """
    with psycopg.connect(url, connect_timeout=max(1, round(timeout))) as conn:
        conn.execute("SELECT 1")


def pg_dump(url: str, target: Path) -> Snapshot:
    """``pg_dump --format=custom`` of ``url`` to ``target``, from the same snapshot as the
    returned row counts."""
    tool = _tool("pg_dump")
    with psycopg.connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot_id = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        _run([tool, "--format=custom", "--no-owner", "--no-privileges",
              f"--snapshot={snapshot_id}", f"--file={target}"], url)  # fmt: skip
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")]  # fmt: skip
        snapshot = _snapshot(conn.cursor(), names)
        conn.rollback()
    return snapshot


def pg_restore_new(url: str, dump: Path, *, jobs: int = 2) -> str:
    """Create a new database beside ``url``'s and load ``dump`` into it; returns its URL.
    On failure the new database is dropped again."""
    tool = _tool("pg_restore")
    name = f"{database_name(url)}_restore_{os.urandom(4).hex()}"[:63]
    with _admin(url) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    staged = with_database(url, name)
    try:
        _run([tool, "--no-owner", "--no-privileges", "--exit-on-error", f"--jobs={jobs}",
              str(dump)], staged)  # fmt: skip
        with psycopg.connect(staged, autocommit=True) as conn:
            conn.execute("ANALYZE")  # a restored database has no statistics (issue 14's scans)
    except BaseException:
        drop_database(url, name)
        raise
    return staged


def pg_snapshot(url: str) -> Snapshot:
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "ORDER BY tablename")]  # fmt: skip
        return _snapshot(conn.cursor(), names)


def pg_swap(url: str, staged: str, *, keep_as: str) -> bool:
    """Give database ``staged`` the name of ``url``'s database in one transaction; the one it
    replaces, if any, is renamed ``keep_as``. Returns whether there was one.

    Raises:
        NotReady: other sessions use either database (stop the servers and workers first).
    """
    target, source = database_name(url), database_name(staged)
    with _admin(url) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,))
        replaced = exists.fetchone() is not None
        try:
            with admin.transaction():  # both renames or neither
                if replaced:
                    admin.execute(f'ALTER DATABASE "{target}" RENAME TO "{keep_as}"')
                admin.execute(f'ALTER DATABASE "{source}" RENAME TO "{target}"')
        except psycopg.errors.ObjectInUse as error:
            sessions = pg_sessions(url)
            raise NotReady(
                f"database {target!r} is in use by {sessions} other session(s): stop tastebud "
                f"serve, workers and consumers first, then restore again ({error})"
            ) from None
    return replaced


def pg_database_exists(url: str, name: str) -> bool:
    """Whether the cluster of ``url`` has a database ``name``."""
    with _admin(url) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return found.fetchone() is not None


def pg_sessions(url: str) -> int:
    """Sessions connected to ``url``'s database (other than this one)."""
    with _admin(url) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_name(url),),
        ).fetchone()
    return int(row[0]) if row else 0


def drop_database(url: str, name: str) -> None:
    with _admin(url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _admin(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit session on the server's maintenance database (``postgres``): databases
    are created, renamed and dropped from outside themselves."""
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        yield conn


# shared -----------------------------------------------------------------------------------------
def _snapshot(cur: Any, tables: list[str]) -> Snapshot:
    counts = {t: int(cur.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
    versions: dict[str, str] = {}
    if "solution_versions" in counts:
        versions = dict(cur.execute("SELECT id, status FROM solution_versions").fetchall())
    schema = 0
    if "schema_migrations" in counts:
        schema = int(cur.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)
    return Snapshot(counts, versions, schema)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise NotReady(f"{name} is not installed (PostgreSQL's client tools): install the "
                       f"postgresql-client package matching the server's version")  # fmt: skip
    return found


def _run(command: list[str], url: str) -> None:
    """Run a client tool on ``url``'s database; the password goes in the environment, never
    on a command line that ``ps`` shows."""
    params = conninfo_to_dict(url)
    password = params.pop("password", None)
    env = os.environ | ({"PGPASSWORD": str(password)} if password else {})
    command = [*command, f"--dbname={make_conninfo('', **params)}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        tool = Path(command[0]).name
        raise TastebudError(f"{tool} failed (exit {done.returncode}): {done.stderr.strip()}")


def _shown(url: str) -> str:
    return url.rpartition("@")[2]
