"""SQLite backend: the embedded default (WAL, one writer at a time, readers never blocked)."""

from __future__ import annotations

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
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        conn = self._connection()
        cur = conn.cursor()
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
        self._local = threading.local()
