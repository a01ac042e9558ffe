"""SQL for campaigns, mixed into :class:`~tastebud.store.sql.SqlStore`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store.base import CampaignRecord
from tastebud.store.mixin import SqlMixin

_COLUMNS = "name, solution, deployed, previous, config, created_at, updated_at"


class CampaignsSql(SqlMixin):
    """Campaigns: which solution version answers the real-time endpoint, and how."""

    def put_campaign(self, record: CampaignRecord, *, replace: bool = False) -> None:
        now = time.time()
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            exists = self._run(
                cur,
                "SELECT 1 FROM campaigns WHERE group_id = ? AND name = ?",
                (group_id, record.name),
            ).fetchone()
            if exists and not replace:
                raise AlreadyExists(
                    f"campaign {record.name!r} already exists in group {record.group!r}"
                )
            self._run(
                cur,
                f"INSERT INTO campaigns (group_id, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (group_id, name) DO UPDATE SET solution = excluded.solution, "
                "deployed = excluded.deployed, previous = excluded.previous, "
                "config = excluded.config, updated_at = excluded.updated_at",
                (
                    group_id, record.name, record.solution, record.deployed, record.previous,
                    json.dumps(dict(record.config), sort_keys=True), record.created_at or now,
                    now,
                ),
            )  # fmt: skip

    def get_campaign(self, group: str, name: str) -> CampaignRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                f"SELECT {_COLUMNS} FROM campaigns WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"campaign {name!r} does not exist in group {group!r}")
        return _campaign(group, row)

    def list_campaigns(self, group: str) -> list[CampaignRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                f"SELECT {_COLUMNS} FROM campaigns WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [_campaign(group, row) for row in rows]

    def delete_campaign(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM campaigns WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
        if not deleted:
            raise NotFound(f"campaign {name!r} does not exist in group {group!r}")


def _campaign(group: str, row: Sequence[Any]) -> CampaignRecord:
    return CampaignRecord(
        group=group, name=row[0], solution=row[1], deployed=row[2], previous=row[3],
        config=json.loads(row[4]), created_at=float(row[5]), updated_at=float(row[6]),
    )  # fmt: skip
