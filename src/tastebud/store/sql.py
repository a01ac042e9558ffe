"""The storage protocol over SQL, shared by SQLite and PostgreSQL.

Queries are written once with ``?`` placeholders; a dialect subclass supplies connections,
transactions, the id lock and the bulk path (``executemany`` for SQLite, ``COPY`` for PostgreSQL).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl

from tastebud.errors import AlreadyExists, InvalidInput, NotFound, TastebudError
from tastebud.ids import Vocabulary
from tastebud.schema import RESERVED, DatasetKind, DatasetSchema
from tastebud.store.base import (
    DatasetGroup,
    EntityKind,
    Event,
    ImportMode,
    JobRecord,
    Record,
    Scope,
    TokenRecord,
    WriteResult,
)
from tastebud.store.campaigns import CampaignsSql
from tastebud.store.experiments import ExperimentsSql
from tastebud.store.features import FeaturesSql
from tastebud.store.filters import FiltersSql
from tastebud.store.messaging import MessagingSql
from tastebud.store.migrations import LATEST, Dialect, statements, too_new
from tastebud.store.schedules import SchedulesSql
from tastebud.store.solutions import SolutionsSql

if TYPE_CHECKING:
    from tastebud.store.listen import TailListener

_EXPORT_CHUNK = 500_000
_IN_LIST = 500  # ids per IN (...) list: well under every backend's parameter limit
_GROUP_ID = "(SELECT id FROM dataset_groups WHERE name = ?)"  # a group's id within a statement
# Interaction columns in the table, and the canonical field each one stores.
_INTERACTION_COLUMNS = {
    "event_type": "EVENT_TYPE",
    "event_value": "EVENT_VALUE",
    "event_id": "EVENT_ID",
    "session_id": "SESSION_ID",
    "recommendation_id": "RECOMMENDATION_ID",
    "impression": "IMPRESSION",
}
_ENTITY_OF: dict[DatasetKind, EntityKind] = {"items": "item", "users": "user"}


class Cursor(Protocol):
    """The DB-API cursor subset both drivers share."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class SqlStore(
    SolutionsSql,
    FiltersSql,
    CampaignsSql,
    SchedulesSql,
    MessagingSql,
    ExperimentsSql,
    FeaturesSql,
    ABC,
):
    """Shared SQL; subclasses implement the abstract dialect hooks."""

    dialect: Dialect
    url: str

    # dialect hooks ----------------------------------------------------------------------------
    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]:
        """A cursor in one transaction: committed on exit, rolled back on error."""

    def _statement(self) -> AbstractContextManager[Cursor]:
        """A cursor for one read-only statement, which needs no transaction of its own (a
        server store then spares the BEGIN and COMMIT round trips)."""
        return self._transaction(write=False)

    @abstractmethod
    def _lock_ids(self, cur: Cursor, group_id: int) -> None:
        """Serialize id assignment within a group for the rest of the transaction."""

    @abstractmethod
    def _insert_frame(
        self, cur: Cursor, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        """Insert all rows of ``frame`` (columns named as in ``table``); returns rows stored.

        ``conflict`` is an ``ON CONFLICT …`` clause (e.g. ``DO NOTHING``)."""

    def _sql(self, query: str) -> str:
        return query

    def _unbounded(self, cur: Cursor) -> None:
        """Lift the statement timeout for the rest of this transaction, where there is one."""

    def _lock_migrations(self, cur: Cursor) -> None:
        """Serialize migrations between processes for the rest of the transaction (SQLite's
        ``BEGIN IMMEDIATE`` already does)."""

    def tail_listener(self, on_new: Callable[[], None]) -> TailListener | None:
        return None

    def close(self) -> None:
        pass

    # helpers ----------------------------------------------------------------------------------
    def _run(self, cur: Cursor, query: str, params: Sequence[Any] = ()) -> Cursor:
        cur.execute(self._sql(query), params)
        return cur

    def _group_id(self, cur: Cursor, name: str) -> int:
        row = self._run(cur, "SELECT id FROM dataset_groups WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"dataset group {name!r} does not exist")
        return int(row[0])

    # migrations -------------------------------------------------------------------------------
    def migrate(self) -> int:
        with self._transaction(write=True) as cur:
            self._unbounded(cur)  # an index over a big table takes its time
            self._lock_migrations(cur)
            self._run(
                cur,
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            row = self._run(cur, "SELECT MAX(version) FROM schema_migrations").fetchone()
            current = int(row[0] or 0)
            if current > LATEST:  # rolled back: nothing is written to a store from the future
                raise TastebudError(too_new(self.url, current))
            for version in range(current + 1, LATEST + 1):
                for statement in statements(version, self.dialect):
                    self._run(cur, statement)
                self._run(
                    cur,
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, int(time.time())),
                )
        return LATEST

    def schema_version(self) -> int:
        with self._transaction(write=False) as cur:
            exists = (
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
                if self.dialect == "sqlite"
                else "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename = ?"
            )
            if not self._run(cur, exists, ("schema_migrations",)).fetchone()[0]:
                return 0
            row = self._run(cur, "SELECT MAX(version) FROM schema_migrations").fetchone()
            return int(row[0] or 0)

    # dataset groups ---------------------------------------------------------------------------
    def create_group(self, name: str) -> DatasetGroup:
        if not name or len(name) > 63 or not name.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"dataset group name {name!r}: use 1-63 letters, digits, '-' or '_'")
        now = int(time.time())
        with self._transaction(write=True) as cur:
            # ON CONFLICT, not a prior SELECT: processes starting together may race here.
            inserted = self._run(
                cur,
                "INSERT INTO dataset_groups (name, created_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, now),
            ).rowcount
        if not inserted:
            raise AlreadyExists(f"dataset group {name!r} already exists")
        return self.get_group(name)

    def get_group(self, name: str) -> DatasetGroup:
        with self._transaction(write=False) as cur:
            row = self._run(
                cur, "SELECT id, name, created_at FROM dataset_groups WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFound(f"dataset group {name!r} does not exist")
        return DatasetGroup(int(row[0]), str(row[1]), int(row[2]))

    def list_groups(self) -> list[DatasetGroup]:
        with self._transaction(write=False) as cur:
            rows = self._run(
                cur, "SELECT id, name, created_at FROM dataset_groups ORDER BY name"
            ).fetchall()
        return [DatasetGroup(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    def delete_group(self, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, name)
            for table in (
                "interactions", "items", "users", "sessions", "id_map", "id_counters",
                "dataset_schemas", "solutions", "solution_versions", "filters", "campaigns",
                "schedules", "messages", "message_deliveries", "engagement_events",
                "experiments", "exposures", "answers", "metric_attributions",
                "feature_sets", "feature_values", "feature_computations", "feature_runs",
            ):  # fmt: skip
                self._run(cur, f"DELETE FROM {table} WHERE group_id = ?", (group_id,))
            self._run(cur, "DELETE FROM jobs WHERE group_name = ?", (name,))
            self._run(cur, "DELETE FROM dataset_groups WHERE id = ?", (group_id,))

    # schemas ----------------------------------------------------------------------------------
    def put_schema(self, group: str, schema: DatasetSchema) -> None:
        body = json.dumps(schema.to_json_dict())
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._run(
                cur,
                "INSERT INTO dataset_schemas (group_id, dataset, body) VALUES (?, ?, ?) "
                "ON CONFLICT (group_id, dataset) DO UPDATE SET body = excluded.body",
                (group_id, schema.dataset, body),
            )

    def get_schema(self, group: str, dataset: DatasetKind) -> DatasetSchema | None:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT body FROM dataset_schemas WHERE group_id = ? AND dataset = ?",
                (group_id, dataset),
            ).fetchone()
        if row is None:
            return None
        body = json.loads(row[0])
        return DatasetSchema.build(body["dataset"], body["fields"])

    # id mapping -------------------------------------------------------------------------------
    def _assign(self, cur: Cursor, group_id: int, kind: EntityKind, count: int) -> int:
        """Reserve ``count`` new indexes; returns the first. Caller holds the id lock."""
        row = self._run(
            cur,
            "SELECT next_idx FROM id_counters WHERE group_id = ? AND kind = ?",
            (group_id, kind),
        ).fetchone()
        first = int(row[0]) if row else 0
        self._run(
            cur,
            "INSERT INTO id_counters (group_id, kind, next_idx) VALUES (?, ?, ?) "
            "ON CONFLICT (group_id, kind) DO UPDATE SET next_idx = excluded.next_idx",
            (group_id, kind, first + count),
        )
        return first

    def _map_ids(
        self,
        cur: Cursor,
        group_id: int,
        kind: EntityKind,
        external_ids: pl.Series,
        cache: dict[EntityKind, pl.DataFrame],
    ) -> pl.Series:
        """The index of each of ``external_ids`` (null stays null), adding unseen ids (bulk path).

        ``cache`` holds the known ids across the chunks of one transaction, which holds the id
        lock, so the table is read once per import rather than once per chunk. One join per
        chunk against it, a second only for the rows whose id was new."""
        known = cache.get(kind)
        if known is None:
            known = self._read(
                cur,
                "SELECT external_id, idx FROM id_map WHERE group_id = ? AND kind = ?",
                (group_id, kind),
                {"external_id": pl.String, "idx": pl.Int64},
            )
        ids = external_ids.rename("external_id").to_frame()
        found = ids.join(known, on="external_id", how="left", maintain_order="left")["idx"]
        unseen = external_ids.filter(found.is_null() & external_ids.is_not_null())
        if unseen.is_empty():
            cache[kind] = known
            return found
        new = unseen.unique(maintain_order=True).rename("external_id").to_frame()
        first = self._assign(cur, group_id, kind, new.height)
        new = new.with_columns((pl.int_range(0, new.height, dtype=pl.Int64) + first).alias("idx"))
        self._insert_frame(
            cur,
            "id_map",
            new.with_columns(pl.lit(group_id).alias("group_id"), pl.lit(kind).alias("kind")),
        )
        cache[kind] = pl.concat([known, new])
        added = ids.join(new, on="external_id", how="left", maintain_order="left")["idx"]
        return found.fill_null(added)

    def _map_few(
        self, cur: Cursor, group_id: int, kind: EntityKind, external_ids: set[str]
    ) -> dict[str, int]:
        """Same as :meth:`_map_ids` for the handful of ids of a real-time batch."""
        if not external_ids:
            return {}
        ordered = sorted(external_ids)
        rows = self._select_in(
            cur,
            "SELECT external_id, idx FROM id_map WHERE group_id = ? AND kind = ?",
            "external_id",
            (group_id, kind),
            ordered,
        )
        mapping = {str(r[0]): int(r[1]) for r in rows}
        new = [value for value in ordered if value not in mapping]
        if new:
            first = self._assign(cur, group_id, kind, len(new))
            rows = [(group_id, kind, value, first + i) for i, value in enumerate(new)]
            cur.executemany(
                self._sql(
                    "INSERT INTO id_map (group_id, kind, external_id, idx) VALUES (?, ?, ?, ?)"
                ),
                rows,
            )
            mapping.update({value: first + i for i, value in enumerate(new)})
        return mapping

    def _read(
        self,
        cur: Cursor,
        query: str,
        params: Sequence[Any],
        schema: Mapping[str, pl.DataType | type[pl.DataType]],
    ) -> pl.DataFrame:
        rows = self._run(cur, query, params).fetchall()
        return pl.DataFrame(rows, schema=dict(schema), orient="row")

    # bulk writes ------------------------------------------------------------------------------
    @contextmanager
    def bulk_writer(
        self, group: str, dataset: DatasetKind, mode: ImportMode
    ) -> Iterator[_SqlBulkWriter]:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._lock_ids(cur, group_id)
            if mode == "full":
                self._run(cur, f"DELETE FROM {dataset} WHERE group_id = ?", (group_id,))
            writer = _SqlBulkWriter(self, cur, group_id, dataset)
            yield writer
            writer.finish()
        self._after_bulk_load(dataset)

    def _after_bulk_load(self, dataset: DatasetKind) -> None:
        """Once a bulk load is committed (a dialect refreshes its planner statistics here)."""

    def _interaction_rows(
        self, cur: Cursor, group_id: int, chunk: pl.DataFrame, ids: dict[EntityKind, pl.DataFrame]
    ) -> pl.DataFrame:
        """The chunk as ``interactions`` rows, with ids mapped to indexes (new ones assigned)."""
        frame = chunk.with_columns(
            self._map_ids(cur, group_id, "user", chunk["USER_ID"], ids).alias("user_idx"),
            self._map_ids(cur, group_id, "item", chunk["ITEM_ID"], ids).alias("item_idx"),
        )
        context_fields = [c for c in chunk.columns if c not in RESERVED["interactions"]]
        columns = [
            pl.lit(group_id).alias("group_id"),
            pl.col("user_idx"),
            pl.col("item_idx"),
            pl.col("TIMESTAMP").alias("ts"),
        ]
        columns += [
            pl.col(field).alias(column)
            for column, field in _INTERACTION_COLUMNS.items()
            if field in frame.columns
        ]
        if context_fields:
            columns.append(_json_object(context_fields).alias("context"))
        return frame.select(columns)

    def _store_interactions(self, cur: Cursor, rows: pl.DataFrame) -> int:
        if "event_id" in rows.columns:
            # The first copy of a repeated event id wins; rows without an id are all kept.
            first_copy = pl.col("event_id").is_null() | pl.col("event_id").is_first_distinct()
            rows = rows.filter(first_copy)
            return self._insert_frame(cur, "interactions", rows, conflict="DO NOTHING")
        return self._insert_frame(cur, "interactions", rows)

    def _write_entities(
        self,
        cur: Cursor,
        group_id: int,
        dataset: DatasetKind,
        chunk: pl.DataFrame,
        ids_cache: dict[EntityKind, pl.DataFrame],
    ) -> int:
        id_field = "ITEM_ID" if dataset == "items" else "USER_ID"
        index_column = "item_idx" if dataset == "items" else "user_idx"
        chunk = chunk.unique(subset=[id_field], keep="last", maintain_order=True)
        ids = self._map_ids(cur, group_id, _ENTITY_OF[dataset], chunk[id_field], ids_cache)
        frame = chunk.with_columns(ids.alias("idx"))
        fields = [c for c in chunk.columns if c not in RESERVED[dataset]]
        columns = [
            pl.lit(group_id).alias("group_id"),
            pl.col("idx").alias(index_column),
            _json_object(fields).alias("fields") if fields else pl.lit("{}").alias("fields"),
        ]
        if dataset == "items":
            creation = frame.get_column("CREATION_TIMESTAMP", default=None)
            columns.append(
                pl.col("CREATION_TIMESTAMP").alias("creation_ts")
                if creation is not None
                else pl.lit(None, dtype=pl.Int64).alias("creation_ts")
            )
        rows = frame.select(columns)
        update = ", ".join(f"{c} = excluded.{c}" for c in rows.columns[2:])
        return self._insert_frame(
            cur, dataset, rows, conflict=f"({'group_id, ' + index_column}) DO UPDATE SET {update}"
        )

    # real-time writes -------------------------------------------------------------------------
    # The columns of an interaction row as `_insert_events` receives it.
    _EVENT_COLUMNS = (
        "group_id", "user_idx", "item_idx", "ts", "event_type", "event_value", "event_id",
        "session_id", "recommendation_id", "impression", "context",
    )  # fmt: skip
    # Sizes an ``IN (...)`` list is padded to: the statement text stays among a handful, so
    # SQLite's statement cache and PostgreSQL's prepared statements are reused across commits.
    _IN_SIZES = (8, 16, 32, 64, 128, 256, 512)
    # Rows per INSERT of `_insert_events` (256 x 11 values stays under SQLite's 32,766).
    _INSERT_SIZES = (256, 64, 16)

    def put_events(self, group: str, events: Sequence[Event]) -> WriteResult:
        return self.put_event_batches(group, [events])[0]

    def put_event_batches(
        self, group: str, batches: Sequence[Sequence[Event]]
    ) -> list[WriteResult]:
        """Store many requests' events in one transaction; one result per batch.

        A fixed number of statements per commit, whatever its size (no per-request or per-row
        round trips): ids, sessions and already stored event ids are each looked up at once,
        and all new events go in with one ``_insert_events``."""
        everything = [e for events in batches for e in events]
        if not everything:
            return [WriteResult(accepted=0) for _ in batches]
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._lock_ids(cur, group_id)
            users = self._map_few(
                cur, group_id, "user", {e.user_id for e in everything if e.user_id}
            )
            items = self._map_few(cur, group_id, "item", {e.item_id for e in everything})
            session_users = self._link_sessions(cur, group_id, everything, users)
            # Every writer of a group's interactions holds its id lock (real-time and bulk), so
            # the event ids stored now stay exactly those until the commit: duplicates are
            # known before inserting, and each request hears its own count.
            seen = self._stored_event_ids(cur, group_id, everything)
            rows: list[tuple[Any, ...]] = []
            results = []
            for events in batches:
                fresh = [e for e in events if self._first_copy(e.event_id, seen)]
                rows += [
                    (
                        group_id,
                        users[e.user_id] if e.user_id else session_users.get(e.session_id or ""),
                        items[e.item_id], e.timestamp, e.event_type, e.event_value, e.event_id,
                        e.session_id, e.recommendation_id, e.impression,
                        json.dumps(e.context) if e.context else None,
                    )
                    for e in fresh
                ]  # fmt: skip
                results.append(
                    WriteResult(accepted=len(fresh), duplicates=len(events) - len(fresh))
                )
            if rows:
                self._insert_events(cur, rows)
        return results

    @staticmethod
    def _first_copy(event_id: str | None, seen: set[str]) -> bool:
        """True for an event without id, or the first with its id (``seen`` then holds it)."""
        if event_id is None:
            return True
        if event_id in seen:
            return False
        seen.add(event_id)
        return True

    def _stored_event_ids(self, cur: Cursor, group_id: int, events: Sequence[Event]) -> set[str]:
        """Which of these events' ids the group already holds."""
        wanted = sorted({e.event_id for e in events if e.event_id is not None})
        return self._held_event_ids(cur, group_id, wanted) if wanted else set()

    def _held_event_ids(self, cur: Cursor, group_id: int, wanted: Sequence[str]) -> set[str]:
        query = "SELECT event_id FROM interactions WHERE group_id = ?"
        return {str(r[0]) for r in self._select_in(cur, query, "event_id", (group_id,), wanted)}

    def _insert_events(self, cur: Cursor, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert interaction rows (``_EVENT_COLUMNS`` order) known to be new.

        Multi-row statements of a few fixed sizes (each parsed once per connection), the last
        rows by ``executemany``: less work in Python per row than ``executemany`` alone, and
        SQLite inserts a whole statement while the event loop has the interpreter.
        ``ON CONFLICT DO NOTHING`` is only a safety net: duplicates were taken out before."""
        columns = ", ".join(self._EVENT_COLUMNS)
        row_marks = f"({', '.join('?' * len(self._EVENT_COLUMNS))})"
        start = 0
        for size in self._INSERT_SIZES:
            while len(rows) - start >= size:
                values = [value for row in rows[start : start + size] for value in row]
                marks = ", ".join([row_marks] * size)
                self._run(
                    cur,
                    f"INSERT INTO interactions ({columns}) VALUES {marks} ON CONFLICT DO NOTHING",
                    values,
                )
                start += size
        if start < len(rows):
            insert = (
                f"INSERT INTO interactions ({columns}) VALUES {row_marks} ON CONFLICT DO NOTHING"
            )
            cur.executemany(self._sql(insert), rows[start:])

    def _link_sessions(
        self, cur: Cursor, group_id: int, events: Sequence[Event], users: Mapping[str, int]
    ) -> dict[str, int]:
        """Session -> user for this batch; claims anonymous events of newly identified sessions.

        A session keeps the first user it was linked to. An event without a user goes to the
        user another event of the batch names with its session, else to the stored link."""
        known = {e.session_id: users[e.user_id] for e in events if e.session_id and e.user_id}
        anonymous = {e.session_id for e in events if e.session_id and not e.user_id} - set(known)
        if not known and not anonymous:
            return known
        stored = {
            str(r[0]): int(r[1])
            for r in self._select_in(
                cur,
                "SELECT session_id, user_idx FROM sessions WHERE group_id = ?",
                "session_id",
                (group_id,),
                sorted(known.keys() | anonymous),
            )
        }
        # Under the id lock nobody else links sessions meanwhile: the unstored ones are ours.
        new = [(group_id, session_id, user_idx) for session_id, user_idx in known.items()
               if session_id not in stored]  # fmt: skip
        if new:
            cur.executemany(
                self._sql(
                    "INSERT INTO sessions (group_id, session_id, user_idx) VALUES (?, ?, ?) "
                    "ON CONFLICT (group_id, session_id) DO NOTHING"
                ),
                new,
            )
            cur.executemany(
                self._sql(
                    "UPDATE interactions SET user_idx = ? WHERE group_id = ? AND session_id = ? "
                    "AND user_idx IS NULL"
                ),
                [(user_idx, group_id, session_id) for group_id, session_id, user_idx in new],
            )
        known.update({s: stored[s] for s in anonymous if s in stored})
        return known

    def _select_in(
        self, cur: Cursor, query: str, column: str, params: Sequence[Any], values: Sequence[str]
    ) -> list[Any]:
        """All rows of ``query`` (a SELECT … WHERE with ``params``) whose ``column`` is one of
        ``values``."""
        rows: list[Any] = []
        largest = self._IN_SIZES[-1]
        for start in range(0, len(values), largest):
            part = list(values[start : start + largest])
            size = next(size for size in self._IN_SIZES if size >= len(part))
            part += [part[-1]] * (size - len(part))  # a repeated value matches nothing more
            marks = ",".join("?" * size)
            rows += self._run(
                cur, f"{query} AND {column} IN ({marks})", (*params, *part)
            ).fetchall()
        return rows

    def put_records(self, group: str, dataset: DatasetKind, records: Sequence[Record]) -> int:
        if dataset == "interactions":
            raise InvalidInput("put_records writes items or users; use put_events for events")
        if not records:
            return 0
        latest = {r.id: r for r in records}  # the last version of a repeated id wins
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._lock_ids(cur, group_id)
            ids = self._map_few(cur, group_id, _ENTITY_OF[dataset], set(latest))
            if dataset == "items":
                cur.executemany(
                    self._sql(
                        "INSERT INTO items (group_id, item_idx, creation_ts, fields) "
                        "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, item_idx) DO UPDATE SET "
                        "creation_ts = excluded.creation_ts, fields = excluded.fields"
                    ),
                    [
                        (group_id, ids[r.id], r.creation_timestamp, json.dumps(dict(r.fields)))
                        for r in latest.values()
                    ],
                )
            else:
                cur.executemany(
                    self._sql(
                        "INSERT INTO users (group_id, user_idx, fields) VALUES (?, ?, ?) "
                        "ON CONFLICT (group_id, user_idx) DO UPDATE SET fields = excluded.fields"
                    ),
                    [(group_id, ids[r.id], json.dumps(dict(r.fields))) for r in latest.values()],
                )
        return len(latest)

    def delete_users(self, group: str, user_ids: Sequence[str]) -> int:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._lock_ids(cur, group_id)
            found = 0
            for user_id in dict.fromkeys(user_ids):
                row = self._run(
                    cur,
                    "SELECT idx FROM id_map WHERE group_id = ? AND kind = 'user' "
                    "AND external_id = ?",
                    (group_id, user_id),
                ).fetchone()
                if row is None:
                    continue
                found += 1
                user_idx = int(row[0])
                self._erase_messaging(cur, group_id, user_id)
                self._erase_experiments(cur, group_id, user_id)
                for table in ("interactions", "users", "sessions"):
                    self._run(
                        cur,
                        f"DELETE FROM {table} WHERE group_id = ? AND user_idx = ?",
                        (group_id, user_idx),
                    )
                self._run(
                    cur,
                    "DELETE FROM id_map WHERE group_id = ? AND kind = 'user' AND idx = ?",
                    (group_id, user_idx),
                )
        return found

    # reads ------------------------------------------------------------------------------------
    def counts(self, group: str) -> dict[str, int]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            counts = {
                table: int(
                    self._run(
                        cur, f"SELECT COUNT(*) FROM {table} WHERE group_id = ?", (group_id,)
                    ).fetchone()[0]
                )
                for table in ("interactions", "items", "users")
            }
            counts["anonymous_interactions"] = int(
                self._run(
                    cur,
                    "SELECT COUNT(*) FROM interactions WHERE group_id = ? AND user_idx IS NULL",
                    (group_id,),
                ).fetchone()[0]
            )
            for kind in ("user", "item"):
                counts[f"{kind}_ids"] = int(
                    self._run(
                        cur,
                        "SELECT COUNT(*) FROM id_map WHERE group_id = ? AND kind = ?",
                        (group_id, kind),
                    ).fetchone()[0]
                )
        return counts

    def vocabulary(self, group: str, kind: EntityKind) -> Vocabulary:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT idx, external_id FROM id_map WHERE group_id = ? AND kind = ?",
                (group_id, kind),
            ).fetchall()
            size = self._vocabulary_size(cur, group_id, kind)
        ids: list[str | None] = [None] * size
        for index, external_id in rows:
            ids[int(index)] = str(external_id)
        return Vocabulary(ids)

    def vocabulary_size(self, group: str, kind: EntityKind) -> int:
        with self._transaction(write=False) as cur:
            return self._vocabulary_size(cur, self._group_id(cur, group), kind)

    def _vocabulary_size(self, cur: Cursor, group_id: int, kind: EntityKind) -> int:
        row = self._run(
            cur,
            "SELECT next_idx FROM id_counters WHERE group_id = ? AND kind = ?",
            (group_id, kind),
        ).fetchone()
        return int(row[0]) if row else 0

    def read_interactions(self, group: str, *, up_to_seq: int | None = None) -> pl.DataFrame:
        limit = 2**62 if up_to_seq is None else up_to_seq
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                "SELECT user_idx, item_idx, ts, event_type, event_value, impression "
                "FROM interactions WHERE group_id = ? AND user_idx IS NOT NULL AND seq <= ? "
                "ORDER BY seq",
                (group_id, limit),
                {
                    "user_index": pl.Int32,
                    "item_index": pl.Int32,
                    "timestamp": pl.Int64,
                    "event_type": pl.String,
                    "event_value": pl.Float32,
                    "impression": pl.String,
                },
            )

    def last_seq(self, group: str) -> int:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur, "SELECT MAX(seq) FROM interactions WHERE group_id = ?", (group_id,)
            ).fetchone()
        return int(row[0] or 0)

    def newest_seq(self) -> int:
        with self._transaction(write=False) as cur:
            row = self._run(cur, "SELECT MAX(seq) FROM interactions", ()).fetchone()
        return int(row[0] or 0)

    def count_arrived(self, group: str, after_seq: int, up_to_seq: int) -> int:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                # `+group_id`: a range of the primary key (the recent arrivals, whatever their
                # group), not the group's whole per-user index
                "SELECT COUNT(*) FROM interactions WHERE seq > ? AND seq <= ? AND +group_id = ?",
                (after_seq, up_to_seq, group_id),
            ).fetchone()
        return int(row[0])

    def interactions_after(self, group: str, seq: int, *, limit: int) -> pl.DataFrame:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                # `+group_id`: walk the arrival order from `seq` (the primary key) instead of
                # letting SQLite pick the per-user index and sort the whole group.
                "SELECT seq, item_idx, ts, event_type, event_value FROM interactions "
                "WHERE seq > ? AND +group_id = ? ORDER BY seq LIMIT ?",
                (seq, group_id, limit),
                {"seq": pl.Int64, "item_index": pl.Int32, "timestamp": pl.Int64,
                 "event_type": pl.String, "event_value": pl.Float32},
            )  # fmt: skip

    def item_stats(self, group: str, *, since: int | None = None) -> pl.DataFrame:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                "SELECT m.idx, COALESCE(c.n, 0), it.creation_ts FROM id_map m LEFT JOIN "
                "(SELECT item_idx, COUNT(*) AS n FROM interactions WHERE group_id = ? "
                "AND ts >= ? GROUP BY item_idx) c ON c.item_idx = m.idx LEFT JOIN items it "
                "ON it.group_id = m.group_id AND it.item_idx = m.idx "
                "WHERE m.group_id = ? AND m.kind = 'item' ORDER BY m.idx",
                (group_id, -(2**62) if since is None else since, group_id),
                {"item_index": pl.Int32, "interactions": pl.Int64, "creation_ts": pl.Int64},
            )

    def interaction_count(self, group: str, *, cap: int) -> int:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT COUNT(*) FROM (SELECT 1 FROM interactions WHERE group_id = ? LIMIT ?) s",
                (group_id, cap),
            ).fetchone()
        return int(row[0])

    # The two reads of every served answer and cache sync: one statement each, the group's
    # id looked up within it.
    def users_after(self, group: str, seq: int, *, limit: int) -> list[tuple[int, str]]:
        with self._statement() as cur:
            rows = self._run(
                cur,
                # The tail first (a primary-key range, see above), then its users' ids.
                "SELECT x.seq, m.external_id FROM (SELECT seq, group_id, user_idx "
                "FROM interactions WHERE seq > ? AND +group_id = "
                f"{_GROUP_ID} ORDER BY seq LIMIT ?) x "
                "JOIN id_map m ON m.group_id = x.group_id AND m.kind = 'user' "
                "AND m.idx = x.user_idx ORDER BY x.seq",
                (seq, group, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def recent_events(self, group: str, user_id: str, limit: int) -> list[Event]:
        with self._statement() as cur:
            rows = self._run(
                cur,
                "SELECT i.external_id, x.ts, x.event_type, x.event_value, x.event_id, "
                "x.session_id, x.recommendation_id, x.impression, x.context "
                "FROM id_map u JOIN interactions x ON x.group_id = u.group_id "
                "AND x.user_idx = u.idx JOIN id_map i ON i.group_id = x.group_id "
                "AND i.kind = 'item' AND i.idx = x.item_idx "
                f"WHERE u.group_id = {_GROUP_ID} AND u.kind = 'user' AND u.external_id = ? "
                "ORDER BY x.ts DESC, x.seq DESC LIMIT ?",
                (group, user_id, limit),
            ).fetchall()
            if not rows:
                self._group_id(cur, group)  # NotFound for a group that does not exist
        return [_event(user_id, row) for row in reversed(rows)]

    def _users_in_chunks(
        self, group: str, user_ids: Sequence[str]
    ) -> Iterator[tuple[Cursor, int, dict[int, str]]]:
        """For each chunk of distinct ``user_ids`` (few enough for one ``IN`` list): a read
        transaction's cursor, the group's id and the chunk's known users as index -> id. Reads
        that start from these indexes walk the (group_id, user_idx, ts) index, one range per
        user, instead of joining id_map to the whole group."""
        unique = list(dict.fromkeys(user_ids))
        for start in range(0, len(unique), _IN_LIST):
            chunk = unique[start : start + _IN_LIST]
            with self._transaction(write=False) as cur:
                group_id = self._group_id(cur, group)
                users = dict(self._run(
                    cur, "SELECT idx, external_id FROM id_map WHERE group_id = ? AND kind = 'user' "
                    f"AND external_id IN ({', '.join('?' * len(chunk))})", (group_id, *chunk),
                ).fetchall())  # fmt: skip
                if users:
                    yield cur, group_id, users

    def latest_interactions(self, group: str, user_ids: Sequence[str], limit: int) -> pl.DataFrame:
        frames = []
        for cur, group_id, users in self._users_in_chunks(group, user_ids):
            # Numbered newest first per user, as recent_events orders them.
            frame = self._read(
                cur,
                "SELECT user_idx, item_idx, ts, event_type, event_value FROM (SELECT "
                "user_idx, item_idx, ts, event_type, event_value, seq, ROW_NUMBER() OVER "
                "(PARTITION BY user_idx ORDER BY ts DESC, seq DESC) AS newest FROM interactions "
                f"WHERE group_id = ? AND user_idx IN ({', '.join('?' * len(users))})"
                ") x WHERE newest <= ? ORDER BY user_idx, newest DESC",
                (group_id, *users, limit),
                {"user_index": pl.Int64, "item_index": pl.Int32, "timestamp": pl.Int64,
                 "event_type": pl.String, "event_value": pl.Float32},
            )  # fmt: skip
            user_id = pl.col("user_index").replace_strict(users, return_dtype=pl.String)
            frames.append(frame.select(user_id.alias("user_id"), pl.exclude("user_index")))
        if not frames:
            return pl.DataFrame(schema={"user_id": pl.String, "item_index": pl.Int32,
                                        "timestamp": pl.Int64, "event_type": pl.String,
                                        "event_value": pl.Float32})  # fmt: skip
        return pl.concat(frames)

    def seen_items(self, group: str, user_ids: Sequence[str]) -> pl.DataFrame:
        schema = {"user_id": pl.String, "item_index": pl.Int32}
        frames = []
        for cur, group_id, users in self._users_in_chunks(group, user_ids):
            rows = self._run(
                cur,
                "SELECT DISTINCT user_idx, item_idx FROM interactions WHERE group_id = ? "
                f"AND user_idx IN ({', '.join('?' * len(users))})",
                (group_id, *users),
            ).fetchall()
            frames.append(pl.DataFrame(
                {"user_id": [users[r[0]] for r in rows], "item_index": [r[1] for r in rows]},
                schema=schema,
            ))  # fmt: skip
        if not frames:
            return pl.DataFrame(schema=schema)
        return pl.concat(frames).sort("user_id", "item_index")

    def seen_item_indexes(self, group: str, user_id: str) -> npt.NDArray[np.int32]:
        # One statement (one round trip on PostgreSQL), and no polars frame, sort or thread
        # pool: for one user they cost more than the query.
        with self._transaction(write=False) as cur:
            rows = self._run(
                cur,
                "SELECT DISTINCT x.item_idx FROM dataset_groups g JOIN id_map u "
                "ON u.group_id = g.id AND u.kind = 'user' AND u.external_id = ? "
                "JOIN interactions x ON x.group_id = u.group_id AND x.user_idx = u.idx "
                "WHERE g.name = ?",
                (user_id, group),
            ).fetchall()
        return np.fromiter((row[0] for row in rows), np.int32, len(rows))

    def recent_events_of(
        self, group: str, user_ids: Sequence[str], limit: int
    ) -> dict[str, list[Event]]:
        found: dict[str, list[Event]] = {}
        for cur, group_id, users in self._users_in_chunks(group, user_ids):
            rows = self._run(
                cur,
                "SELECT x.user_idx, i.external_id, x.ts, x.event_type, x.event_value, "
                "x.event_id, x.session_id, x.recommendation_id, x.impression, x.context "
                "FROM (SELECT y.*, ROW_NUMBER() OVER (PARTITION BY y.user_idx "
                "ORDER BY y.ts DESC, y.seq DESC) AS newest FROM interactions y "
                f"WHERE y.group_id = ? AND y.user_idx IN ({', '.join('?' * len(users))})) x "
                "JOIN id_map i ON i.group_id = x.group_id AND i.kind = 'item' "
                "AND i.idx = x.item_idx WHERE x.newest <= ? ORDER BY x.user_idx, x.newest DESC",
                (group_id, *users, limit),
            ).fetchall()
            for row in rows:
                user = users[row[0]]
                found.setdefault(user, []).append(_event(user, row[1:]))
        return found

    def export(self, group: str, dataset: DatasetKind) -> Iterator[pl.DataFrame]:
        schema = self.get_schema(group, dataset) or DatasetSchema.default(dataset)
        after = -1
        while True:
            with self._transaction(write=False) as cur:
                group_id = self._group_id(cur, group)
                chunk = self._export_chunk(cur, group_id, dataset, after)
            if chunk.is_empty():
                return
            after = int(chunk["__key"].max())  # type: ignore[arg-type]
            yield _expand_fields(chunk.drop("__key"), schema)

    def _export_chunk(
        self, cur: Cursor, group_id: int, dataset: DatasetKind, after: int
    ) -> pl.DataFrame:
        if dataset == "interactions":
            columns = ", ".join(f"x.{c}" for c in _INTERACTION_COLUMNS)
            query = (
                f"SELECT x.seq, u.external_id, i.external_id, x.ts, {columns}, x.context "
                "FROM interactions x LEFT JOIN id_map u ON u.group_id = x.group_id "
                "AND u.kind = 'user' AND u.idx = x.user_idx JOIN id_map i "
                "ON i.group_id = x.group_id AND i.kind = 'item' AND i.idx = x.item_idx "
                "WHERE x.group_id = ? AND x.seq > ? ORDER BY x.seq LIMIT ?"
            )
            schema: dict[str, Any] = {"__key": pl.Int64, "USER_ID": pl.String,
                                      "ITEM_ID": pl.String, "TIMESTAMP": pl.Int64}  # fmt: skip
            schema |= {f: pl.String for f in _INTERACTION_COLUMNS.values()}
            schema |= {"EVENT_VALUE": pl.Float64, "__fields": pl.String}
        elif dataset == "items":
            query = (
                "SELECT e.item_idx, m.external_id, e.creation_ts, e.fields FROM items e "
                "JOIN id_map m ON m.group_id = e.group_id AND m.kind = 'item' "
                "AND m.idx = e.item_idx WHERE e.group_id = ? AND e.item_idx > ? "
                "ORDER BY e.item_idx LIMIT ?"
            )
            schema = {"__key": pl.Int64, "ITEM_ID": pl.String, "CREATION_TIMESTAMP": pl.Int64,
                      "__fields": pl.String}  # fmt: skip
        else:
            query = (
                "SELECT e.user_idx, m.external_id, e.fields FROM users e JOIN id_map m "
                "ON m.group_id = e.group_id AND m.kind = 'user' AND m.idx = e.user_idx "
                "WHERE e.group_id = ? AND e.user_idx > ? ORDER BY e.user_idx LIMIT ?"
            )
            schema = {"__key": pl.Int64, "USER_ID": pl.String, "__fields": pl.String}
        return self._read(cur, query, (group_id, after, _EXPORT_CHUNK), schema)

    # jobs -------------------------------------------------------------------------------------
    def save_job(self, job: JobRecord) -> None:
        with self._transaction(write=True) as cur:
            self._run(
                cur,
                "INSERT INTO jobs (id, group_name, kind, status, params, progress, result, "
                "error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "progress = excluded.progress, result = excluded.result, "
                "error = excluded.error, updated_at = excluded.updated_at",
                (
                    job.id, job.group, job.kind, job.status, json.dumps(dict(job.params)),
                    job.progress, json.dumps(dict(job.result)) if job.result is not None else None,
                    job.error, job.created_at, job.updated_at,
                ),
            )  # fmt: skip

    _JOB_COLUMNS = (
        "id, group_name, kind, status, params, progress, result, error, created_at, updated_at"
    )

    def get_job(self, job_id: str) -> JobRecord:
        with self._transaction(write=False) as cur:
            row = self._run(
                cur, f"SELECT {self._JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return _job(row)

    def list_jobs(self, group: str, limit: int = 50) -> list[JobRecord]:
        with self._transaction(write=False) as cur:
            rows = self._run(
                cur,
                f"SELECT {self._JOB_COLUMNS} FROM jobs WHERE group_name = ? "
                "ORDER BY created_at DESC LIMIT ?",
                (group, limit),
            ).fetchall()
        return [_job(r) for r in rows]

    # tokens -----------------------------------------------------------------------------------
    def add_token(self, token_hash: str, *, name: str, scope: Scope) -> None:
        with self._transaction(write=True) as cur:
            inserted = self._run(
                cur,
                "INSERT INTO tokens (name, token_hash, scope, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (name, token_hash, scope, int(time.time())),
            ).rowcount
        if not inserted:
            raise AlreadyExists(f"token {name!r} already exists")

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self._transaction(write=False) as cur:
            row = self._run(
                cur, "SELECT name, scope, created_at FROM tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()  # fmt: skip
        return TokenRecord(row[0], row[1], int(row[2])) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        with self._transaction(write=False) as cur:
            rows = self._run(
                cur, "SELECT name, scope, created_at FROM tokens ORDER BY name"
            ).fetchall()
        return [TokenRecord(r[0], r[1], int(r[2])) for r in rows]

    def revoke_token(self, name: str) -> None:
        with self._transaction(write=True) as cur:
            if not self._run(cur, "DELETE FROM tokens WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"token {name!r} does not exist")


class _SqlBulkWriter:
    # Chunks of interactions this big are held back and loaded at the end in one pass sorted by
    # (user, time): the (group_id, user_idx, ts) index then fills in key order, which costs a
    # fraction of updating it at random pages or of dropping and re-sorting it (issue 14).
    # Within such an import, arrival numbers (seq) follow that order; ties keep file order.
    BIG_CHUNK_ROWS = 200_000
    SORTED_LOAD_ROWS = 10_000_000  # at most this many rows held in memory (~50 bytes each)

    def __init__(self, store: SqlStore, cur: Cursor, group_id: int, dataset: DatasetKind):
        self._store, self._cur, self._group_id, self._dataset = store, cur, group_id, dataset
        self._ids: dict[EntityKind, pl.DataFrame] = {}
        self._held: list[pl.DataFrame] = []
        self._held_rows = 0

    def write(self, chunk: pl.DataFrame) -> int:
        if chunk.is_empty():
            return 0
        if self._dataset != "interactions":
            return self._store._write_entities(
                self._cur, self._group_id, self._dataset, chunk, self._ids
            )
        rows = self._store._interaction_rows(self._cur, self._group_id, chunk, self._ids)
        if chunk.height < self.BIG_CHUNK_ROWS and not self._held:
            return self._store._store_interactions(self._cur, rows)
        self._held.append(rows)
        self._held_rows += rows.height
        return self.finish() if self._held_rows >= self.SORTED_LOAD_ROWS else 0

    def finish(self) -> int:
        """Load the rows held back, sorted; returns how many were stored."""
        if not self._held:
            return 0
        rows = pl.concat(self._held, how="diagonal_relaxed")
        self._held, self._held_rows = [], 0
        if "event_id" in rows.columns:  # the first copy in file order wins, before sorting
            rows = rows.filter(
                pl.col("event_id").is_null() | pl.col("event_id").is_first_distinct()
            )
        # A stable numpy sort of the two keys, then one gather: twice as fast as polars'
        # multi-column sort with maintain_order.
        order = np.lexsort((rows["ts"].to_numpy(), rows["user_idx"].fill_null(-1).to_numpy()))
        return self._store._store_interactions(self._cur, rows[order])


def _json_object(fields: Sequence[str]) -> pl.Expr:
    """A JSON object of ``fields`` per row (nulls left out of nothing: they stay null)."""
    return pl.struct(list(fields)).struct.json_encode()


def _expand_fields(chunk: pl.DataFrame, schema: DatasetSchema) -> pl.DataFrame:
    """Turn the stored JSON ``__fields`` back into one column per schema field."""
    extra = schema.extra_fields
    if not extra:
        return chunk.drop("__fields")
    dtypes = {
        name: pl.Float64 if t == "numerical" else pl.Int64 if t == "timestamp" else pl.String
        for name, t in extra.items()
    }
    decoded = chunk["__fields"].str.json_decode(pl.Struct(dtypes)).struct.unnest()
    return pl.concat([chunk.drop("__fields"), decoded], how="horizontal")


def _job(row: Sequence[Any]) -> JobRecord:
    return JobRecord(
        id=row[0], group=row[1], kind=row[2], status=row[3], params=json.loads(row[4]),
        progress=float(row[5]), result=json.loads(row[6]) if row[6] else None, error=row[7],
        created_at=float(row[8]), updated_at=float(row[9]),
    )  # fmt: skip


def _event(user_id: str, r: Sequence[Any]) -> Event:
    """An event from ``item, ts, event_type, event_value, event_id, session_id,
    recommendation_id, impression, context`` columns."""
    return Event(
        item_id=r[0], timestamp=int(r[1]), user_id=user_id, event_type=r[2], event_value=r[3],
        event_id=r[4], session_id=r[5], recommendation_id=r[6], impression=r[7],
        context=json.loads(r[8]) if r[8] else None,
    )  # fmt: skip
