"""SQLite backend: the embedded default (WAL, one writer at a time, readers never blocked)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import adbc_driver_sqlite.dbapi as adbc_sqlite
import polars as pl

from tastebud.store.sql import Cursor, SqlStore


class SqliteStore(SqlStore):
    dialect = "sqlite"
    # Frames this big are written by ADBC from Arrow into a scratch database, then copied by one
    # INSERT … SELECT: no Python tuple per row, about half the time of executemany (issue 14).
    SCRATCH_ROWS = 100_000

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
            self._local.scratch = []
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
            self._drop_scratch(conn)

    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        """``BEGIN IMMEDIATE`` already holds the database's single write lock."""

    def _insert_frame(
        self, cur: Cursor, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        columns = ", ".join(frame.columns)
        on_conflict = f" ON CONFLICT {conflict}" if conflict else ""
        if frame.height < self.SCRATCH_ROWS:
            marks = ", ".join("?" * frame.width)
            cur.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({marks}){on_conflict}", frame.iter_rows()
            )
            return max(cur.rowcount, 0)
        scratch = self._scratch(frame)
        # `WHERE true` lets SQLite parse an upsert clause after a SELECT.
        cur.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {scratch}.rows "
            f"WHERE true{on_conflict}"
        )
        return max(cur.rowcount, 0)

    def _scratch(self, frame: pl.DataFrame) -> str:
        """``frame`` as table ``rows`` of a new scratch database, attached to this thread's
        connection until its transaction ends; returns the schema name."""
        prefix = f"{self.path.name}.import-"
        # Any scratch file here now was left by a killed import: this transaction holds the
        # database's only write lock, and scratch files are made only under it.
        for leftover in self.path.parent.glob(f"{prefix}*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=self.path.parent)
        os.close(handle)
        # Thrown away after the transaction, so no journal and no fsync. ADBC links its own
        # SQLite: the file is closed there before this connection opens it (two copies of
        # SQLite must never hold the same file, or their POSIX locks clobber each other).
        with adbc_sqlite.connect(name, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("PRAGMA journal_mode=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.adbc_ingest("rows", frame.to_arrow(), mode="create")
        schema = f"scratch{len(self._local.scratch)}"
        self._connection().execute(f"ATTACH DATABASE ? AS {schema}", (name,))
        self._local.scratch.append((schema, Path(name)))
        with contextlib.suppress(OSError):  # POSIX: the open file lives on, a crash leaves none
            Path(name).unlink()
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
        self._local = threading.local()
