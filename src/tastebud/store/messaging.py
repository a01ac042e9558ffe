"""SQL for messages, their deliveries and engagement events, mixed into
:class:`~tastebud.store.sql.SqlStore` (issue 16).

A delivery row per (message, user) is claimed before anything is sent: the claim is an
``INSERT … ON CONFLICT DO NOTHING`` or a conditional ``UPDATE`` of a retryable row, so two
senders (or a re-run) never both get the same user. Engagement events are unique per
``dedup_key``: a replayed batch inserts nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tastebud.errors import AlreadyExists, NotFound
from tastebud.store.base import DeliveryRecord, EngagementCount, EngagementRecord, MessageRecord
from tastebud.store.mixin import SqlMixin

_DELIVERY_COLUMNS = "message, user_id, message_id, treatment, status, attempts, detail, updated_at"
_ENGAGEMENT_COLUMNS = (
    "group_id, dedup_key, message_key, campaign, activity, treatment, kind, category, "
    "event_type, url, user_id, machine, ts"
)


class MessagingSql(SqlMixin):
    """Messages, delivery claims and engagement events."""

    def put_message(self, record: MessageRecord) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, record.group)
            inserted = self._run(
                cur,
                "INSERT INTO messages (group_id, name, body, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (group_id, name) DO NOTHING",
                (group_id, record.name, json.dumps(dict(record.body)),
                 record.created_at or time.time()),
            ).rowcount  # fmt: skip
        if not inserted:
            raise AlreadyExists(f"message {record.name!r} already exists in group {record.group!r}")

    def get_message(self, group: str, name: str) -> MessageRecord:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT name, body, created_at FROM messages WHERE group_id = ? AND name = ?",
                (group_id, name),
            ).fetchone()
        if row is None:
            raise NotFound(f"message {name!r} does not exist in group {group!r}")
        return _message(group, row)

    def list_messages(self, group: str) -> list[MessageRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT name, body, created_at FROM messages WHERE group_id = ? ORDER BY name",
                (group_id,),
            ).fetchall()
        return [_message(group, row) for row in rows]

    def delete_message(self, group: str, name: str) -> None:
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            deleted = self._run(
                cur, "DELETE FROM messages WHERE group_id = ? AND name = ?", (group_id, name)
            ).rowcount
            self._run(cur, "DELETE FROM message_deliveries WHERE group_id = ? AND message = ?",
                      (group_id, name))  # fmt: skip
        if not deleted:
            raise NotFound(f"message {name!r} does not exist in group {group!r}")

    # deliveries -------------------------------------------------------------------------------
    def claim_delivery(
        self, group: str, message: str, user_id: str, *, message_id: str, treatment: str,
        stale_before: float,
    ) -> bool:  # fmt: skip
        now = time.time()
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            inserted = self._run(
                cur,
                f"INSERT INTO message_deliveries (group_id, {_DELIVERY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, 'sending', 0, NULL, ?) "
                "ON CONFLICT (group_id, message, user_id) DO NOTHING",
                (group_id, message, user_id, message_id, treatment, now),
            ).rowcount
            if inserted:
                return True
            return bool(
                self._run(
                    cur,
                    "UPDATE message_deliveries SET status = 'sending', updated_at = ? "
                    "WHERE group_id = ? AND message = ? AND user_id = ? AND (status = 'pending' "
                    "OR (status = 'sending' AND updated_at < ?))",
                    (now, group_id, message, user_id, stale_before),
                ).rowcount
            )

    def finish_delivery(
        self, group: str, message: str, user_id: str, *, status: str, attempts: int,
        detail: Mapping[str, Any] | None,
    ) -> None:  # fmt: skip
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            self._run(
                cur,
                "UPDATE message_deliveries SET status = ?, attempts = attempts + ?, detail = ?, "
                "updated_at = ? WHERE group_id = ? AND message = ? AND user_id = ?",
                (status, attempts, None if detail is None else json.dumps(dict(detail)),
                 time.time(), group_id, message, user_id),
            )  # fmt: skip

    def list_deliveries(self, group: str, message: str) -> list[DeliveryRecord]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                f"SELECT {_DELIVERY_COLUMNS} FROM message_deliveries "
                "WHERE group_id = ? AND message = ? ORDER BY user_id",
                (group_id, message),
            ).fetchall()
        return [
            DeliveryRecord(
                message=r[0], user_id=r[1], message_id=r[2], treatment=r[3], status=r[4],
                attempts=int(r[5]), detail=None if r[6] is None else json.loads(r[6]),
                updated_at=float(r[7]),
            )
            for r in rows
        ]  # fmt: skip

    # engagement -------------------------------------------------------------------------------
    def put_engagement(self, group: str, records: Sequence[EngagementRecord]) -> int:
        if not records:
            return 0
        with self._transaction(write=True) as cur:
            group_id = self._group_id(cur, group)
            rows = [
                (group_id, r.dedup_key, r.message_key, r.campaign, r.activity, r.treatment,
                 r.kind, r.category, r.event_type, r.url, r.user_id, int(r.machine), r.timestamp)
                for r in records
            ]  # fmt: skip
            cur.executemany(
                self._sql(
                    f"INSERT INTO engagement_events ({_ENGAGEMENT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (group_id, dedup_key) DO NOTHING"
                ),
                rows,
            )
            # Both drivers sum the rows inserted over `executemany` (sqlite3, psycopg 3).
            return int(cur.rowcount)

    def engagement_counts(self, group: str, campaign: str) -> list[EngagementCount]:
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            rows = self._run(
                cur,
                "SELECT activity, treatment, category, message_key, COUNT(*), MIN(machine) "
                "FROM engagement_events WHERE group_id = ? AND campaign = ? "
                "GROUP BY activity, treatment, category, message_key",
                (group_id, campaign),
            ).fetchall()
        return [
            EngagementCount(activity=r[0], treatment=r[1], category=r[2], message_key=r[3],
                            total=int(r[4]), human=int(r[5]) == 0)
            for r in rows
        ]  # fmt: skip

    def opted_out(self, group: str, user_id: str, event_types: Sequence[str]) -> bool:
        marks = ", ".join("?" * len(event_types))
        with self._transaction(write=False) as cur:
            group_id = self._group_id(cur, group)
            row = self._run(
                cur,
                "SELECT 1 FROM engagement_events WHERE group_id = ? AND user_id = ? "
                f"AND event_type IN ({marks}) LIMIT 1",
                (group_id, user_id, *event_types),
            ).fetchone()
        return row is not None

    def _erase_messaging(self, cur: Any, group_id: int, user_id: str) -> None:
        """An erased user's deliveries and engagement go with the rest of the user's data."""
        for table in ("message_deliveries", "engagement_events"):
            self._run(cur, f"DELETE FROM {table} WHERE group_id = ? AND user_id = ?",
                      (group_id, user_id))  # fmt: skip


def _message(group: str, row: Sequence[Any]) -> MessageRecord:
    return MessageRecord(group=group, name=row[0], body=json.loads(row[1]),
                         created_at=float(row[2]))  # fmt: skip
