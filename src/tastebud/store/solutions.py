"""SQL for solutions and solution versions, mixed into :class:`~tastebud.store.sql.SqlStore`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store.base import SolutionRecord, SolutionVersionRecord
from tastebud.store.mixin import SqlMixin


class SolutionsSql(SqlMixin):
    """Solutions and their versions."""

    def put_solution(self, solution: SolutionRecord, *, replace: bool = False) -> None:
        body = json.dumps(dict(solution.body), sort_keys=True)
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, solution.group)
            exists = self._run(
                cur,
                "SELECT 1 FROM solutions WHERE group_id = ? AND name = ?",
                (group_id, solution.name),
            ).fetchone()
            if exists and not replace:
                raise AlreadyExists(
                    f"solution {solution.name!r} already exists in group {solution.group!r}"
                )
            self._run(
                cur,
                "INSERT INTO solutions (group_id, name, recipe, body, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, name) DO UPDATE SET "
                "recipe = excluded.recipe, body = excluded.body",
                (group_id, solution.name, solution.recipe, body, int(time.time())),
            )

    def get_solution(self, group: str, name: str) -> SolutionRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT name, recipe, body, created_at FROM solutions "
                "WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"solution {name!r} does not exist in group {group!r}")
        return _solution(group, row)

    def list_solutions(self, group: str) -> list[SolutionRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT name, recipe, body, created_at FROM solutions WHERE group_id = ? "
                "ORDER BY name",
                (group_id,),
            ).fetchall()
        return [_solution(group, row) for row in rows]

    def delete_solution(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM solutions WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
            if not deleted:
                raise NotFound(f"solution {name!r} does not exist in group {group!r}")
            self._run(
                cur,
                "DELETE FROM solution_versions WHERE group_id = ? AND solution = ?",
                (group_id, name),
            )

    def save_solution_version(self, version: SolutionVersionRecord) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, version.group)
            self._run(
                cur,
                "INSERT INTO solution_versions (id, group_id, solution, status, body, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE "
                "SET status = excluded.status, body = excluded.body, "
                "updated_at = excluded.updated_at",
                (
                    version.id, group_id, version.solution, version.status,
                    json.dumps(dict(version.body), sort_keys=True), version.created_at,
                    version.updated_at,
                ),
            )  # fmt: skip

    _VERSION_COLUMNS = (
        "v.id, g.name, v.solution, v.status, v.body, v.created_at, v.updated_at "
        "FROM solution_versions v JOIN dataset_groups g ON g.id = v.group_id"
    )

    def get_solution_version(self, version_id: str) -> SolutionVersionRecord:
        with self._transaction(write=False) as cur:
            row = self._run(
                cur, f"SELECT {self._VERSION_COLUMNS} WHERE v.id = ?", (version_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"solution version {version_id!r} does not exist")
        return _version(row)

    def list_solution_versions(
        self, group: str, solution: str | None = None
    ) -> list[SolutionVersionRecord]:
        query = f"SELECT {self._VERSION_COLUMNS} WHERE g.name = ?"
        params: tuple[Any, ...] = (group,)
        if solution is not None:
            query += " AND v.solution = ?"
            params += (solution,)
        with self._transaction(write=False) as cur:
            self._group_id(cur, group)
            rows = self._run(cur, query + " ORDER BY v.created_at DESC", params).fetchall()
        return [_version(row) for row in rows]


def _solution(group: str, row: Sequence[Any]) -> SolutionRecord:
    return SolutionRecord(
        group=group, name=row[0], recipe=row[1], body=json.loads(row[2]), created_at=int(row[3])
    )


def _version(row: Sequence[Any]) -> SolutionVersionRecord:
    return SolutionVersionRecord(
        id=row[0], group=row[1], solution=row[2], status=row[3], body=json.loads(row[4]),
        created_at=float(row[5]), updated_at=float(row[6]),
    )  # fmt: skip
