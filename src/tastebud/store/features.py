"""SQL for the feature store (issue 15), mixed into :class:`~tastebud.store.sql.SqlStore`.

Declarations are versioned rows (a new version per apply, never updated). Batch feature values
are replaced per feature in one transaction with the time they were computed. Stream features
keep no rows of their own: they are derived from ``interactions``, whose event ids make every
event count once (see tastebud.features.online).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from tastebud.errors import AlreadyExists
from tastebud.store.mixin import SqlMixin

FEATURE_EVENT_SCHEMA: dict[str, Any] = {
    "seq": pl.Int64, "user": pl.String, "item": pl.String, "ts": pl.Int64,
    "event_type": pl.String, "event_value": pl.Float64, "session": pl.String,
    "context": pl.String,
}  # fmt: skip


class FeaturesSql(SqlMixin):
    """Feature declarations, batch values and the batch run claim."""

    def _insert_frame(
        self, cur: Any, table: str, frame: pl.DataFrame, *, conflict: str = ""
    ) -> int:
        raise NotImplementedError

    def _read(
        self, cur: Any, query: str, params: Sequence[Any],
        schema: Mapping[str, pl.DataType | type[pl.DataType]],
    ) -> pl.DataFrame:  # fmt: skip
        raise NotImplementedError

    def put_feature_set(self, group: str, body: Mapping[str, Any]) -> int:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(cur, "SELECT MAX(version) FROM feature_sets WHERE group_id = ?",
                            (group_id,)).fetchone()  # fmt: skip
            version = int(row[0] or 0) + 1
            inserted = self._run(
                cur,
                "INSERT INTO feature_sets (group_id, version, body, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, version) DO NOTHING",
                (group_id, version, json.dumps(dict(body)), time.time()),
            ).rowcount
        if not inserted:  # another apply took this number first
            raise AlreadyExists(f"features of group {group!r}: version {version} was just applied")
        return version

    def get_feature_set(
        self, group: str, version: int | None = None
    ) -> tuple[int, dict[str, Any], float] | None:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            if version is None:
                query = ("SELECT version, body, created_at FROM feature_sets WHERE group_id = ? "
                         "ORDER BY version DESC LIMIT 1")  # fmt: skip
                row = self._run(cur, query, (group_id,)).fetchone()
            else:
                query = ("SELECT version, body, created_at FROM feature_sets WHERE group_id = ? "
                         "AND version = ?")  # fmt: skip
                row = self._run(cur, query, (group_id, version)).fetchone()
        if row is None:
            return None
        return int(row[0]), json.loads(row[1]), float(row[2])

    def feature_set_version(self, group: str) -> int:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(cur, "SELECT MAX(version) FROM feature_sets WHERE group_id = ?",
                            (group_id,)).fetchone()  # fmt: skip
        return int(row[0] or 0)

    def feature_events(
        self, group: str, *, after_seq: int = 0, since_ts: int | None = None,
        limit: int | None = None,
    ) -> pl.DataFrame:  # fmt: skip
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                # `+group_id`: walk the arrival order from `after_seq` (see interactions_after).
                "SELECT x.seq, u.external_id, i.external_id, x.ts, x.event_type, x.event_value, "
                "x.session_id, x.context FROM interactions x LEFT JOIN id_map u "
                "ON u.group_id = x.group_id AND u.kind = 'user' AND u.idx = x.user_idx "
                "JOIN id_map i ON i.group_id = x.group_id AND i.kind = 'item' "
                "AND i.idx = x.item_idx WHERE x.seq > ? AND +x.group_id = ? AND x.ts >= ? "
                "ORDER BY x.seq LIMIT ?",
                (after_seq, group_id, -(2**62) if since_ts is None else since_ts,
                 2**62 if limit is None else limit),
                FEATURE_EVENT_SCHEMA,
            )  # fmt: skip

    def put_feature_values(
        self, group: str, feature: str, values: pl.DataFrame, *, computed_at: float
    ) -> int:
        """Replace a batch feature's values (``entity``, ``value``) in one transaction; the
        entity ``""`` holds the value of an entity that has none."""
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._run(cur, "DELETE FROM feature_values WHERE group_id = ? AND feature = ?",
                      (group_id, feature))  # fmt: skip
            rows = values.select(
                pl.lit(group_id).alias("group_id"), pl.lit(feature).alias("feature"),
                pl.col("entity"), pl.col("value").fill_nan(None),
                pl.lit(computed_at).alias("computed_at"),
            )  # fmt: skip
            stored = self._insert_frame(cur, "feature_values", rows) if rows.height else 0
            # An empty result still records its computation time.
            self._run(
                cur,
                "INSERT INTO feature_computations (group_id, feature, computed_at, entities) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (group_id, feature) DO UPDATE SET "
                "computed_at = excluded.computed_at, entities = excluded.entities",
                (group_id, feature, computed_at, values.filter(pl.col("entity") != "").height),
            )
        return stored

    def feature_values(self, group: str, features: Sequence[str]) -> pl.DataFrame:
        schema = {"feature": pl.String, "entity": pl.String, "value": pl.Float64}
        if not features:
            return pl.DataFrame(schema=schema)
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            marks = ", ".join("?" * len(features))
            return self._read(
                cur,
                "SELECT feature, entity, value FROM feature_values WHERE group_id = ? "
                f"AND feature IN ({marks})",
                (group_id, *features),
                schema,
            )

    def feature_computations(self, group: str) -> dict[str, tuple[float, int]]:
        """Batch feature -> (computed at, entities) of its latest computation."""
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT feature, computed_at, entities FROM feature_computations "
                "WHERE group_id = ?",
                (group_id,),
            ).fetchall()
        return {str(r[0]): (float(r[1]), int(r[2])) for r in rows}

    def claim_feature_run(self, group: str, *, due_before: float, now: float) -> bool:
        """Take the group's batch run when the last one started before ``due_before``: one
        conditional upsert, so one process of many wins."""
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            claimed = self._run(
                cur,
                "INSERT INTO feature_runs (group_id, last_run_at) VALUES (?, ?) "
                "ON CONFLICT (group_id) DO UPDATE SET last_run_at = excluded.last_run_at "
                "WHERE feature_runs.last_run_at < ?",
                (group_id, now, due_before),
            ).rowcount
        return bool(claimed)
