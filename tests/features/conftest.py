"""Helpers of the feature store tests: a declaration, events through the event tracker."""

from __future__ import annotations

from typing import Any

from tastebud.engine import Engine
from tastebud.ingest import ItemIn
from tastebud.store import Event, WriteResult

T = 1_800_000_000  # "now" of every test: online values are computed as of a given time
LIVE = """
features:
  - {name: views_5m, kind: counter, aggregation: count, window: 5m, event_types: [watch]}
  - {name: viewers_1h, kind: counter, aggregation: distinct_users, window: 1h}
  - {name: minutes_1h, kind: counter, aggregation: sum, window: 1h}
  - {name: pair_7d, kind: counter, entity: user_item, aggregation: count, window: 7d}
  - {name: user_24h, kind: counter, entity: user, aggregation: count, window: 24h}
  - {name: host_seen, kind: counter, entity: user_item_field, field: HOST, aggregation: last_seen}
  - {name: long_sessions, kind: sessions, min_minutes: 10, window: 1h, gap_minutes: 5}
  - {name: completion, kind: rate, numerator: [complete], denominator: [start],
     prior_strength: 2, window: 1d}
"""


def event(user: str | None, item: str, ts: int, kind: str = "watch", **extra: Any) -> Event:
    return Event(user_id=user, item_id=item, timestamp=ts, event_type=kind, **extra)


def put(engine: Engine, group: str, *events: Event) -> WriteResult:
    """Through the event tracker, as HTTP and NATS store them."""
    return engine.tracker.put(group, list(events))


def shows(engine: Engine, group: str, hosts: dict[str, str], created: int = T - 7200) -> None:
    engine.put_schema(group, "items", {"HOST": "categorical", "CATEGORY": "categorical"})
    engine.put_items(group, [
        ItemIn.model_validate({"itemId": show, "properties": {
            "HOST": host, "CATEGORY": "music", "CREATION_TIMESTAMP": created}})
        for show, host in hosts.items()
    ])  # fmt: skip


def online(engine: Engine, group: str, names: list[str], user: str | None, items: list[str],
           at: int, **kw: Any) -> list[list[float]]:  # fmt: skip
    engine.features.sync(group, now=at)
    values = engine.features.online(group, names, user_id=user, item_ids=items, now=at, **kw)
    return [[round(float(v), 4) for v in row] for row in values.tolist()]
