"""Storage: one protocol (:class:`Store`), SQLite and PostgreSQL behind it, picked by URL."""

from __future__ import annotations

from pathlib import Path

from tastebud.errors import InvalidInput
from tastebud.store.base import (
    AnswerRecord,
    BulkWriter,
    CampaignRecord,
    DatasetGroup,
    DeliveryRecord,
    EngagementCount,
    EngagementRecord,
    Event,
    ExperimentRecord,
    ExposureRecord,
    FilterRecord,
    ImportMode,
    JobRecord,
    MessageRecord,
    MetricAttributionRecord,
    Record,
    ScheduleRecord,
    SolutionRecord,
    SolutionVersionRecord,
    Store,
    TokenRecord,
    WriteResult,
)

__all__ = [
    "AnswerRecord",
    "BulkWriter",
    "CampaignRecord",
    "DatasetGroup",
    "DeliveryRecord",
    "EngagementCount",
    "EngagementRecord",
    "Event",
    "ExperimentRecord",
    "ExposureRecord",
    "FilterRecord",
    "ImportMode",
    "JobRecord",
    "MessageRecord",
    "MetricAttributionRecord",
    "Record",
    "ScheduleRecord",
    "SolutionRecord",
    "SolutionVersionRecord",
    "Store",
    "TokenRecord",
    "WriteResult",
    "open_store",
]


def open_store(url: str, *, migrate: bool = True, timeout: float | None = None) -> Store:
    """Open ``sqlite:///path`` or ``postgresql://…`` and bring its schema up to date.

    ``timeout``: PostgreSQL only, seconds to wait for a connection (default: the pool's 30)."""
    store: Store
    if url.startswith("sqlite:///"):
        from tastebud.store.sqlite import SqliteStore

        store = SqliteStore(Path(url.removeprefix("sqlite:///")))
    elif url.startswith(("postgresql://", "postgres://")):
        from tastebud.store.postgres import PostgresStore

        store = PostgresStore(url, timeout=timeout)
    else:
        raise InvalidInput(f"database url {url!r}: expected sqlite:///PATH or postgresql://HOST/DB")
    if migrate:
        store.migrate()
    return store
