"""PostgreSQL backend: the scale-out store, shared by many API workers and jobs.

An outage never hangs a caller: connections are made within ``connect_timeout``, a pooled
connection is waited for ``pool_timeout`` at most, statements run ``statement_timeout`` at
most (bulk loads and migrations excepted), and once the server is found unreachable a breaker
makes every call fail at once with :class:`StoreUnavailable` (HTTP 503 + ``Retry-After``)
instead of each waiting its own timeout. Every ``breaker.retry_seconds`` one caller tries a
fresh connection; when it gets one, the pool (whose connections all died with the server, and
whose own reconnection backs off for minutes) is replaced, and the store serves again.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import polars as pl
import psycopg
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from tastebud.breaker import Breaker
from tastebud.errors import StoreUnavailable
from tastebud.schema import DatasetKind
from tastebud.store.listen import TailListener
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
STORED_EVENT_IDS = (
    "SELECT f.event_id FROM unnest(%s::text[]) w(id) CROSS JOIN LATERAL (SELECT event_id "
    "FROM interactions x WHERE x.group_id = %s AND x.event_id = w.id LIMIT 1) f"
)


_OUTAGE_STATES = ("08", "57P")  # connection exceptions; admin or crash shutdown, cannot connect
_QUERY_CANCELED = "57014"  # statement_timeout


class PostgresStore(SqlStore):
    """Args:
    url: ``postgresql://…``.
    pool_size: connections at most.
    connect_timeout: seconds a new connection may take.
    pool_timeout: seconds a call waits for a free pooled connection.
    statement_timeout: seconds a statement may run (None: no limit).
    """

    dialect = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        connect_timeout: float = 3.0,
        pool_timeout: float = 5.0,
        statement_timeout: float | None = 60.0,
    ) -> None:
        self.url = url
        self.breaker = Breaker("store")
        self._pool_size = pool_size
        self._connect_timeout = max(1, round(connect_timeout))  # libpq counts whole seconds
        self._pool_timeout = pool_timeout
        self._statement_ms = 0 if statement_timeout is None else round(statement_timeout * 1000)
        self._pool = self._new_pool()

    def _new_pool(self) -> ConnectionPool:
        # Autocommit: `_transaction` still brackets its statements with BEGIN and COMMIT, and
        # `_statement` sends its one statement alone (no BEGIN and COMMIT round trips).
        return ConnectionPool(
            self.url, min_size=1, max_size=self._pool_size, open=True,
            timeout=self._pool_timeout, configure=self._configure,
            kwargs={"connect_timeout": self._connect_timeout, "autocommit": True},
        )  # fmt: skip

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(f"SET statement_timeout = {self._statement_ms}")

    def _sql(self, query: str) -> str:
        return query.replace("?", "%s")

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    @contextmanager
    def _statement(self) -> Iterator[Cursor]:
        with self._connection() as conn, conn.cursor() as cur:
            yield cur

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; an outage or a statement past its timeout raises
        :class:`StoreUnavailable`."""
        self._check_reachable()
        pool = self._pool
        try:
            with pool.connection() as conn:
                try:
                    yield conn
                except psycopg.OperationalError as error:
                    if conn.broken or str(error.sqlstate or "").startswith(_OUTAGE_STATES):
                        raise self._unreachable(error) from error
                    if error.sqlstate == _QUERY_CANCELED:
                        message = f"the database did not answer in time ({error})"
                        raise StoreUnavailable(message) from error
                    raise
        except (PoolTimeout, PoolClosed) as error:  # every connection is broken or busy
            raise self._unreachable(error) from error

    def _unbounded(self, cur: Cursor) -> None:
        """No statement timeout for the rest of this transaction (bulk loads, migrations)."""
        cur.execute("SET LOCAL statement_timeout = 0")

    def _check_reachable(self) -> None:
        """Fail at once while the server is known to be down; else let the call try. The caller
        the breaker lets through while it is down first tries a connection of its own."""
        if not self.breaker.available():
            raise StoreUnavailable(f"the database cannot be reached ({self.breaker.reason})")
        if not self.breaker.down:
            return
        try:
            psycopg.connect(self.url, connect_timeout=self._connect_timeout).close()
        except psycopg.Error as error:
            raise self._unreachable(error) from error
        stale, self._pool = self._pool, self._new_pool()
        self.breaker.succeeded()
        # Closing joins the old pool's threads, which may be sleeping between reconnection
        # attempts: never on a caller's time. Connections still lent out close when given back.
        threading.Thread(target=stale.close, kwargs={"timeout": 1.0}, daemon=True).start()

    def _unreachable(self, error: Exception) -> StoreUnavailable:
        self.breaker.failed(error)
        return StoreUnavailable(f"the database cannot be reached ({error}); retry shortly")

    def _after_bulk_load(self, dataset: DatasetKind) -> None:
        # Without statistics, right after a big load and before autovacuum gets to it, the
        # planner looked users up through the wrong id_map index and scanned every user of the
        # group per request (6 ms instead of 1 ms on ml-1m-seq; issue 14's slow scale-out).
        with self._transaction(write=True) as cur:
            self._unbounded(cur)
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

    def _held_event_ids(self, cur: Cursor, group_id: int, wanted: Sequence[str]) -> set[str]:
        """One index probe per id. With ``event_id = ANY(…)`` the planner, whose statistics
        still said "no event ids" from the bulk import before them, read every id the group
        held and filtered them: 4 ms a commit after 20,000 live events, and growing."""
        rows = cur.execute(STORED_EVENT_IDS, (list(wanted), group_id)).fetchall()
        return {str(r[0]) for r in rows}

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
        self._unbounded(cur)  # a COPY of millions of rows takes its time
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

    def tail_listener(self, on_new: Callable[[], None]) -> TailListener:
        return TailListener(self.url, on_new, connect_timeout=self._connect_timeout)

    def close(self) -> None:
        self._pool.close()
