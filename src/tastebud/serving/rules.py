"""The rule engine: what a campaign serves before a model can (too little data, no version yet).

Rules rank the group's items by a configurable order straight from the store (popularity, what
is rising over a recent window, or the newest items) and may limit them with a named filter of the
group (a metadata rule, e.g. "only in-stock items"). They are built as a :class:`LoadedVersion`,
so exclusion of seen items, request filters, promotions and the cache work on them unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from tastebud.ids import Vocabulary
from tastebud.recipes.base import FloatArray
from tastebud.recipes.popularity import PopularityConfig, PopularityModel
from tastebud.serving.versions import LoadedVersion, empty_slots
from tastebud.store import Store

RuleOrder = Literal["popularity", "trending", "newest"]
RULES_RECIPE = "rules"


class RulesConfig(BaseModel):
    """How the rule engine orders items (a campaign's ``rules`` setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: RuleOrder = Field(
        default="popularity",
        description="popularity: most interactions; trending: most interactions within the "
        "last window_days; newest: latest CREATION_TIMESTAMP first (then popularity)",
    )
    window_days: float = Field(default=7.0, gt=0, le=3650, description="trending's window")
    filter: str | None = Field(
        default=None, description="a filter of the group every rule-based answer obeys"
    )
    filter_values: dict[str, list[str] | str] | None = None


def rules_version(store: Store, group: str, rules: RulesConfig, *, now: float) -> LoadedVersion:
    """The rule engine over the group's current items, as a version that answers requests."""
    items = store.vocabulary(group, "item")
    users = store.vocabulary(group, "user")
    since = int(now - rules.window_days * 86_400) if rules.order == "trending" else None
    stats = store.item_stats(group, since=since)
    counts = _per_item(stats, "interactions", len(items))
    popularity = counts.astype(np.float32)
    if rules.order == "trending":
        # Everything counted before the window still breaks ties among equally rising items.
        overall = _per_item(store.item_stats(group), "interactions", len(items))
        scores = _order_scores(counts, overall)
    elif rules.order == "newest":
        created = _per_item(stats, "creation_ts", len(items), missing=-np.inf)
        scores = _order_scores(created, counts)
    else:
        scores = popularity
    return LoadedVersion(
        id=f"rules:{group}:{rules.order}:{int(now * 1000)}",
        recipe=RULES_RECIPE,
        meta={"rules": rules.model_dump()},
        model=PopularityModel(scores, PopularityConfig()),
        users=users,
        items=items,
        popularity=popularity,
        item_features=None,
        deleted_users=empty_slots(users),
        deleted_items=empty_slots(items),
    )


def new_items_version(store: Store, group: str, trained: Vocabulary) -> LoadedVersion | None:
    """The group's items that ``trained`` (a model's vocabulary) does not know — added since it
    was trained — newest first, then by interactions; every other item scores -inf. None when
    there are none.

    Indexes are assigned once and never reused, and a model's vocabulary is the store's at
    training, so no index past its size means no new item: one row tells, where the full
    check (100k ids read into a dict, then a Python loop over them), rebuilt every 30 s in
    every worker, held the interpreter for tens of milliseconds (the serving benchmark's tail).
    """
    if store.vocabulary_size(group, "item") <= len(trained):
        return None
    items = store.vocabulary(group, "item")
    known = np.array([trained.get(str(i)) >= 0 if i is not None else True
                      for i in items.ids(range(len(items)))], dtype=np.bool_)  # fmt: skip
    if known.all():
        return None
    stats = store.item_stats(group)
    counts = _per_item(stats, "interactions", len(items))
    created = _per_item(stats, "creation_ts", len(items), missing=0.0)
    scores = _order_scores(created, counts)
    scores[known] = -np.inf
    users = store.vocabulary(group, "user")
    return LoadedVersion(
        id=f"new-items:{group}:{len(items)}", recipe=RULES_RECIPE, meta={},
        model=PopularityModel(scores, PopularityConfig()), users=users, items=items,
        popularity=scores, item_features=None, deleted_users=empty_slots(users),
        deleted_items=empty_slots(items),
    )  # fmt: skip


def _per_item(
    stats: pl.DataFrame, column: str, n_items: int, *, missing: float = 0.0
) -> npt.NDArray[np.float64]:
    values = np.full(n_items, missing, dtype=np.float64)
    known = stats.filter(pl.col(column).is_not_null())
    values[known["item_index"].to_numpy()] = known[column].to_numpy()
    return values


def _order_scores(
    primary: npt.NDArray[np.float64], tie_break: npt.NDArray[np.float64]
) -> FloatArray:
    """Scores ordering items by ``primary``, then ``tie_break`` (both descending), as ranks:
    epoch seconds do not fit float32's precision, their order does."""
    order = np.lexsort((-tie_break, -primary))
    scores = np.full(len(primary), -np.inf, dtype=np.float32)
    scores[order] = np.arange(len(order), 0, -1, dtype=np.float32)
    scores[~np.isfinite(primary)] = -np.inf  # e.g. items without a creation time
    return scores


class RulesCache:
    """Rule-engine versions per group and configuration, rebuilt after ``max_age`` seconds
    (new items and events enter the rules within that delay, plus one rebuild)."""

    def __init__(self, store: Store, *, max_age: float = 30.0) -> None:
        self._store = store
        self._max_age = max_age
        self._built: dict[tuple[str, str], tuple[float, LoadedVersion | None]] = {}
        self._building: dict[tuple[str, str], threading.Lock] = {}
        self._rebuilding: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def get(self, group: str, rules: RulesConfig) -> LoadedVersion:
        version = self._cached(
            (group, rules.model_dump_json()),
            lambda: rules_version(self._store, group, rules, now=time.time()),
        )
        assert version is not None
        return version  # fmt: skip

    def new_items(self, group: str, model: LoadedVersion) -> LoadedVersion | None:
        """Items added since ``model`` was trained (None: there are none)."""
        return self._cached((group, f"new-items:{model.id}"),
                            lambda: new_items_version(self._store, group, model.items))  # fmt: skip

    def _cached(
        self, key: tuple[str, str], build: Callable[[], LoadedVersion | None]
    ) -> LoadedVersion | None:
        """The entry for ``key``: built by one thread when missing (the others wait for it),
        rebuilt in the background when stale while the old one keeps answering."""
        with self._lock:
            entry = self._built.get(key)
            if entry is not None:
                if time.monotonic() - entry[0] >= self._max_age and key not in self._rebuilding:
                    self._rebuilding.add(key)
                    threading.Thread(target=self._rebuild, args=(key, build), daemon=True).start()
                return entry[1]
            building = self._building.setdefault(key, threading.Lock())
        with building:
            with self._lock:
                entry = self._built.get(key)
            if entry is None:
                entry = (time.monotonic(), build())
                with self._lock:
                    self._built[key] = entry
                    self._building.pop(key, None)
            return entry[1]

    def _rebuild(self, key: tuple[str, str], build: Callable[[], LoadedVersion | None]) -> None:
        try:
            version = build()
            with self._lock:
                self._built[key] = (time.monotonic(), version)
        finally:
            with self._lock:
                self._rebuilding.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._built.clear()
