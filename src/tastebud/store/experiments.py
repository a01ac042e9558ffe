"""SQL for experiments, exposures, logged answers and metric attributions, mixed into
:class:`~tastebud.store.sql.SqlStore` (issue 15).

Exposures and answers arrive in batches from a background writer (one transaction each);
reports read them back as columns, with the interactions they are joined to, and do the
attribution in Polars.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from tastebud.errors import AlreadyExists, InvalidInput, NotFound
from tastebud.store.base import (
    AnswerRecord,
    ExperimentRecord,
    ExposureRecord,
    MetricAttributionRecord,
)
from tastebud.store.mixin import SqlMixin

_EXPERIMENT_COLUMNS = "name, body, state, started_at, stopped_at, created_at, updated_at"
_EXPOSURE_SCHEMA: Mapping[str, Any] = {
    "experiment": pl.String, "arm": pl.String, "user_id": pl.String,
    "recommendation_id": pl.String, "timestamp": pl.Float64,
}  # fmt: skip
_ANSWER_SCHEMA: Mapping[str, Any] = {
    "recommendation_id": pl.String, "campaign": pl.String, "source": pl.String,
    "user_id": pl.String, "timestamp": pl.Float64, "promotion": pl.String,
    "promoted_items": pl.String,
}  # fmt: skip


class ExperimentsSql(SqlMixin):
    """Experiments and what their reports read."""

    def _read(
        self, cur: Any, query: str, params: Sequence[Any], schema: Mapping[str, Any]
    ) -> pl.DataFrame:
        raise NotImplementedError

    # experiments ----------------------------------------------------------------------------
    def put_experiment(self, record: ExperimentRecord) -> None:
        now = time.time()
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            inserted = self._run(
                cur,
                f"INSERT INTO experiments (group_id, {_EXPERIMENT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, name) DO NOTHING",
                (group_id, record.name, json.dumps(dict(record.body)), record.state,
                 record.started_at, record.stopped_at, record.created_at or now, now),
            ).rowcount  # fmt: skip
        if not inserted:
            raise AlreadyExists(
                f"experiment {record.name!r} already exists in group {record.group!r}"
            )

    def get_experiment(self, group: str, name: str) -> ExperimentRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"experiment {name!r} does not exist in group {group!r}")
        return _experiment(group, row)

    def list_experiments(self, group: str) -> list[ExperimentRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                f"SELECT {_EXPERIMENT_COLUMNS} FROM experiments WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [_experiment(group, row) for row in rows]

    def delete_experiment(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM experiments WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
            self._run(cur, "DELETE FROM exposures WHERE group_id = ? AND experiment = ?",
                      (group_id, name))  # fmt: skip
        if not deleted:
            raise NotFound(f"experiment {name!r} does not exist in group {group!r}")

    def transition_experiment(
        self, group: str, name: str, *, to: str, allowed_from: Sequence[str], at: float
    ) -> ExperimentRecord:
        stamp = {"running": "started_at", "stopped": "stopped_at"}.get(to)
        setting = f", {stamp} = ?" if stamp else ""
        marks = ", ".join("?" * len(allowed_from))
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            changed = self._run(
                cur,
                f"UPDATE experiments SET state = ?, updated_at = ?{setting} "
                f"WHERE group_id = ? AND name = ? AND state IN ({marks})",
                (to, at, *([at] if stamp else []), group_id, name, *allowed_from),
            ).rowcount
        record = self.get_experiment(group, name)
        if not changed:
            raise InvalidInput(
                f"experiment {name!r} is {record.state}; it can become {to} only from "
                f"{' or '.join(allowed_from)}"
            )
        return record

    # exposures and answers --------------------------------------------------------------------
    def put_exposures(self, group: str, records: Sequence[ExposureRecord]) -> int:
        if not records:
            return 0
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            cur.executemany(
                self._sql(
                    "INSERT INTO exposures (group_id, experiment, arm, user_id, "
                    "recommendation_id, campaign, source, ts, items) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                [(group_id, r.experiment, r.arm, r.user_id, r.recommendation_id, r.campaign,
                  r.source, r.timestamp, r.items) for r in records],
            )  # fmt: skip
        return len(records)

    def put_answers(self, group: str, records: Sequence[AnswerRecord]) -> int:
        if not records:
            return 0
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            cur.executemany(
                self._sql(
                    "INSERT INTO answers (group_id, recommendation_id, campaign, source, "
                    "user_id, ts, items, promotion, promoted_items) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (group_id, recommendation_id) DO NOTHING"
                ),
                [(group_id, r.recommendation_id, r.campaign, r.source, r.user_id, r.timestamp,
                  r.items, r.promotion, r.promoted_items) for r in records],
            )  # fmt: skip
            return max(int(cur.rowcount), 0)

    def read_exposures(self, group: str, experiment: str | None = None) -> pl.DataFrame:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            which = "" if experiment is None else " AND experiment = ?"
            return self._read(
                cur,
                "SELECT experiment, arm, user_id, recommendation_id, ts "
                f"FROM exposures WHERE group_id = ?{which}",
                (group_id,) if experiment is None else (group_id, experiment),
                _EXPOSURE_SCHEMA,
            )

    def read_answers(self, group: str) -> pl.DataFrame:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                "SELECT recommendation_id, campaign, source, user_id, ts, promotion, "
                "promoted_items FROM answers WHERE group_id = ?",
                (group_id,),
                _ANSWER_SCHEMA,
            )

    def read_outcomes(
        self, group: str, *, event_type: str | None, since: float, until: float,
        with_items: bool = False,
    ) -> pl.DataFrame:  # fmt: skip
        schema: dict[str, Any] = {
            "user_id": pl.String, "timestamp": pl.Int64, "event_value": pl.Float64,
            "recommendation_id": pl.String,
        }  # fmt: skip
        item_column, item_join = "", ""
        if with_items:
            schema["item_id"] = pl.String
            item_column = ", i.external_id"
            item_join = (" JOIN id_map i ON i.group_id = x.group_id AND i.kind = 'item' "
                         "AND i.idx = x.item_idx")  # fmt: skip
        of_type = "" if event_type is None else " AND x.event_type = ?"
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            return self._read(
                cur,
                "SELECT u.external_id, x.ts, x.event_value, x.recommendation_id"
                f"{item_column} FROM interactions x JOIN id_map u ON u.group_id = x.group_id "
                f"AND u.kind = 'user' AND u.idx = x.user_idx{item_join} "
                f"WHERE x.group_id = ? AND x.ts >= ? AND x.ts <= ?{of_type}",
                (group_id, int(since), int(until), *([] if event_type is None else [event_type])),
                schema,
            )

    # metric attributions ----------------------------------------------------------------------
    def put_metric_attribution(self, record: MetricAttributionRecord) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            inserted = self._run(
                cur,
                "INSERT INTO metric_attributions (group_id, name, event_type, expression, "
                "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, name) DO NOTHING",
                (group_id, record.name, record.event_type, record.expression,
                 record.created_at or time.time()),
            ).rowcount  # fmt: skip
        if not inserted:
            raise AlreadyExists(
                f"metric attribution {record.name!r} already exists in group {record.group!r}"
            )

    def get_metric_attribution(self, group: str, name: str) -> MetricAttributionRecord:
        found = [m for m in self.list_metric_attributions(group) if m.name == name]
        if not found:
            raise NotFound(f"metric attribution {name!r} does not exist in group {group!r}")
        return found[0]

    def list_metric_attributions(self, group: str) -> list[MetricAttributionRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT name, event_type, expression, created_at FROM metric_attributions "
                "WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [MetricAttributionRecord(group=group, name=r[0], event_type=r[1],
                                        expression=r[2], created_at=float(r[3]))
                for r in rows]  # fmt: skip

    def delete_metric_attribution(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM metric_attributions WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).rowcount  # fmt: skip
        if not deleted:
            raise NotFound(f"metric attribution {name!r} does not exist in group {group!r}")

    def _erase_experiments(self, cur: Any, group_id: int, user_id: str) -> None:
        """An erased user's exposures and logged answers go with the rest of the user's data."""
        for table in ("exposures", "answers"):
            self._run(cur, f"DELETE FROM {table} WHERE group_id = ? AND user_id = ?",
                      (group_id, user_id))  # fmt: skip


def _experiment(group: str, row: Sequence[Any]) -> ExperimentRecord:
    return ExperimentRecord(
        group=group, name=row[0], body=json.loads(row[1]), state=row[2],
        started_at=None if row[3] is None else float(row[3]),
        stopped_at=None if row[4] is None else float(row[4]),
        created_at=float(row[5]), updated_at=float(row[6]),
    )  # fmt: skip
