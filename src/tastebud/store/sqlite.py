"""SQLite backend: the embedded default (WAL, one writer at a time, readers never blocked).

Several processes may share one database (``tastebud serve --workers N``): writers queue on an
OS file lock taken before ``BEGIN IMMEDIATE``, so a waiting writer wakes the moment the lock is
free instead of polling in SQLite's busy handler, whose sleeps (up to 100 ms each) made the p99
cliff of concurrent writers.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc_sqlite
import polars as pl

from tastebud.store.sql import Cursor, SqlStore

_SCRATCH_SLICES = 4  # at most, of at least _SCRATCH_SLICE_ROWS (leaves room for more loads)
_SCRATCH_SLICE_ROWS = 1_000_000
_MAX_ATTACHED = 10  # SQLite's limit of attached databases per connection (a compile-time cap)


class SqliteStore(SqlStore):
    dialect = "sqlite"
    # Frames this big are written by ADBC from Arrow into scratch databases, then copied by
    # INSERT … SELECT: no Python tuple per row, about half the time of executemany (issue 14).
    SCRATCH_ROWS = 100_000

    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.url = f"sqlite:///{path}"
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._writers: list[int] = []  # lock-file descriptors, one per connection
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Autocommit mode: transactions are opened explicitly below.
            # The busy timeout is set by connect, before the first statement: switching a new
            # database to WAL takes its write lock, which processes opening it together share.
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, which "durable before the API answers" needs;
            # group commits keep the fsync count low.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
            conn.execute("PRAGMA threads=2")  # lets CREATE INDEX sort on both cores
            self._local.conn = conn
            self._local.scratch = []
            # One descriptor per connection: flock excludes other descriptors, so threads of
            # this process queue on it too.
            self._local.writer = os.open(f"{self.path}.writer", os.O_RDWR | os.O_CREAT, 0o600)
            with self._lock:
                self._connections.append(conn)
                self._writers.append(self._local.writer)
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        conn = self._connection()
        if write:
            fcntl.flock(self._local.writer, fcntl.LOCK_EX)
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                conn.rollback()
                raise
            else:
                conn.commit()
            finally:
                cur.close()
                self._drop_scratch(conn)
        finally:
            if write:
                fcntl.flock(self._local.writer, fcntl.LOCK_UN)

    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        """``BEGIN IMMEDIATE`` already holds the database's single write lock."""

    def _insert_frame(
        self, cur: Cursor, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        columns = ", ".join(frame.columns)
        on_conflict = f" ON CONFLICT {conflict}" if conflict else ""
        room = _MAX_ATTACHED - len(self._local.scratch)
        if frame.height < self.SCRATCH_ROWS or room < 1:
            marks = ", ".join("?" * frame.width)
            cur.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks}){on_conflict}", frame.iter_rows()
            )
            return max(cur.rowcount, 0)
        self._remove_leftover_scratch()
        slices = min(_SCRATCH_SLICES, room, -(-frame.height // _SCRATCH_SLICE_ROWS))
        size = -(-frame.height // slices)
        parts = [frame.slice(start, size) for start in range(0, frame.height, size)]
        stored = 0
        # One slice is written to its scratch file on a second thread while the one before is
        # copied here (ADBC and sqlite3 both release the GIL).
        writer = ThreadPoolExecutor(1, thread_name_prefix="tastebud-scratch")
        files = [writer.submit(self._write_scratch, part) for part in parts]
        try:
            for file in files:
                schema = self._attach(file.result())
                # `WHERE true` lets SQLite parse an upsert clause after a SELECT.
                cur.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {schema}.rows "
                    f"WHERE true{on_conflict}"
                )
                stored += max(cur.rowcount, 0)
        finally:
            writer.shutdown(cancel_futures=True)
            for file in files:  # written but never attached (an error above)
                if file.done() and not file.cancelled() and file.exception() is None:
                    file.result().unlink(missing_ok=True)
        return stored

    def _remove_leftover_scratch(self) -> None:
        # Scratch files are made only under the database's single write lock, which this
        # transaction holds: any here now was left by a killed import.
        for leftover in self.path.parent.glob(f"{self.path.name}.import-*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _write_scratch(self, frame: pl.DataFrame) -> Path:
        """``frame`` as table ``rows`` of a new scratch database file."""
        handle, name = tempfile.mkstemp(
            prefix=f"{self.path.name}.import-", suffix=".tmp", dir=self.path.parent
        )
        os.close(handle)
        # Thrown away after the transaction, so no journal and no fsync. ADBC links its own
        # SQLite: the file is closed there before this connection opens it (two copies of
        # SQLite must never hold the same file, or their POSIX locks clobber each other).
        with adbc_sqlite.connect(name, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.adbc_ingest("rows", frame.to_arrow(), mode="create")
        return Path(name)

    def _attach(self, path: Path) -> str:
        """Attach a scratch file to this thread's connection until its transaction ends."""
        schema = f"scratch{len(self._local.scratch)}"
        self._connection().execute(f"ATTACH DATABASE ? AS {schema}", (str(path),))
        self._local.scratch.append((schema, path))
        with contextlib.suppress(OSError):  # POSIX: the open file lives on, a crash leaves none
            path.unlink()
        return schema

    def _drop_scratch(self, conn: sqlite3.Connection) -> None:
        """Detach and delete the scratch databases (only possible once the transaction ends)."""
        for schema, path in self._local.scratch:
            conn.execute(f"DETACH DATABASE {schema}")
            path.unlink(missing_ok=True)
        self._local.scratch.clear()

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            for descriptor in self._writers:
                os.close(descriptor)
            self._writers.clear()
        self._local = threading.local()
