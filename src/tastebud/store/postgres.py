"""PostgreSQL backend: the scale-out store, shared by many API workers and jobs."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl
from psycopg_pool import ConnectionPool

from tastebud.schema import DatasetKind
from tastebud.store.sql import Cursor, SqlStore

# First key of the advisory lock that serializes id assignment within a dataset group.
_ID_LOCK_CLASS = 0x7462
_MIGRATION_LOCK = 0x7462_6D69  # "tbmi": one key of the single-key advisory lock space
_staging_names = itertools.count()
_COPY_ROWS = 1_000_000
# The types of SqlStore._EVENT_COLUMNS, to pass each column as one array.
_EVENT_TYPES = {
    "group_id": "integer", "user_idx": "integer", "item_idx": "integer", "ts": "bigint",
    "event_type": "text", "event_value": "double precision", "event_id": "text",
    "session_id": "text", "recommendation_id": "text", "impression": "text", "context": "text",
}  # fmt: skip
_EVENT_VALUE = SqlStore._EVENT_COLUMNS.index("event_value")


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 10, timeout: float | None = None) -> None:
        """``timeout``: seconds to wait for a connection (default: the pool's 30, and no
        limit on each attempt)."""
        self.url = url
        limits: dict[str, Any] = {}
        if timeout is not None:
            limits = {"timeout": timeout, "kwargs": {"connect_timeout": max(1, round(timeout))}}
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, open=True, **limits)

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    def _after_bulk_load(self, dataset: DatasetKind) -> None:
        # Without statistics, right after a big load and before autovacuum gets to it, the
        # planner looked users up through the wrong id_map index and scanned every user of the
        # group per request (6 ms instead of 1 ms on ml-1m-seq; issue 14's slow scale-out).
        with self._transaction(write=True) as cur:
            cur.execute(f"ANALYZE {dataset}, id_map")

    def _lock_migrations(self, cur: Cursor) -> None:
        # Workers starting together on an older (or new) database: one migrates, the others
        # wait and then find it done, instead of failing on a table created meanwhile.
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))

    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (_ID_LOCK_CLASS, group_id))

    # Real-time writes: one round trip and one statement text per step of a group commit,
    # whatever its size. Array parameters keep the text fixed (prepared once per connection)
    # where lists of placeholders would make psycopg and the server parse a new query each time.
    def _select_in(
        self, cur: Cursor, query: str, column: str, params: Sequence[Any], values: Sequence[str]
    ) -> list[Any]:
        rows: list[Any] = self._run(
            cur, f"{query} AND {column} = ANY(?::text[])", (*params, list(values))
        ).fetchall()
        return rows

    def _insert_events(self, cur: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        names = ", ".join(self._EVENT_COLUMNS)
        arrays = ", ".join(f"%s::{_EVENT_TYPES[name]}[]" for name in self._EVENT_COLUMNS)
        columns = [list(column) for column in zip(*rows, strict=True)]
        # psycopg types an array by its elements, which must not mix ints and floats.
        values = columns[_EVENT_VALUE]
        columns[_EVENT_VALUE] = [None if v is None else float(v) for v in values]
        cur.execute(
            f"INSERT INTO interactions ({names}) SELECT * FROM unnest({arrays}) "
            "ON CONFLICT DO NOTHING",
            columns,
        )

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
        with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:  # type: ignore[attr-defined]
            for start in range(0, frame.height, _COPY_ROWS):  # bounded memory for the CSV text
                buffer = io.BytesIO()
                frame.slice(start, _COPY_ROWS).write_csv(buffer, include_header=False)
                copy.write(buffer.getbuffer())

    def close(self) -> None:
        self._pool.close()
