"""Storage: one protocol (:class:`Store`), SQLite and PostgreSQL behind it, picked by URL."""

from __future__ import annotations

from pathlib import Path

from tastebud.errors import InvalidInput
from tastebud.settings import StoreSettings
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


def open_store(url: str, *, migrate: bool = True, limits: StoreSettings | None = None) -> Store:
    """Open ``sqlite:///path`` or ``postgresql://…`` and bring its schema up to date;
    ``limits``: PostgreSQL's timeouts (default: ``StoreSettings()``)."""
    store: Store
    if url.startswith("sqlite:///"):
        from tastebud.store.sqlite import SqliteStore

        store = SqliteStore(Path(url.removeprefix("sqlite:///")))
    elif url.startswith(("postgresql://", "postgres://")):
        from tastebud.store.postgres import PostgresStore

        limits = limits if limits is not None else StoreSettings()
        store = PostgresStore(
            url, connect_timeout=limits.connect_timeout_seconds,
            pool_timeout=limits.pool_timeout_seconds,
            statement_timeout=limits.statement_timeout_seconds,
        )  # fmt: skip
    else:
        raise InvalidInput(f"database url {url!r}: expected sqlite:///PATH or postgresql://HOST/DB")
    if migrate:
        store.migrate()
    return store
