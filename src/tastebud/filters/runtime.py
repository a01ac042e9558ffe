"""Filters at serving time: compiled once per (group, version, filter), rebuilt after a TTL.

A version's catalogs (item metadata, user profiles, and for ``UserID`` filters on interactions
the group's interactions) are read from the store on first use and shared by every filter of
that version. Both are rebuilt ``ttl`` seconds after they were built (``serving.refresh_seconds``,
60 s by default), so item or profile changes and filters replaced by other processes take
effect within that delay; creating or deleting a filter through this process's engine takes
effect at once (:meth:`FilterRuntime.forget`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from tastebud.filters.catalog import Catalog, EventTable
from tastebud.filters.compiler import CompiledFilter
from tastebud.filters.parser import parse
from tastebud.filters.validate import Schemas
from tastebud.ids import Vocabulary
from tastebud.schema import DatasetSchema
from tastebud.store.base import Store

_ID_COLUMN = {"items": "ITEM_ID", "users": "USER_ID"}


def group_schemas(store: Store, group: str) -> Schemas:
    """The group's item and user schemas (defaults where none is declared)."""
    return Schemas(
        items=store.get_schema(group, "items") or DatasetSchema.default("items"),
        users=store.get_schema(group, "users") or DatasetSchema.default("users"),
    )


@dataclass
class StaticSources:
    """Catalogs given up front (tests, benchmarks)."""

    items: Catalog
    users: Catalog | None = None
    events: EventTable | None = None

    def catalog(self, kind: Literal["items", "users"]) -> Catalog:
        found = self.items if kind == "items" else self.users
        if found is None:
            raise ValueError(f"no {kind} catalog given")
        return found

    def interactions(self) -> EventTable:
        if self.events is None:
            raise ValueError("no interactions given")
        return self.events


class StoreSources:
    """One version's catalogs, read from the store on first use."""

    def __init__(self, store: Store, group: str, *, items: Vocabulary, users: Vocabulary) -> None:
        self._store = store
        self._group = group
        self._vocabularies = {"items": items, "users": users}
        self._catalogs: dict[str, Catalog] = {}
        self._interactions: EventTable | None = None
        self._lock = threading.Lock()

    def catalog(self, kind: Literal["items", "users"]) -> Catalog:
        with self._lock:
            if kind not in self._catalogs:
                frame = _read(self._store, self._group, kind)
                self._catalogs[kind] = Catalog(
                    frame, self._vocabularies[kind], id_column=_ID_COLUMN[kind]
                )
            return self._catalogs[kind]

    def interactions(self) -> EventTable:
        users = self.catalog("users")
        with self._lock:
            if self._interactions is None:
                frame = self._store.read_interactions(self._group)
                ids = self._store.vocabulary(self._group, "user").ids(
                    range(len(self._store.vocabulary(self._group, "user")))
                )
                by_index = users.rows([i if i is not None else "" for i in ids])
                user_index = frame["user_index"].to_numpy().astype(np.int64)
                self._interactions = EventTable.from_frame(frame, by_index[user_index])
            return self._interactions


class FilterRuntime:
    """Named filters of a store, compiled per (group, version) and cached. Thread-safe."""

    def __init__(self, store: Store, *, ttl: float = 60.0, capacity: int = 64) -> None:
        self._store = store
        self._ttl = ttl
        self._capacity = capacity
        self._sources: dict[tuple[str, str], tuple[float, StoreSources]] = {}
        self._compiled: dict[tuple[str, str, str], tuple[StoreSources, CompiledFilter]] = {}
        self._lock = threading.Lock()

    def get(
        self, group: str, name: str, *, version_id: str, items: Vocabulary, users: Vocabulary
    ) -> CompiledFilter:
        """The filter ``name`` of ``group`` compiled over one version's items and users.

        Raises:
            NotFound: no such filter.
            InvalidInput: it no longer fits the group's schemas.
        """
        sources = self._sources_for(group, version_id, items, users)
        key = (group, name, version_id)
        with self._lock:
            cached = self._compiled.get(key)
        if cached is not None and cached[0] is sources:
            return cached[1]
        record = self._store.get_filter(group, name)
        compiled = CompiledFilter(
            parse(record.expression), group_schemas(self._store, group), sources, name=name
        )
        with self._lock:
            self._compiled[key] = (sources, compiled)
            if len(self._compiled) > self._capacity:
                self._compiled.pop(next(iter(self._compiled)))
        return compiled

    def forget(self, group: str, name: str | None = None) -> None:
        """Drop compiled filters of ``group`` (one by name, or all)."""
        with self._lock:
            for key in [k for k in self._compiled if k[0] == group and name in (None, k[1])]:
                del self._compiled[key]

    def _sources_for(
        self, group: str, version_id: str, items: Vocabulary, users: Vocabulary
    ) -> StoreSources:
        now = time.monotonic()
        with self._lock:
            entry = self._sources.get((group, version_id))
            if entry is None or now - entry[0] > self._ttl:
                entry = (now, StoreSources(self._store, group, items=items, users=users))
                self._sources[(group, version_id)] = entry
                if len(self._sources) > self._capacity:
                    self._sources.pop(next(iter(self._sources)))
            return entry[1]


def _read(store: Store, group: str, kind: Literal["items", "users"]) -> pl.DataFrame:
    chunks = list(store.export(group, kind))
    if not chunks:
        return pl.DataFrame(schema={_ID_COLUMN[kind]: pl.String})
    return pl.concat(chunks, how="vertical_relaxed")
