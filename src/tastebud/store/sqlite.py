"""SQLite backend: the embedded default (WAL, one writer at a time, readers never blocked).

Several processes may share one database (``tastebud serve --workers N``): writers queue on an
OS file lock taken before ``BEGIN IMMEDIATE``, so a waiting writer wakes the moment the lock is
free instead of polling in SQLite's busy handler, whose sleeps (up to 100 ms each) made the p99
cliff of concurrent writers.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from tastebud.schema import DatasetKind
from tastebud.store.sql import Cursor, SqlStore


class SqliteStore(SqlStore):
    dialect = "sqlite"

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
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss, which "durable before the API answers" needs;
            # group commits keep the fsync count low.
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=60000")
            conn.execute("PRAGMA cache_size=-262144")  # 256 MiB
            conn.execute("PRAGMA threads=2")  # lets CREATE INDEX sort on both cores
            self._local.conn = conn
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
        finally:
            if write:
                fcntl.flock(self._local.writer, fcntl.LOCK_UN)

    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        """``BEGIN IMMEDIATE`` already holds the database's single write lock."""

    def _suspend_indexes(self, cur: Cursor, dataset: DatasetKind) -> list[str]:
        # Inside the write transaction, so readers keep using the index of their snapshot.
        if dataset != "interactions":
            return []
        rows = cur.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND name = 'interactions_by_user'",
            (dataset,),
        ).fetchall()
        for name, _ in rows:
            cur.execute(f"DROP INDEX {name}")
        return [sql for _, sql in rows]

    def _insert_frame(
        self, cur: Cursor, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        columns = ", ".join(frame.columns)
        marks = ", ".join("?" * frame.width)
        on_conflict = f" ON CONFLICT {conflict}" if conflict else ""
        cur.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}){on_conflict}", frame.iter_rows()
        )
        return max(cur.rowcount, 0)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            for descriptor in self._writers:
                os.close(descriptor)
            self._writers.clear()
        self._local = threading.local()
