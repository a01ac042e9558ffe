"""SQL for named filters and the user profile they read, mixed into
:class:`~tastebud.store.sql.SqlStore`."""

from __future__ import annotations

import json
import time

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store.base import FilterRecord, Record
from tastebud.store.mixin import SqlMixin


class FiltersSql(SqlMixin):
    """Named filters, and the user profile (``CurrentUser``) they read."""

    def put_filter(self, record: FilterRecord, *, replace: bool = False) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            exists = self._run(
                cur,
                "SELECT 1 FROM filters WHERE group_id = ? AND name = ?",
                (group_id, record.name),
            ).fetchone()
            if exists and not replace:
                raise AlreadyExists(
                    f"filter {record.name!r} already exists in group {record.group!r}"
                )
            self._run(
                cur,
                "INSERT INTO filters (group_id, name, expression, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (group_id, name) DO UPDATE SET expression = excluded.expression, "
                "created_at = excluded.created_at",
                (group_id, record.name, record.expression, record.created_at or int(time.time())),
            )

    def get_filter(self, group: str, name: str) -> FilterRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT name, expression, created_at FROM filters WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"filter {name!r} does not exist in group {group!r}")
        return FilterRecord(group=group, name=row[0], expression=row[1], created_at=int(row[2]))

    def list_filters(self, group: str) -> list[FilterRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT name, expression, created_at FROM filters WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [FilterRecord(group, r[0], r[1], int(r[2])) for r in rows]

    def delete_filter(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM filters WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
        if not deleted:
            raise NotFound(f"filter {name!r} does not exist in group {group!r}")

    def get_user(self, group: str, user_id: str) -> Record | None:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT u.fields FROM id_map m JOIN users u ON u.group_id = m.group_id "
                "AND u.user_idx = m.idx WHERE m.group_id = ? AND m.kind = 'user' "
                "AND m.external_id = ?",
                (group_id, user_id),
            ).fetchone()
        if row is None:
            return None
        fields = {k: v for k, v in json.loads(row[0]).items() if v is not None}
        return Record(id=user_id, fields=fields)

    def get_item(self, group: str, item_id: str) -> Record | None:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT i.fields, i.creation_ts FROM id_map m JOIN items i "
                "ON i.group_id = m.group_id AND i.item_idx = m.idx WHERE m.group_id = ? "
                "AND m.kind = 'item' AND m.external_id = ?",
                (group_id, item_id),
            ).fetchone()
        if row is None:
            return None
        fields = {k: v for k, v in json.loads(row[0]).items() if v is not None}
        return Record(id=item_id, fields=fields, creation_timestamp=row[1])
