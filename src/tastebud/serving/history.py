"""What a request reads of a user's history, so that served answers equal evaluated ones.

Three things, each read once (issue 14):

- the **scoring window**: the model's own :func:`~tastebud.recipes.history_window`, as
  ``evaluate`` (which passes the whole history) lets the model cut it: the latest N events
  (similar-items: its ``history_length``; sequential: twice its ``max_len``; popularity: none),
  or the whole history as a set of items (EASE, ALS, BPR); a model that declares none reads the
  latest ``serving.history_length`` events;
- the **filter events**: ``Interactions.*`` conditions see the latest
  ``serving.history_length`` events, whatever the model;
- the **seen items**: every item the user ever interacted with, excluded from answers however
  old; taken from the events read when they are the whole history, else one indexed query
  (:meth:`~tastebud.store.Store.seen_items`).

A window counts events, so events on items the version does not know (new since training)
take a place in it, where ``evaluate`` never meets such items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tastebud.recipes import Query
from tastebud.recipes.base import IntArray
from tastebud.serving.recommend import user_query
from tastebud.serving.versions import LoadedVersion
from tastebud.store import Event


@dataclass(frozen=True, slots=True)
class UserHistory:
    """One request's reads of a user's history (see the module's docstring).

    ``events``: the latest events read, oldest first; ``event_items``: the version's index of
    each (-1: unknown to it); ``window``: the model's history window (None: all, as a set);
    ``filter_length``: how many of the latest events filters see; ``seen``: the sorted version
    indexes of every known item the user ever interacted with (None: not read, see
    :attr:`seen_items`).
    """

    events: list[Event]
    event_items: IntArray
    window: int | None
    filter_length: int
    seen: IntArray | None

    @property
    def seen_items(self) -> IntArray:
        if self.seen is None:
            raise ValueError("the seen items were not read for this request")
        return self.seen

    @property
    def filter_events(self) -> list[Event]:
        return self.events[max(0, len(self.events) - self.filter_length) :]

    @property
    def filter_event_items(self) -> IntArray:
        return self.event_items[max(0, len(self.events) - self.filter_length) :]

    def query(
        self, version: LoadedVersion, user_id: str | None, *,
        context: Mapping[str, str] | None = None,
    ) -> Query:  # fmt: skip
        """The model's query: its window of events, or every seen item (window None)."""
        if self.window is None:
            return user_query(version, user_id, (), self.seen_items, context=context)
        start = max(0, len(self.events) - self.window)
        events = self.events[start:]
        return user_query(
            version, user_id, [e.item_id for e in events], self.event_items[start:],
            events=events, context=context,
        )  # fmt: skip


def events_to_read(window: int | None, filter_length: int, *, filtered: bool) -> int:
    """How many latest events a request reads: the model's window (none for a whole-history
    model: it scores from the seen items), and what the filter sees when there is one."""
    wanted = window or 0
    return max(wanted, filter_length) if filtered else wanted


def seen_from_events(event_items: IntArray) -> IntArray:
    """The sorted distinct known items of events that are the user's whole history."""
    seen: IntArray = np.unique(event_items[event_items >= 0]).astype(np.int32)
    return seen


def seen_from_store(store_items: IntArray, lookup: IntArray) -> IntArray:
    """The sorted distinct known version indexes of store item indexes (``lookup``: see
    :meth:`~tastebud.serving.service.Recommender.item_lookup`)."""
    inside = (store_items >= 0) & (store_items < len(lookup))
    items = lookup[np.where(inside, store_items, len(lookup) - 1)]
    return seen_from_events(items)
