"""PostgreSQL backend: the scale-out store, shared by many API workers and jobs."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import polars as pl
from psycopg_pool import ConnectionPool

from tastebud.store.sql import Cursor, SqlStore

# First key of the advisory lock that serializes id assignment within a dataset group.
_ID_LOCK_CLASS = 0x7462
_staging_names = itertools.count()


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True)

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_ID_LOCK_CLASS, group_id))

    def _insert_frame(
        self, cur: Cursor, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        columns = ", ".join(frame.columns)
        if not conflict:
            self._copy(cur, table, columns, frame)
            return frame.height
        # COPY cannot resolve conflicts: stage the rows, then one INSERT … SELECT does.
        staging = f"tastebud_staging_{next(_staging_names)}"
        cur.execute(
            f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        self._copy(cur, staging, columns, frame)
        cur.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {staging} "
            f"ON CONFLICT {conflict}"
        )
        stored = max(cur.rowcount, 0)
        cur.execute(f"DROP TABLE {staging}")
        return stored

    @staticmethod
    def _copy(cur: Cursor, table: str, columns: str, frame: pl.DataFrame) -> None:
        buffer = io.BytesIO()
        frame.write_csv(buffer, include_header=False)
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:  # type: ignore[attr-defined]
            copy.write(buffer.getbuffer())

    def close(self) -> None:
        self._pool.close()
