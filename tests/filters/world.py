"""Build compiled filters over a :class:`~tests.filters.reference.World` (plain data)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from tastebud.filters import (
    Catalog,
    CompiledFilter,
    EventTable,
    FilterRequest,
    Schemas,
    StaticSources,
    parse,
)
from tastebud.filters.syntax import Filter
from tastebud.ids import Vocabulary
from tastebud.schema import RESERVED, DatasetSchema
from tastebud.store import Event
from tests.filters.reference import World, allowed

_DTYPES = {"numerical": pl.Float64, "timestamp": pl.Int64}


def frame(rows: dict[str, dict[str, Any]], types: dict[str, str], id_column: str) -> pl.DataFrame:
    """The store's export shape: the id column, then one typed column per field."""
    schema = {id_column: pl.String} | {n: _DTYPES.get(t, pl.String) for n, t in types.items()}
    data = [{id_column: key, **{n: row.get(n) for n in types}} for key, row in rows.items()]
    return pl.DataFrame(data, schema=schema, orient="row")


def schemas(world: World) -> Schemas:
    return Schemas(
        items=DatasetSchema.build("items", _extra(world.item_types, "items")),
        users=DatasetSchema.build("users", _extra(world.user_types, "users")),
    )


def _extra(types: dict[str, str], dataset: str) -> dict[str, str]:
    return {n: t for n, t in types.items() if n not in RESERVED[dataset]}  # type: ignore[index]


def compiled(
    expression: str | Filter,
    world: World,
    *,
    version_items: Sequence[str],
    version_users: Sequence[str] = (),
) -> CompiledFilter:
    """The filter compiled over catalogs built from ``world`` (the version knows
    ``version_items``/``version_users``; the world's other rows are store-only)."""
    tree = parse(expression) if isinstance(expression, str) else expression
    items = Catalog(frame(world.items, world.item_types, "ITEM_ID"), Vocabulary(version_items),
                    id_column="ITEM_ID")  # fmt: skip
    users = Catalog(frame(world.users, world.user_types, "USER_ID"), Vocabulary(version_users),
                    id_column="USER_ID")  # fmt: skip
    group = pl.DataFrame(
        {
            "event_type": [e.get("EVENT_TYPE") for e in world.group_events],
            "event_value": [e.get("EVENT_VALUE") for e in world.group_events],
            "timestamp": [e.get("TIMESTAMP", 0) for e in world.group_events],
        },
        schema={"event_type": pl.String, "event_value": pl.Float32, "timestamp": pl.Int64},
    )
    events = EventTable.from_frame(group, users.rows([e["USER_ID"] for e in world.group_events]))
    return CompiledFilter(tree, schemas(world), StaticSources(items, users, events), name="f")


def request(world: World) -> FilterRequest:
    events = [
        Event(item_id=e["ITEM_ID"], timestamp=int(e.get("TIMESTAMP", 0)),
              event_type=e.get("EVENT_TYPE"), event_value=e.get("EVENT_VALUE"))
        for e in world.events
    ]  # fmt: skip
    return FilterRequest(
        values=world.values, user=world.user, events=events, item_id=world.current_item
    )


def passed(filter_: CompiledFilter, world: World, candidates: Sequence[str]) -> set[str]:
    """The candidates the compiled filter lets through."""
    selection = filter_.select(request(world))
    ok = selection.permits(list(candidates))
    return {c for c, keep in zip(candidates, ok, strict=True) if keep}


def expected(expression: str | Filter, world: World, candidates: Sequence[str]) -> set[str]:
    """The reference evaluator's answer."""
    tree = parse(expression) if isinstance(expression, str) else expression
    return allowed(tree, world, candidates)


def top(filter_: CompiledFilter, world: World, scores: Sequence[float], k: int) -> list[int]:
    """The ``k`` best version indexes the filter allows (as serving takes them)."""
    from tastebud.serving.recommend import top_k

    candidates, blocked = filter_.select(request(world)).first(len(scores))
    return list(top_k(np.asarray(scores, np.float32), k, exclude=blocked, candidates=candidates))
