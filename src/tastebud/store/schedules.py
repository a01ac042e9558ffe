"""SQL for retraining schedules, mixed into :class:`~tastebud.store.sql.SqlStore`.

Several processes (API workers, ``tastebud worker``s) run the scheduler over one store. A run
is claimed by one conditional ``UPDATE``: it names the finished-run count the worker saw and
requires no live lease. On PostgreSQL the row lock makes a concurrent claim wait and then
re-check its ``WHERE`` against the committed row (READ COMMITTED), where it no longer matches;
on SQLite the write transaction (``BEGIN IMMEDIATE``) serializes claims outright. Either way
exactly one worker gets each run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store.base import ScheduleRecord
from tastebud.store.mixin import SqlMixin

_COLUMNS = (
    "name, solution, spec, paused, next_run_at, seq_watermark, runs, lease_owner, lease_until, "
    "job_id, last_run, created_at, updated_at"
)
# A schedule is due when nobody holds a live lease and (time triggers) its time has come;
# event triggers (no next_run_at) are due once enough interactions arrived, counted by the caller.
_DUE = (
    "paused = 0 AND (lease_until IS NULL OR lease_until <= ?) "
    "AND (next_run_at IS NULL OR next_run_at <= ?)"
)


class SchedulesSql(SqlMixin):
    """Schedules and the lease that gives each of their runs to one worker."""

    def put_schedule(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        now = time.time()
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            exists = self._run(
                cur,
                "SELECT 1 FROM schedules WHERE group_id = ? AND name = ?",
                (group_id, record.name),
            ).fetchone()
            if exists and not replace:
                raise AlreadyExists(
                    f"schedule {record.name!r} already exists in group {record.group!r}"
                )
            self._run(cur, "DELETE FROM schedules WHERE group_id = ? AND name = ?",
                      (group_id, record.name))  # fmt: skip
            self._run(
                cur,
                f"INSERT INTO schedules (group_id, {_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    group_id, record.name, record.solution, _json(record.spec),
                    int(record.paused), record.next_run_at, record.seq_watermark, record.runs,
                    record.lease_owner, record.lease_until, record.job_id,
                    _json(record.last_run), record.created_at or now, now,
                ),
            )  # fmt: skip

    def get_schedule(self, group: str, name: str) -> ScheduleRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                f"SELECT {_COLUMNS} FROM schedules WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"schedule {name!r} does not exist in group {group!r}")
        return _schedule(group, row)

    def list_schedules(self, group: str) -> list[ScheduleRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                f"SELECT {_COLUMNS} FROM schedules WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [_schedule(group, row) for row in rows]

    def delete_schedule(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM schedules WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
        if not deleted:
            raise NotFound(f"schedule {name!r} does not exist in group {group!r}")

    def set_schedule_paused(
        self, group: str, name: str, *, paused: bool, next_run_at: float | None
    ) -> ScheduleRecord:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            changed = self._run(
                cur,
                "UPDATE schedules SET paused = ?, next_run_at = ?, updated_at = ? "
                "WHERE group_id = ? AND name = ?",
                (int(paused), next_run_at, time.time(), group_id, name),
            ).rowcount
        if not changed:
            raise NotFound(f"schedule {name!r} does not exist in group {group!r}")
        return self.get_schedule(group, name)

    # the claim protocol -----------------------------------------------------------------------
    def due_schedules(
        self, now: float, *, groups: Sequence[str] | None = None
    ) -> list[ScheduleRecord]:
        columns = ", ".join(f"s.{c.strip()}" for c in _COLUMNS.split(","))
        query = (
            f"SELECT g.name, {columns} FROM schedules s JOIN dataset_groups g ON g.id = s.group_id "
            f"WHERE {_DUE}"
        )
        with self._transaction(write=False) as cur:
            rows = self._run(cur, query + " ORDER BY s.next_run_at, g.name, s.name",
                             (now, now)).fetchall()  # fmt: skip
        wanted = None if groups is None else set(groups)
        return [_schedule(row[0], row[1:]) for row in rows if wanted is None or row[0] in wanted]

    def claim_schedule(
        self, group: str, name: str, *, runs: int, owner: str, now: float, lease_until: float
    ) -> ScheduleRecord | None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                f"SELECT {_COLUMNS} FROM schedules WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
            claimed = self._run(
                cur,
                "UPDATE schedules SET lease_owner = ?, lease_until = ?, updated_at = ? "
                f"WHERE group_id = ? AND name = ? AND runs = ? AND {_DUE}",
                (owner, lease_until, time.time(), group_id, name, runs, now, now),
            ).rowcount
        # The row read above is what the claim replaced: a claim that succeeded re-checked
        # the lease and run count, so nothing it shows changed in between.
        return _schedule(group, row) if claimed and row is not None else None

    def renew_schedule_lease(
        self, group: str, name: str, *, owner: str, lease_until: float, job_id: str | None = None
    ) -> bool:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            return bool(
                self._run(
                    cur,
                    "UPDATE schedules SET lease_until = ?, job_id = COALESCE(?, job_id) "
                    "WHERE group_id = ? AND name = ? AND lease_owner = ?",
                    (lease_until, job_id, group_id, name, owner),
                ).rowcount
            )

    def finish_schedule_run(
        self, group: str, name: str, *, owner: str, next_run_at: float | None,
        seq_watermark: int, last_run: Mapping[str, Any],
    ) -> bool:  # fmt: skip
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            return bool(
                self._run(
                    cur,
                    "UPDATE schedules SET runs = runs + 1, lease_owner = NULL, "
                    "lease_until = NULL, next_run_at = ?, seq_watermark = ?, last_run = ?, "
                    "updated_at = ? WHERE group_id = ? AND name = ? AND lease_owner = ?",
                    (next_run_at, seq_watermark, _json(last_run), time.time(), group_id, name,
                     owner),
                ).rowcount
            )  # fmt: skip

    def release_schedule(
        self, group: str, name: str, *, owner: str, last_run: Mapping[str, Any]
    ) -> bool:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            return bool(
                self._run(
                    cur,
                    "UPDATE schedules SET lease_owner = NULL, lease_until = NULL, last_run = ?, "
                    "updated_at = ? WHERE group_id = ? AND name = ? AND lease_owner = ?",
                    (_json(last_run), time.time(), group_id, name, owner),
                ).rowcount
            )

    def interactions_after_count(self, group: str, seq: int, *, cap: int) -> int:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                # `+group_id`: a range of the primary key (arrival order), not the user index.
                "SELECT COUNT(*) FROM (SELECT 1 FROM interactions WHERE seq > ? "
                "AND +group_id = ? LIMIT ?) s",
                (seq, group_id, cap),
            ).fetchone()
        return int(row[0])


def _json(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(dict(value), sort_keys=True)


def _schedule(group: str, row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        group=group, name=row[0], solution=row[1], spec=json.loads(row[2]), paused=bool(row[3]),
        next_run_at=None if row[4] is None else float(row[4]), seq_watermark=int(row[5]),
        runs=int(row[6]), lease_owner=row[7],
        lease_until=None if row[8] is None else float(row[8]), job_id=row[9],
        last_run=None if row[10] is None else json.loads(row[10]),
        created_at=float(row[11]), updated_at=float(row[12]),
    )  # fmt: skip
