"""The serving facade: which version answers, its live updates, and every kind of answer.

Routes and CLI commands call these methods; the functions they use (``recommend.py``) stay free
of the store, so they are tested on arrays alone.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Literal, TypedDict

from tastebud.errors import InvalidInput, NotFound, NotReady
from tastebud.filters import FilterRequest, FilterRuntime, Selection
from tastebud.recipes.base import IntArray
from tastebud.serving.explain import explain_results
from tastebud.serving.live import LiveFeed
from tastebud.serving.recommend import (
    Scored,
    nearest_items,
    rank_items,
    recommend_items,
    similar_items,
    similar_users,
    user_query,
    users_for_item,
)
from tastebud.serving.versions import (
    LoadedVersion,
    VersionCache,
    load_version,
    with_nearest,
    without_users,
)
from tastebud.settings import Settings
from tastebud.store import Event, Store

FilterValues = Mapping[str, Sequence[str] | str]


class VersionRef(TypedDict, total=False):
    """Which model answers: a solution's newest active version, or one version by id."""

    solution: str | None
    version_id: str | None


Target = VersionRef | LoadedVersion


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    version_id: str
    recommendation_id: str
    results: list[Scored]


class Recommender:
    """Answers requests from trained solution versions of one store. Thread-safe."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.live = LiveFeed(store)
        self.versions = VersionCache(
            self._load_version,
            refresh=self._mask_erased,
            capacity=settings.serving.cached_versions,
            max_age=settings.serving.refresh_seconds,
        )
        # Compiled filters and the item metadata they read are rebuilt on the same delay.
        self.filters = FilterRuntime(store, ttl=settings.serving.refresh_seconds)

    def forget_loaded(self) -> None:
        """Drop loaded versions (after an erasure, so none answers with an erased user)."""
        self.versions.clear()

    def resolve_version(
        self, group: str, *, solution: str | None = None, version_id: str | None = None
    ) -> LoadedVersion:
        """The version that answers: ``version_id``, or the newest active one of ``solution``.

        Raises:
            NotFound: no such solution or version in ``group``.
            NotReady: the solution has no trained version yet (HTTP 503).
        """
        if version_id is not None:
            record = self.store.get_solution_version(version_id)
            if record.group != group:
                raise NotFound(f"solution version {version_id!r} is not in group {group!r}")
            if record.status != "active":
                raise NotReady(f"solution version {version_id!r} is {record.status}")
            return self._live(group, self.versions.get(version_id))
        if solution is None:
            raise InvalidInput("give a solution name or a solutionVersionId")
        self.store.get_solution(group, solution)
        active = [v for v in self.store.list_solution_versions(group, solution)
                  if v.status == "active"]  # fmt: skip
        if not active:
            raise NotReady(f"solution {solution!r} has no trained version yet; train it first")
        return self._live(group, self.versions.get(active[0].id))

    def version_for(self, group: str, target: Target) -> LoadedVersion:
        """The version a request names, or the one a campaign resolved for it."""
        if isinstance(target, LoadedVersion):
            return self._live(group, target)
        return self.resolve_version(group, **target)

    def _live(self, group: str, version: LoadedVersion) -> LoadedVersion:
        self.live.catch_up(group, version)
        return version

    def recommend(
        self, group: str, target: Target, *, user_id: str | None, k: int = 25,
        exclude_seen: bool = True, filter_name: str | None = None,
        filter_values: FilterValues | None = None, context: Mapping[str, str] | None = None,
        explain: bool = False,
    ) -> Answer:  # fmt: skip
        """Items for ``user_id`` from the user's latest events (a new user gets the cold answer),
        limited by the named filter when one is given; ``context`` (e.g. the device) reaches
        the models that read it. ``explain``: each result carries its reasons."""
        version = self.version_for(group, target)
        events = self.user_events(group, user_id)
        history = [e.item_id for e in events]
        known = version.items.indices(history)  # looked up once, for the model and the filter
        selection = self.select(
            group, version, filter_name, filter_values, user_id=user_id, events=events,
            event_items=known,
        )  # fmt: skip
        items = nearest_items(
            version, user_query(version, user_id, history, known), k=k,
            exclude_seen=exclude_seen, selection=selection,
        ) if version.nearest is not None else None  # fmt: skip
        if items is None:
            items = recommend_items(
                version, user_id=user_id, history=history, k=k, exclude_seen=exclude_seen,
                selection=selection, history_indexes=known, events=events, context=context,
            )  # fmt: skip
        if explain:
            query = user_query(version, user_id, history, known, events=events, context=context)
            items = explain_results(version, query, items, filter_name=filter_name)
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items)

    def rank(
        self, group: str, target: Target, *, user_id: str | None, item_ids: Sequence[str],
        filter_name: str | None = None, filter_values: FilterValues | None = None,
        context: Mapping[str, str] | None = None, explain: bool = False,
    ) -> Answer:  # fmt: skip
        """``item_ids`` ordered for ``user_id``; unknown items kept last, in input order. Items
        the named filter does not allow are dropped from the list. ``explain``: each result
        carries its reasons."""
        version = self.version_for(group, target)
        events = self.user_events(group, user_id)
        history = [e.item_id for e in events]
        known = version.items.indices(history)
        selection = self.select(
            group, version, filter_name, filter_values, user_id=user_id, events=events,
            event_items=known,
        )  # fmt: skip
        ranked = rank_items(
            version, user_id=user_id, history=history, item_ids=item_ids, selection=selection,
            history_indexes=known, events=events, context=context,
        )  # fmt: skip
        if explain:
            query = user_query(version, user_id, history, known, events=events, context=context)
            ranked = explain_results(version, query, ranked, filter_name=filter_name,
                                     unscored=None)  # fmt: skip
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", ranked)

    def similar_items(
        self, group: str, target: Target, *, item_id: str, k: int = 25,
        user_id: str | None = None, filter_name: str | None = None,
        filter_values: FilterValues | None = None,
    ) -> Answer:  # fmt: skip
        """Items like ``item_id``. ``user_id`` only serves filters (its events, its profile);
        ``CurrentItem`` in a filter is ``item_id``."""
        version = self.version_for(group, target)
        selection = None
        if filter_name is not None or filter_values:
            events = self.user_events(group, user_id)
            selection = self.select(
                group, version, filter_name, filter_values, user_id=user_id, events=events,
                item_id=item_id,
            )  # fmt: skip
        items = similar_items(version, item_id=item_id, k=k, selection=selection)
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", items)

    def similar_users(self, group: str, target: Target, *, user_id: str, k: int = 25) -> Answer:
        version = self.version_for(group, target)
        users = similar_users(
            version, user_id=user_id, history=self.user_history(group, user_id), k=k
        )
        return Answer(version.id, f"rec-{uuid.uuid4().hex}", users)

    def users_for_item(
        self, group: str, target: Target, *, item_id: str | None = None,
        attribute: str | None = None, k: int = 100, filter_name: str | None = None,
        filter_values: FilterValues | None = None,
    ) -> Answer:  # fmt: skip
        """The segment of users most likely to want an item or an attribute value, limited by
        the named ``UserID`` filter when one is given."""
        version = self.version_for(group, target)
        selection = self.select(group, version, filter_name, filter_values, kind="users")
        users = users_for_item(
            version, item_id=item_id, attribute=attribute, k=k, selection=selection
        )
        return Answer(version.id, f"seg-{uuid.uuid4().hex}", users)

    def select(
        self, group: str, version: LoadedVersion, filter_name: str | None,
        filter_values: FilterValues | None, *, kind: Literal["items", "users"] = "items",
        user_id: str | None = None, events: Sequence[Event] = (),
        event_items: IntArray | None = None, item_id: str | None = None,
    ) -> Selection | None:  # fmt: skip
        """What the named filter lets through for this request (None without a filter).

        Raises:
            NotFound: no such filter.
            InvalidInput: values without a filter, a filter of the wrong kind (ItemID for
                segments, UserID for items), or bad ``filter_values``.
        """
        if filter_name is None:
            if filter_values:
                raise InvalidInput("filterValues: given without a filterName")
            return None
        compiled = self.filters.get(
            group, filter_name, version_id=version.id, items=version.items, users=version.users
        )
        if compiled.kind != kind:
            wanted = "ItemID" if kind == "items" else "UserID"
            raise InvalidInput(
                f"filterName: filter {filter_name!r} filters {compiled.target}, and this request "
                f"needs one that filters {wanted}"
            )
        profile = None
        if compiled.needs_user and user_id is not None:
            record = self.store.get_user(group, user_id)
            profile = None if record is None else record.fields
        request = FilterRequest(
            values=dict(filter_values or {}), user=profile, events=events,
            event_items=event_items, item_id=item_id,
        )  # fmt: skip
        return compiled.select(request)

    def user_events(self, group: str, user_id: str | None) -> list[Event]:
        """The user's most recent events, oldest first (what models and filters read)."""
        if user_id is None:
            return []
        return self.store.recent_events(group, user_id, self.settings.serving.history_length)

    def user_history(self, group: str, user_id: str | None) -> list[str]:
        """The user's most recent item ids, oldest first (what the models score from)."""
        return [e.item_id for e in self.user_events(group, user_id)]

    def _load_version(self, version_id: str) -> LoadedVersion:
        version = load_version(self.settings.artifacts / version_id, version_id)
        serving = self.settings.serving
        version = with_nearest(version, min_items=serving.approximate_from_items,
                               probe_share=serving.approximate_probe_share)  # fmt: skip
        return self._mask_erased(version)

    def _mask_erased(self, version: LoadedVersion) -> LoadedVersion:
        """``version`` with the users erased since it was trained marked deleted."""
        record = self.store.get_solution_version(version.id)
        current = self.store.vocabulary(record.group, "user")
        return without_users(version, lambda user_id: user_id not in current)
